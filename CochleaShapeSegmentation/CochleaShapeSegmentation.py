"""Cochlea Shape Segmentation: the 3D Slicer shell (Module, Widget, Test).

Everything this file does goes through CochleaShapeSegmentationLogic and the shared helpers in
``cochleaai.slicer_widgets``; no algorithm lives here.
"""
import slicer
from slicer.ScriptedLoadableModule import (ScriptedLoadableModule, ScriptedLoadableModuleTest,
                                           ScriptedLoadableModuleWidget)
from slicer.util import VTKObservationMixin

# The Lib package also makes ``cochleaai`` importable from a source checkout: import it first.
from CochleaShapeSegmentationLib.logic import CochleaShapeSegmentationLogic
from cochleaai.slicer_logic import self_test_phantom_logic
from cochleaai.slicer_widgets import JobRunner, PhantomPanel


class CochleaShapeSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Cochlea Shape Segmentation"
        self.parent.categories = ["Cochlea AI"]
        self.parent.dependencies = []
        self.parent.contributors = [
            "CochleaAI developers (methods: Zihao Wang and Herv\u00e9 Delingette, Inria)"]
        self.parent.helpText = (
            "<p>Segments the cochlea and its scalae in CT by fitting a parametric model of "
            "cochlear shape to the image. The fit is a Bayesian inference: an "
            "expectation-maximisation loop alternates between intensity models of the tissues "
            "and the shape parameters, and also estimates how uncertain those parameters are. "
            "A compiled closest-point search gives the signed distance to the model surface and "
            "its derivatives in a fraction of a second, which keeps the fit fast.</p><p>Not in this version yet: the shape fitting itself.</p>"
            "<p>Works today: <b>Generate phantom</b> builds a synthetic temporal-bone CT with its "
            "ground-truth segmentation and landmarks (reproducible from its seed), so the module "
            "can be tried without patient data.</p>"
            "<p>More: <a href='https://github.com/cochleaai/SlicerCochleaAI'>project page</a>.</p>")
        self.parent.acknowledgementText = (
            "Method from the PhD thesis of Z. Wang, <i>Deep Learning and Bayesian inference for "
            "the analysis of inner-ear CT</i>, Universit\u00e9 C\u00f4te d'Azur / Inria (2022), and "
            "Z. Wang, T. Demarcy, J. Vandersteen, D. Gnansia, C. Raffaelli, N. Guevara and H. "
            "Delingette, \"Bayesian logistic shape model inference: application to cochlear "
            "image segmentation\", Medical Image Analysis, 2022; and Z. Wang et al., \"A deep "
            "learning based fast signed distance map generation\", MIDL 2020.")


class CochleaShapeSegmentationWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.runner = None
        self.phantomPanel = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CochleaShapeSegmentation.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = CochleaShapeSegmentationLogic()
        self.runner = JobRunner(self.ui.progressBar, self.ui.cancelButton, self.ui.statusLabel)
        self.phantomPanel = PhantomPanel(self.logic, self.runner, self.ui.phantomSeedSpinBox,
                                         self.ui.phantomFieldOfViewComboBox,
                                         self.ui.generatePhantomButton, self.ui.volumeSelector)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.phantomPanel.restore()

    def cleanup(self):
        if self.runner is not None:
            self.runner.requestCancel()
        self.removeObservers()

    def enter(self):
        self.phantomPanel.restore()

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.phantomPanel.restore()


class CochleaShapeSegmentationTest(ScriptedLoadableModuleTest):
    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_PhantomOnFreshScene()

    def test_PhantomOnFreshScene(self):
        self.delayDisplay("Generating a phantom with CochleaShapeSegmentationLogic")
        problems = self_test_phantom_logic(CochleaShapeSegmentationLogic(), slicer.mrmlScene)
        self.assertEqual(problems, [])
        self.delayDisplay("Test passed")
