"""One-Shot Landmarks: the 3D Slicer shell (Module, Widget, Test).

Everything this file does goes through OneShotLandmarksLogic and the shared helpers in
``cochleaai.slicer_module``; no algorithm lives here.
"""
from slicer.ScriptedLoadableModule import ScriptedLoadableModule

# The Lib package also makes ``cochleaai`` importable from a source checkout: import it first.
from OneShotLandmarksLib.logic import OneShotLandmarksLogic
from cochleaai.slicer_module import CochleaAIModuleTest, CochleaAIModuleWidget


class OneShotLandmarks(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "One-Shot Landmarks"
        self.parent.categories = ["Cochlea AI"]
        self.parent.dependencies = []
        self.parent.contributors = [
            "CochleaAI developers (methods: Zihao Wang and Herv\u00e9 Delingette, Inria)"]
        self.parent.helpText = (
            "<p>Places inner-ear landmarks in a CT volume after learning from a single "
            "annotated example. A small 2D network trained on randomly oriented slices of "
            "that one reference volume finds the cochlea in a new volume; the cochlea is then "
            "aligned with the reference by its position and main axes, and a non-rigid "
            "registration carries the reference landmarks over.</p><p>Not in this version "
            "yet: the landmark detector.</p>"
            "<p>Works today: <b>Generate phantom</b> builds a synthetic temporal-bone CT with its "
            "ground-truth segmentation and landmarks (reproducible from its seed), so the module "
            "can be tried without patient data.</p>"
            "<p>More: <a href='https://github.com/cochleaai/SlicerCochleaAI'>project page</a>.</p>")
        self.parent.acknowledgementText = (
            "Method from the PhD thesis of Z. Wang, <i>Deep Learning and Bayesian inference for "
            "the analysis of inner-ear CT</i>, Universit\u00e9 C\u00f4te d'Azur / Inria (2022), and "
            "Z. Wang, J. Vandersteen, C. Raffaelli, N. Guevara and H. Delingette, \"One-shot "
            "learning for landmarks detection\", MICCAI workshop on Deep Generative Models "
            "(DGM4MICCAI), 2021.")


class OneShotLandmarksWidget(CochleaAIModuleWidget):
    logic_class = OneShotLandmarksLogic
    ui_file = "UI/OneShotLandmarks.ui"


class OneShotLandmarksTest(CochleaAIModuleTest):
    logic_class = OneShotLandmarksLogic
