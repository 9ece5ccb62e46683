"""Widget and self-test base classes shared by the four Slicer modules (Slicer only).

A module's widget names its Logic class and its .ui file; everything common (loading the
UI, the job runner with progress and Cancel, the phantom panel, scene observers) is here
once. Imported only by the module scripts inside Slicer: it needs Slicer's Qt.

Building a panel imports nothing beyond numpy, vtk and Slicer itself: torch, numba,
scikit-image, pynrrd and slicerio may not be installed yet. Every action is connected through
``self.runner.guard(slot)``, which runs the dependency check first (it offers to install
what is missing), so models and the heavy packages load on first use.
"""
import slicer
from slicer.ScriptedLoadableModule import ScriptedLoadableModuleTest, ScriptedLoadableModuleWidget
from slicer.util import VTKObservationMixin

from cochleaai.slicer.gui.dependencies import DependencyCheck, describe
from cochleaai.slicer.gui.parameters import parameter_node_class
from cochleaai.slicer.gui.widgets import JobRunner, PhantomPanel, load_terminology
from cochleaai.slicer.logic import generate_phantom_nodes, self_test_phantom_logic
from cochleaai.slicer.sample_data import PHANTOM, REAL_SPECIMEN, registration

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
    """The real specimen (downloaded, its SHA-256 checked by the Sample Data module) and the
    phantom (made when clicked, after the dependency check)."""
    import os

    import SampleData

    icon = os.path.join(os.path.dirname(__file__), os.pardir, "Resources", "Icons", "CochleaAI.png")
    thumbnail = icon if os.path.isfile(icon) else None
    SampleData.SampleDataLogic.registerCustomSampleDataSource(**registration(REAL_SPECIMEN, thumbnail))
    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category=registration(REAL_SPECIMEN)["category"], sampleName=PHANTOM.name, thumbnailFileName=thumbnail,
        customDownloader=lambda source: _load_phantom_sample(PHANTOM))


def _load_phantom_sample(sample):
    try:
        if not _DEPENDENCIES.ensure():
            slicer.util.infoDisplay(_DEPENDENCIES.message, windowTitle=sample.name)
            return None
        nodes = generate_phantom_nodes(slicer.mrmlScene, seed=sample.seed, fov=sample.fov)
    except Exception as error:      # a failed installation or build: said in a dialog, as elsewhere
        slicer.util.errorDisplay(f"{sample.name} could not be made.\n\n{error}", windowTitle=sample.name)
        return None
    slicer.util.setSliceViewerLayers(background=nodes["volume"], fit=True)
    return nodes["volume"]


class CochleaAIModuleWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Subclasses set ``logic_class`` and ``ui_file`` (relative to the module's Resources).

    The widgets of the .ui file that have a ``SlicerParameterName`` (node selections and
    settings) are kept in the module's parameter node by a ``parameterNodeWrapper`` class
    made from the .ui file (:mod:`cochleaai.slicer.gui.parameters`), so they are saved with the
    scene and come back when it is loaded."""

    logic_class = None
    ui_file = None
    parameter_node_class = None

    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.runner = None
        self.phantomPanel = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath(self.ui_file))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = self.logic_class()
        self.runner = JobRunner(self.ui.progressBar, self.ui.cancelButton, self.ui.statusLabel,
                                dependencies=_DEPENDENCIES)
        self.phantomPanel = PhantomPanel(self.logic, self.runner, self.ui.phantomSeedSpinBox,
                                         self.ui.phantomFieldOfViewComboBox,
                                         self.ui.generatePhantomButton, self.ui.volumeSelector)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.phantomPanel.restore()
        self.initializeParameterNode()
        load_terminology()

    def cleanup(self):
        if self.runner is not None:
            self.runner.requestCancel(reason="the module was closed")
        self.removeObservers()
        self.setParameterNode(None)

    def enter(self):
        self.phantomPanel.restore()
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)     # the GUI stops following the node while hidden

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.phantomPanel.restore()
            self.initializeParameterNode()

    # ------------------------------------------------------------ parameter node
    def initializeParameterNode(self):
        """Connect the panel to the scene's parameter node (made on first use)."""
        if self.logic is None:
            return
        cls = type(self)
        if cls.parameter_node_class is None:     # made once per module, from its .ui file
            cls.parameter_node_class = parameter_node_class(self.resourcePath(self.ui_file),
                                                            f"{cls.__name__[:-len('Widget')]}ParameterNode")
        self.setParameterNode(cls.parameter_node_class(self.logic.getParameterNode()))

    def setParameterNode(self, parameterNode):
        if self._parameterNode is not None and self._parameterNodeGuiTag is not None:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode, self._parameterNodeGuiTag = parameterNode, None
        if parameterNode is not None:
            self._parameterNodeGuiTag = parameterNode.connectGui(self.ui)


class CochleaAIModuleTest(ScriptedLoadableModuleTest):
    """Self-test through the module's Logic on a fresh scene; subclasses set ``logic_class``
    and ``method_test``, the text shown while ``logic_class().self_test(scene)`` (the
    module's own method on a phantom; it returns the problems found) runs.

    Without the Python packages the modules install on first use, the tests are skipped
    (``unittest.SkipTest``) with a message that names them: a self-test never installs.
    """

    logic_class = None
    method_test = None

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
        self.assertEqual(self.logic_class().self_test(slicer.mrmlScene), [])
        self.delayDisplay("Test passed")

    def test_PhantomOnFreshScene(self):
        self.delayDisplay(f"Generating a phantom with {self.logic_class.__name__}")
        problems = self_test_phantom_logic(self.logic_class(), slicer.mrmlScene)
        self.assertEqual(problems, [])
        self.delayDisplay("Test passed")
