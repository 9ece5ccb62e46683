"""Langevin VAE Explorer: the 3D Slicer shell (Module, Widget, Test).

Everything this file does goes through LangevinVAEExplorerLogic and the shared helpers in
``cochleaai.slicer_module``; no algorithm lives here.
"""
from slicer.ScriptedLoadableModule import ScriptedLoadableModule

# The Lib package also makes ``cochleaai`` importable from a source checkout: import it first.
from LangevinVAEExplorerLib.logic import LangevinVAEExplorerLogic
from cochleaai.slicer_module import CochleaAIModuleTest, CochleaAIModuleWidget


class LangevinVAEExplorer(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "Langevin VAE Explorer"
        self.parent.categories = ["Cochlea AI"]
        self.parent.dependencies = []
        self.parent.contributors = [
            "CochleaAI developers (methods: Zihao Wang and Herv\u00e9 Delingette, Inria)"]
        self.parent.helpText = (
            "<p>Explores a compact learned representation of inner-ear CT: a variational "
            "autoencoder whose approximate posterior is refined by a quasi-symplectic "
            "Langevin flow that follows the gradient of the likelihood. It is meant to encode "
            "volumes, draw new samples from the latent space and compare likelihood "
            "estimates.</p><p>Not in this version yet: the autoencoder and its tools.</p>"
            "<p>Works today: <b>Generate phantom</b> builds a synthetic temporal-bone CT with its "
            "ground-truth segmentation and landmarks (reproducible from its seed), so the module "
            "can be tried without patient data.</p>"
            "<p>More: <a href='https://github.com/cochleaai/SlicerCochleaAI'>project page</a>.</p>")
        self.parent.acknowledgementText = (
            "Method from the PhD thesis of Z. Wang, <i>Deep Learning and Bayesian inference for "
            "the analysis of inner-ear CT</i>, Universit\u00e9 C\u00f4te d'Azur / Inria (2022), and "
            "Z. Wang and H. Delingette, \"Quasi-symplectic Langevin variational autoencoder\", "
            "arXiv, 2021.")


class LangevinVAEExplorerWidget(CochleaAIModuleWidget):
    logic_class = LangevinVAEExplorerLogic
    ui_file = "UI/LangevinVAEExplorer.ui"


class LangevinVAEExplorerTest(CochleaAIModuleTest):
    logic_class = LangevinVAEExplorerLogic
