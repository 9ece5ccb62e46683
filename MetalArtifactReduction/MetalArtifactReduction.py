"""Metal Artifact Reduction: the 3D Slicer shell (Module, Widget, Test).

Everything this file does goes through MetalArtifactReductionLogic and the shared helpers in
``cochleaai.slicer_module``; no algorithm lives here.
"""
from slicer.ScriptedLoadableModule import ScriptedLoadableModule

# The Lib package also makes ``cochleaai`` importable from a source checkout: import it first.
from MetalArtifactReductionLib.logic import MetalArtifactReductionLogic
from cochleaai.slicer_module import CochleaAIModuleTest, CochleaAIModuleWidget


class MetalArtifactReduction(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Metal Artifact Reduction"
        self.parent.categories = ["Cochlea AI"]
        self.parent.dependencies = []
        self.parent.contributors = [
            "CochleaAI developers (methods: Zihao Wang and Herv\u00e9 Delingette, Inria)"]
        self.parent.helpText = (
            "<p>Reduces the bright streaks and dark shadows that the electrode array of a "
            "cochlear implant leaves in post-operative CT of the inner ear, so that the "
            "electrodes can be seen against the cochlea. The method is a 3D generative "
            "adversarial network trained on artifacts simulated with X-ray physics on "
            "artifact-free scans.</p><p>Not in this version yet: the artifact reduction "
            "network itself.</p>"
            "<p>Works today: <b>Generate phantom</b> builds a synthetic temporal-bone CT with its "
            "ground-truth segmentation and landmarks (reproducible from its seed), so the module "
            "can be tried without patient data.</p>"
            "<p>More: <a href='https://github.com/cochleaai/SlicerCochleaAI'>project page</a>.</p>")
        self.parent.acknowledgementText = (
            "Method from the PhD thesis of Z. Wang, <i>Deep Learning and Bayesian inference for "
            "the analysis of inner-ear CT</i>, Universit\u00e9 C\u00f4te d'Azur / Inria (2022), and "
            "Z. Wang, J. Vandersteen, T. Demarcy, D. Gnansia, C. Raffaelli, N. Guevara and H. "
            "Delingette, \"Inner-ear augmented metal artifact reduction with simulation-based "
            "3D generative adversarial networks\", Computerized Medical Imaging and Graphics, "
            "2021.")


class MetalArtifactReductionWidget(CochleaAIModuleWidget):
    logic_class = MetalArtifactReductionLogic
    ui_file = "UI/MetalArtifactReduction.ui"


class MetalArtifactReductionTest(CochleaAIModuleTest):
    logic_class = MetalArtifactReductionLogic
