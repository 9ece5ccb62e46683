"""Cochlea Shape Segmentation: the 3D Slicer shell (Module, Widget, Test).

Everything this file does goes through CochleaShapeSegmentationLogic and the shared helpers in
``cochleaai.slicer_module``; no algorithm lives here.
"""
from slicer.ScriptedLoadableModule import ScriptedLoadableModule

# The Lib package also makes ``cochleaai`` importable from a source checkout: import it first.
from CochleaShapeSegmentationLib.logic import CochleaShapeSegmentationLogic
from cochleaai.slicer_module import CochleaAIModuleTest, CochleaAIModuleWidget


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


class CochleaShapeSegmentationWidget(CochleaAIModuleWidget):
    logic_class = CochleaShapeSegmentationLogic
    ui_file = "UI/CochleaShapeSegmentation.ui"


class CochleaShapeSegmentationTest(CochleaAIModuleTest):
    logic_class = CochleaShapeSegmentationLogic
