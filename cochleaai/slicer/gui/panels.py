"""Panels shared by the four CochleaAI module widgets (usable only inside Slicer).

* :class:`PointPlacer`: a "Place points" button that names the points as they are clicked;
* :class:`PhantomPanel`: the "Generate phantom" group (seed and field of view are the
  :class:`PhantomParameters` of every module's parameter node);
* :func:`show_table`, :func:`show_in_3d` and :func:`load_terminology`;
* the combo-box choices: :class:`ComboChoice`, the base of the enums a module's parameter
  node class declares for its combo boxes (Slicer's ``parameterNodeWrapper`` fills an enum's
  combo box with the members' ``label()`` and keeps the selected member in the node).

``slicer.parameterNodeWrapper`` is imported at the top (for :class:`PhantomParameters`); the
rest of ``slicer`` inside the functions that use it, so the tests can play it with stand-ins.
"""
from __future__ import annotations

import enum
from typing import Annotated, Any, Callable, Dict, Optional, Type

from slicer.parameterNodeWrapper import WithinRange

from cochleaai.phantom.options import DEFAULT_SEED, FIELDS_OF_VIEW, MAX_SEED
from cochleaai.slicer.gui.dependencies import translator
from cochleaai.slicer.gui.jobs import JobRunner
from cochleaai.terminology import TERMINOLOGY_FILE

_ = translator("cochleaai.slicer.gui.panels")


# ------------------------------------------------------------------ combo boxes
class ComboChoice(enum.Enum):
    """One item of a combo box: the member's name is the key kept in the parameter node (and
    given to the Logic; a member named ``none`` gives None: "unknown", "try both"), its value
    the text shown."""

    def label(self) -> str:
        """The text of the item (what Slicer's enum connector shows), translated where Slicer can."""
        return _(self.value)

    @property
    def key(self) -> Optional[str]:
        return None if self.name == "none" else self.name


def choice_items(choices: Type[ComboChoice]) -> Dict[str, str]:
    """``{key: label}`` of a choice enum, in menu order."""
    return {member.key: member.value for member in choices}


#: The phantom's fields of view (``cochleaai.phantom.options.FIELDS_OF_VIEW``).
FieldOfView = ComboChoice("FieldOfView", list(FIELDS_OF_VIEW.items()), module=__name__)


#: Where a worker process runs torch (``cochleaai.worker.DEVICES``).
Device = ComboChoice("Device", [("auto", "Automatic (a GPU when there is one)"), ("cpu", "CPU"), ("gpu", "GPU")],
                     module=__name__)


class JobParameters:
    """The "Job options" of every module's parameter node: where torch runs, and whether the
    results are shown in 3D."""

    device: Device = Device.auto
    show3D: bool = True


class PhantomParameters:
    """The "Generate phantom" settings, a part of each module's parameter node class (which
    derives from this one; Slicer's wrapper reads inherited annotations too)."""

    phantomSeed: Annotated[int, WithinRange(0, MAX_SEED)] = DEFAULT_SEED
    phantomFieldOfView: FieldOfView = FieldOfView.roi


# ------------------------------------------------------------------ point placing
class PointPlacer:
    """A "Place points" button beside a point-list selector and a Slicer place widget.

    Clicking the button asks ``prepare(currentNode)`` for the point list (the Logic creates
    or completes it with named points still to be placed), selects it, and starts placing:
    each click in a view places the next named point, so the points are named as clicked.
    """

    def __init__(self, runner: JobRunner, button, selector, placeWidget, prepare: Callable[[Any], Any]):
        import slicer  # lazy: Slicer's own, present only inside the application

        self.runner, self.selector, self.placeWidget, self.prepare = runner, selector, placeWidget, prepare
        placeWidget.setMRMLScene(slicer.mrmlScene)
        button.connect("clicked(bool)", self.onPlace)
        selector.connect("currentNodeChanged(vtkMRMLNode*)", placeWidget.setCurrentNode)
        runner.busyWidgets.append(button)

    def onPlace(self, *_unused) -> None:
        import slicer  # lazy: Slicer's own, present only inside the application

        try:
            node = self.prepare(self.selector.currentNode())
        except Exception as error:      # e.g. a node of the wrong kind: shown like a failed job
            self.runner.showFailure(_("Place points"), error)
            return
        self.selector.setCurrentNode(node)
        self.placeWidget.setCurrentNode(node)
        force = getattr(getattr(slicer, "qSlicerMarkupsPlaceWidget", None), "ForcePlaceMultipleMarkups", None)
        if force is not None:
            self.placeWidget.placeMultipleMarkups = force
        self.placeWidget.setPlaceModeEnabled(True)
        todo = [node.GetNthControlPointLabel(i) for i in range(node.GetNumberOfControlPoints())
                if node.GetNthControlPointPositionStatus(i) == node.PositionUndefined]
        self.runner.setStatus(_("Click in the views, in this order: {names}.").format(names=", ".join(todo))
                              if todo else _("All points are placed; drag them to move them."))


def show_table(table_node) -> None:
    """Make ``table_node`` the table the table view shows; when the layout has no table view,
    switch to one only if the user agrees (the layout is never changed without asking)."""
    import slicer  # lazy: Slicer's own, present only inside the application

    if table_node is None:
        return
    layoutManager = slicer.app.layoutManager()
    if layoutManager is not None and layoutManager.tableWidget(0) is None:
        if slicer.util.confirmYesNoDisplay(
                _("The table '{table}' was added. Switch to the Four-Up Table layout to see it?").format(
                    table=table_node.GetName()),
                windowTitle=_("Show the table"), dontShowAgainSettingsKey="CochleaAI/SwitchToTableLayout"):
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
    applicationLogic = slicer.app.applicationLogic()
    applicationLogic.GetSelectionNode().SetActiveTableID(table_node.GetID())
    applicationLogic.PropagateTableSelection()


def load_terminology() -> None:
    """Give Slicer's Terminologies module the codes of the cochlea segments (once per session)."""
    import slicer  # lazy: Slicer's own, present only inside the application

    terminologies = getattr(slicer.modules, "terminologies", None)
    if terminologies is None or getattr(load_terminology, "done", False):
        return
    terminologies.logic().LoadTerminologyFromFile(str(TERMINOLOGY_FILE))
    load_terminology.done = True


class PhantomPanel:
    """The "Generate phantom" group: seed, field of view, button and volume selector.

    ``logic`` and ``parameters`` are called to get the module's Logic (made on first use: it
    needs torch) and its parameter node object (:class:`PhantomParameters`), whose seed and
    field of view the widgets are bound to. The generated volume is selected in
    ``volumeSelector`` (if any) and shown in the slice views; the segmentation is shown in 3D.
    """

    def __init__(self, logic: Callable[[], Any], runner: JobRunner, parameters: Callable[[], Any],
                 generateButton, settingWidgets=(), volumeSelector=None):
        self.logic = logic
        self.runner = runner
        self.parameters = parameters
        self.generateButton = generateButton
        self.volumeSelector = volumeSelector
        runner.busyWidgets.extend([generateButton, *settingWidgets])
        generateButton.connect("clicked(bool)", runner.guard(self.onGenerate, generateButton))
        if volumeSelector is not None:
            volumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.showVolume)

    # ----------------------------------------------------------- actions
    def onGenerate(self, *_unused) -> None:
        import slicer  # lazy: Slicer's own, present only inside the application

        parameters = self.parameters()
        seed, fov = parameters.phantomSeed, parameters.phantomFieldOfView.key
        logic, scene = self.logic(), slicer.mrmlScene
        nodes = self.runner.runInProcess(
            _("Generate phantom"), logic.phantom_function, (seed,), {"fov": fov},
            finish=lambda phantom: logic.add_phantom(scene, phantom, seed, fov, progress=self.runner.report),
            share=0.9)
        if nodes:
            self.showNodes(nodes)
            self.runner.setStatus(
                _("Phantom (seed {seed}, {fov}) added: volume, segmentation and landmarks.").format(
                    seed=seed, fov=fov))
    def showNodes(self, nodes: dict) -> None:
        volume = nodes.get("volume")
        if self.volumeSelector is not None and volume is not None:
            self.volumeSelector.setCurrentNode(volume)  # shows it through showVolume
        else:
            self.showVolume(volume)
        segmentation = nodes.get("segmentation")
        if segmentation is not None and self.parameters().show3D:
            show_in_3d(segmentation)

    @staticmethod
    def showVolume(volumeNode) -> None:
        if volumeNode is None:
            return
        import slicer  # lazy: Slicer's own, present only inside the application

        slicer.util.setSliceViewerLayers(background=volumeNode, fit=True)



def show_in_3d(segmentation) -> None:
    """Show a segmentation's surfaces in the 3D view and centre the view on them (the layout
    is left as it is: without a 3D view nothing more happens)."""
    import slicer  # lazy: Slicer's own, present only inside the application

    if segmentation.GetDisplayNode() is None:
        segmentation.CreateDefaultDisplayNodes()
    segmentation.CreateClosedSurfaceRepresentation()
    layoutManager = slicer.app.layoutManager()
    if layoutManager is not None and layoutManager.threeDViewCount > 0:
        layoutManager.threeDWidget(0).threeDView().resetFocalPoint()
