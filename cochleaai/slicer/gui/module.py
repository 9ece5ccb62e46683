"""Widget and self-test base classes shared by the four Slicer modules (Slicer only).

A module's widget names its .ui file, its parameter node class (``<Module>Lib/parameters.py``)
and how to make its Logic; everything common (loading the UI, binding the parameter node,
the job runner with progress and Cancel, the phantom panel, scene observers) is here once.
Imported only by the module scripts inside Slicer: it needs Slicer's Qt.

Building a panel imports nothing beyond numpy, vtk and Slicer itself: torch, numba,
scikit-image, pynrrd and slicerio may not be installed yet. The panel is bound to the
module's parameter node (a torch-free ``parameterNodeWrapper`` class) without the Logic;
every action is connected through ``self.runner.guard(slot)``, which runs the dependency
check first (it offers to install what is missing), and the Logic, which imports the
methods and so torch, is made on first use, after that check (:attr:`logic`).
"""

import slicer
import vtk
from slicer.ScriptedLoadableModule import (ScriptedLoadableModuleLogic, ScriptedLoadableModuleTest,
                                           ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

from cochleaai.slicer.gui.dependencies import DependencyCheck, describe
from cochleaai.slicer.gui.jobs import JobRunner, job_slot
from cochleaai.slicer.gui.panels import PhantomPanel, load_terminology
from cochleaai.slicer.sample_data import PHANTOM, REAL_SPECIMEN, registration, thumbnail, verify

#: The modules' place in Slicer's module menu (the catalog category of the extension too).
CATEGORIES = ["Otolaryngology"]
#: Who made the methods the modules implement, as "First Last (Organisation)".
CONTRIBUTORS = ["Zihao Wang (Inria, Universit\u00e9 C\u00f4te d'Azur)",
                "Herv\u00e9 Delingette (Inria, Universit\u00e9 C\u00f4te d'Azur)"]

#: One check for all four modules: once the packages are there, no module asks again.
_DEPENDENCIES = DependencyCheck()
_SAMPLES_REGISTERED = []


def register_sample_data_on_startup() -> None:
    """Offer the CochleaAI data sets in the Sample Data module once Slicer has started (each
    module's ``__init__`` calls this; the data sets are registered once)."""
    if not _SAMPLES_REGISTERED:
        _SAMPLES_REGISTERED.append(True)
        slicer.app.connect("startupCompleted()", register_sample_data)


def register_sample_data() -> None:
    """The real specimen (shipped with the extension, its SHA-256 checked when clicked) and the
    phantom (made when clicked, after the dependency check)."""
    import SampleData  # lazy: a Slicer module, importable once Slicer has started

    icon = thumbnail()
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        **registration(REAL_SPECIMEN, lambda source: _load_shipped_sample(REAL_SPECIMEN), icon))
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        **registration(PHANTOM, lambda source: _load_phantom_sample(PHANTOM), icon))


def _load_shipped_sample(sample):
    """Read a data set shipped with the extension (no packages needed) and show it."""
    try:
        node = slicer.util.loadVolume(str(verify(sample.path, sample)), {"name": sample.node_name})
    except Exception as error:      # a damaged installation: said in a dialog, as elsewhere
        slicer.util.errorDisplay(f"{sample.name} could not be loaded.\n\n{error}", windowTitle=sample.name)
        return None
    slicer.util.setSliceViewerLayers(background=node, fit=True)
    return node


def _load_phantom_sample(sample):
    try:
        if not _DEPENDENCIES.ensure():
            slicer.util.infoDisplay(_DEPENDENCIES.message, windowTitle=sample.name)
            return None
        from cochleaai.slicer.logic import generate_phantom_nodes  # lazy: needs torch, checked just above

        with job_slot(sample.name):     # not while a module's job runs (they share torch and the scene)
            nodes = generate_phantom_nodes(slicer.mrmlScene, seed=sample.seed, fov=sample.fov)
    except Exception as error:      # a failed installation or build: said in a dialog, as elsewhere
        slicer.util.errorDisplay(f"{sample.name} could not be made.\n\n{error}", windowTitle=sample.name)
        return None
    slicer.util.setSliceViewerLayers(background=nodes["volume"], fit=True)
    return nodes["volume"]


def module_parameter_node(moduleName: str):
    """The module's singleton ``vtkMRMLScriptedModuleNode`` in the scene (made on first use),
    the one its Logic's ``getParameterNode()`` gives, found without making the Logic."""
    finder = ScriptedLoadableModuleLogic()
    finder.moduleName = moduleName
    return finder.getParameterNode()


class CochleaAIModuleWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Subclasses set ``ui_file`` (relative to the module's Resources) and
    ``parameters_class`` (the module's ``@parameterNodeWrapper`` class), and define
    ``newLogic()``, which imports and makes the module's Logic.

    The widgets of the .ui file that have a ``SlicerParameterName`` are bound to the
    parameter of that name (``connectGui``), so they are saved with the scene and come back
    when it is loaded; the slots read the values from :attr:`parameters`."""

    ui_file = None
    parameters_class = None

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self._logic = None
        self.runner = None
        self.phantomPanel = None
        self.parameters = None
        self._parameterNodeGuiTag = None

    @staticmethod
    def newLogic():
        """The module's Logic (subclasses import it here: it needs torch)."""
        raise NotImplementedError

    @property
    def logic(self):
        """The module's Logic, made on first use: an action's slot runs after the dependency
        check, so torch is there by then."""
        if self._logic is None:
            self._logic = self.newLogic()
        return self._logic

    @property
    def logicMade(self) -> bool:
        return self._logic is not None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath(self.ui_file))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.runner = JobRunner(self.ui.progressBar, self.ui.cancelButton, self.ui.statusLabel,
                                dependencies=_DEPENDENCIES, logBox=self.ui.logTextEdit)
        self.phantomPanel = PhantomPanel(lambda: self.logic, self.runner, lambda: self.parameters,
                                         self.ui.generatePhantomButton,
                                         (self.ui.phantomSeedSpinBox, self.ui.phantomFieldOfViewComboBox),
                                         self.ui.volumeSelector)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.initializeParameterNode()
        load_terminology()

    def cleanup(self):
        if self.runner is not None:
            self.runner.requestCancel(reason="the module was closed")
        self.removeObservers()
        self.setParameterNode(None)

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)     # the GUI stops following the node while hidden

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    # ------------------------------------------------------------ parameter node
    def initializeParameterNode(self):
        """Bind the panel to the scene's parameter node (made, with the defaults, on first use)."""
        self.setParameterNode(self.parameters_class(module_parameter_node(self.moduleName)))

    def setParameterNode(self, parameters):
        """Bind the widgets to ``parameters`` (None: unbind), as Slicer's module template does."""
        if self.parameters is not None:
            if self._parameterNodeGuiTag is not None:
                self.parameters.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self.parameters, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self.removeObserver(self.parameters, vtk.vtkCommand.ModifiedEvent, self.onJobOptionsModified)
        self.parameters, self._parameterNodeGuiTag = parameters, None
        if parameters is not None:
            self._parameterNodeGuiTag = parameters.connectGui(self.ui)
            self.addObserver(parameters, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self.addObserver(parameters, vtk.vtkCommand.ModifiedEvent, self.onJobOptionsModified)
            self.onJobOptionsModified()
            self.onParameterNodeModified()

    def onJobOptionsModified(self, caller=None, event=None):
        """The runner starts its next worker process on the device the panel names."""
        if self.parameters is not None and self.runner is not None:
            self.runner.device = self.parameters.device.key

    @property
    def show3D(self) -> bool:
        """Whether results are shown in 3D when a job ends (the panel's "Show results in 3D")."""
        return self.parameters is None or bool(self.parameters.show3D)

    def onParameterNodeModified(self, caller=None, event=None):
        """A parameter changed (or the panel was bound): subclasses update what depends on it."""


class CochleaAIModuleTest(ScriptedLoadableModuleTest):
    """Self-test through the module's Logic on a fresh scene; subclasses define ``newLogic()``
    (as their widget does) and set ``method_test``, the text shown while
    ``newLogic().self_test(scene)`` (the module's own method on a phantom; it returns the
    problems found) runs.

    Without the Python packages the modules install on first use, the tests are skipped
    (``unittest.SkipTest``) with a message that names them: a self-test never installs.

    A module script names this class through its module (``gui_module.CochleaAIModuleTest``):
    imported by name, it would be run too by ``slicer.testing.runUnitTest``, which loads every
    TestCase class the script holds.
    """

    method_test = None

    @staticmethod
    def newLogic():
        raise NotImplementedError

    def setUp(self):
        missing = _DEPENDENCIES.missing()
        if missing:
            self.skipTest(f"CochleaAI self-test skipped: the Python packages {describe(missing)} are not "
                          "installed. Open a CochleaAI module and press one of its buttons to install "
                          "them, then run the test again.")
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_PhantomOnFreshScene()
        if self.method_test:
            self.setUp()
            self.test_MethodOnPhantom()

    def test_MethodOnPhantom(self):
        self.delayDisplay(self.method_test)
        self.assertEqual(self.newLogic().self_test(slicer.mrmlScene), [])
        self.delayDisplay("Test passed")

    def test_PhantomOnFreshScene(self):
        from cochleaai.slicer.logic import self_test_phantom_logic  # lazy: needs torch (setUp checked it)

        logic = self.newLogic()
        self.delayDisplay(f"Generating a phantom with {type(logic).__name__}")
        problems = self_test_phantom_logic(logic, slicer.mrmlScene)
        self.assertEqual(problems, [])
        self.delayDisplay("Test passed")
