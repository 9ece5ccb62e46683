"""GUI helpers shared by the four CochleaAI module widgets (usable only inside Slicer).

This is the one ``cochleaai`` file that talks to Qt. ``qt`` and ``slicer`` are imported
inside the functions that need them, so importing this file elsewhere does not fail,
but nothing in it works outside the Slicer application.

* :class:`JobRunner` runs a Logic call with a progress bar, a Cancel button, a status
  label and error pop-ups. The call gets ``progress=runner.report``; clicking Cancel
  makes the next report raise :class:`~cochleaai.progress.Cancelled`.
* :class:`PhantomPanel` wires the "Generate phantom" controls (seed, field of view,
  button, optional volume selector) to ``logic.generate_phantom`` and shows the result.

A module widget then needs only::

    self.runner = JobRunner(self.ui.progressBar, self.ui.cancelButton, self.ui.statusLabel)
    self.phantomPanel = PhantomPanel(self.logic, self.runner, self.ui.phantomSeedSpinBox,
                                     self.ui.phantomFieldOfViewComboBox,
                                     self.ui.generatePhantomButton, self.ui.volumeSelector)
    ...
    result = self.runner.run("Reduce metal artifacts", self.logic.reduce, volumeNode)

The job runs on the GUI thread: MRML is not thread-safe, and Qt events are processed at
each progress report (at most every few tens of milliseconds) so the window repaints and
the Cancel button responds. Jobs must therefore report progress regularly.
"""
from __future__ import annotations

import logging
import time
import traceback
from typing import Any, Callable, List, Optional

from .errors import CochleaAIError
from .progress import Cancelled
from .slicer_logic import DEFAULT_SEED, FIELDS_OF_VIEW, MAX_SEED

_STEPS = 1000             # progress bar resolution
_REFRESH_SECONDS = 0.05   # how often a report lets Qt process events


class JobRunner:
    """Run one long Logic call at a time, with progress, Cancel and error display.

    ``busyWidgets`` are disabled while a job runs (their previous enabled state is
    restored afterwards), so a job cannot be started twice.
    """

    def __init__(self, progressBar, cancelButton, statusLabel=None, busyWidgets=()):
        self.progressBar = progressBar
        self.cancelButton = cancelButton
        self.statusLabel = statusLabel
        self.busyWidgets: List[Any] = list(busyWidgets)
        self._running = False
        self._cancelRequested = False
        self._lastRefresh = 0.0
        self.progressBar.setRange(0, _STEPS)
        self.progressBar.setValue(0)
        self.cancelButton.enabled = False
        self.cancelButton.connect("clicked(bool)", self.requestCancel)

    @property
    def running(self) -> bool:
        return self._running

    def setStatus(self, message: str) -> None:
        if self.statusLabel is not None:
            self.statusLabel.text = message

    def requestCancel(self, *_unused) -> None:
        """Ask the running job to stop at its next progress report."""
        if self._running and not self._cancelRequested:
            self._cancelRequested = True
            self.cancelButton.enabled = False
            self.setStatus("Cancelling...")

    def report(self, fraction: float, message: str = "") -> None:
        """Progress callback handed to the job; raises Cancelled once Cancel was clicked."""
        if self._cancelRequested:
            raise Cancelled("Cancelled by the user.")
        self.progressBar.setValue(int(round(min(max(float(fraction), 0.0), 1.0) * _STEPS)))
        if message:
            self.setStatus(message)
        now = time.monotonic()
        if now - self._lastRefresh >= _REFRESH_SECONDS:
            self._lastRefresh = now
            import slicer

            slicer.app.processEvents()
            if self._cancelRequested:
                raise Cancelled("Cancelled by the user.")

    def run(self, description: str, function: Callable[..., Any], *args, **kwargs) -> Optional[Any]:
        """Call ``function(*args, progress=self.report, **kwargs)``.

        Returns its result, or ``None`` when it was cancelled or failed (the user has
        then been told why) or when another job is already running.
        """
        if self._running:
            return None
        self._running = True
        self._cancelRequested = False
        self._lastRefresh = 0.0
        savedStates = [(w, bool(w.enabled)) for w in self.busyWidgets]
        for widget, _ in savedStates:
            widget.enabled = False
        self.cancelButton.enabled = True
        self.progressBar.setValue(0)
        self.setStatus(f"{description}...")

        result, failure, details = None, None, None
        try:
            result = function(*args, progress=self.report, **kwargs)
        except Cancelled:
            failure = "cancelled"
        except CochleaAIError as error:
            failure = str(error)
        except Exception as error:  # an unexpected bug: log it and show the traceback
            logging.exception("%s failed", description)
            failure = f"Unexpected error: {error}"
            details = traceback.format_exc()
        finally:
            self._running = False
            self._cancelRequested = False
            self.cancelButton.enabled = False
            for widget, enabled in savedStates:
                widget.enabled = enabled

        if failure is None:
            self.progressBar.setValue(_STEPS)
            self.setStatus(f"{description}: done.")
            return result
        self.progressBar.setValue(0)
        if failure == "cancelled":
            self.setStatus(f"{description}: cancelled. The scene was left as it was.")
            return None
        self.setStatus(f"{description}: failed.")
        import slicer

        extra = {"detailedText": details} if details else {}
        slicer.util.errorDisplay(f"{description} failed.\n\n{failure}", windowTitle=description, **extra)
        return None


class PhantomPanel:
    """The "Generate phantom" group: seed, field of view, button and volume selector.

    Seed and field of view are kept in the Logic's parameter node (so they are saved
    with the scene); call :meth:`restore` when the module is entered and after the
    scene was closed. The generated volume is selected in ``volumeSelector`` (if any)
    and shown in the slice views; the segmentation is shown in 3D.
    """

    SEED_PARAMETER = "PhantomSeed"
    FOV_PARAMETER = "PhantomFieldOfView"

    def __init__(self, logic, runner: JobRunner, seedSpinBox, fieldOfViewComboBox,
                 generateButton, volumeSelector=None):
        self.logic = logic
        self.runner = runner
        self.seedSpinBox = seedSpinBox
        self.fieldOfViewComboBox = fieldOfViewComboBox
        self.generateButton = generateButton
        self.volumeSelector = volumeSelector
        self._restoring = False

        seedSpinBox.setRange(0, MAX_SEED)
        seedSpinBox.value = DEFAULT_SEED
        fieldOfViewComboBox.clear()
        for key, label in FIELDS_OF_VIEW.items():
            fieldOfViewComboBox.addItem(label, key)
        runner.busyWidgets.extend([generateButton, seedSpinBox, fieldOfViewComboBox])

        generateButton.connect("clicked(bool)", self.onGenerate)
        seedSpinBox.connect("valueChanged(int)", self.save)
        fieldOfViewComboBox.connect("currentIndexChanged(int)", self.save)
        if volumeSelector is not None:
            volumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.showVolume)

    # ------------------------------------------------------------ values
    @property
    def seed(self) -> int:
        return int(self.seedSpinBox.value)

    @property
    def fieldOfView(self) -> str:
        key = self.fieldOfViewComboBox.itemData(self.fieldOfViewComboBox.currentIndex)
        return key if key in FIELDS_OF_VIEW else next(iter(FIELDS_OF_VIEW))

    def _parameterNode(self):
        getter = getattr(self.logic, "getParameterNode", None)
        return getter() if getter is not None else None

    def restore(self) -> None:
        """Put the parameter node's values into the widgets (or store the widgets' values)."""
        node = self._parameterNode()
        if node is None:
            return
        self._restoring = True
        try:
            seed = node.GetParameter(self.SEED_PARAMETER)
            if seed and seed.isdigit() and int(seed) <= MAX_SEED:
                self.seedSpinBox.value = int(seed)
            index = self.fieldOfViewComboBox.findData(node.GetParameter(self.FOV_PARAMETER))
            if index >= 0:
                self.fieldOfViewComboBox.currentIndex = index
        finally:
            self._restoring = False
        self.save()

    def save(self, *_unused) -> None:
        if self._restoring:
            return
        node = self._parameterNode()
        if node is not None:
            node.SetParameter(self.SEED_PARAMETER, str(self.seed))
            node.SetParameter(self.FOV_PARAMETER, self.fieldOfView)

    # ----------------------------------------------------------- actions
    def onGenerate(self, *_unused) -> None:
        import slicer

        seed, fov = self.seed, self.fieldOfView
        nodes = self.runner.run("Generate phantom", self.logic.generate_phantom,
                                slicer.mrmlScene, seed=seed, fov=fov)
        if nodes:
            self.showNodes(nodes)
            self.runner.setStatus(
                f"Phantom (seed {seed}, {fov}) added: volume, segmentation and landmarks.")

    def showNodes(self, nodes: dict) -> None:
        volume = nodes.get("volume")
        if self.volumeSelector is not None and volume is not None:
            self.volumeSelector.setCurrentNode(volume)  # shows it through showVolume
        else:
            self.showVolume(volume)
        segmentation = nodes.get("segmentation")
        if segmentation is not None:
            if segmentation.GetDisplayNode() is None:
                segmentation.CreateDefaultDisplayNodes()
            segmentation.CreateClosedSurfaceRepresentation()
            self._reset3DView()

    @staticmethod
    def showVolume(volumeNode) -> None:
        if volumeNode is None:
            return
        import slicer

        slicer.util.setSliceViewerLayers(background=volumeNode, fit=True)

    @staticmethod
    def _reset3DView() -> None:
        import slicer

        layoutManager = slicer.app.layoutManager()
        if layoutManager is not None and layoutManager.threeDViewCount > 0:
            layoutManager.threeDWidget(0).threeDView().resetFocalPoint()
