"""Metal Artifact Reduction: the 3D Slicer shell (Module, Widget, Test).

Everything this file does goes through MetalArtifactReductionLogic and the shared helpers in
``cochleaai.slicer.gui.module``; no algorithm lives here.
"""
import os

import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModule

# The Lib package also makes ``cochleaai`` importable from a source checkout: import it first.
from MetalArtifactReductionLib.parameters import MetalArtifactReductionParameterNode
from cochleaai.progress import Progress
# The test base through its module, not by name: Slicer's runUnitTest runs every TestCase
# class this file holds, and the base alone has no Logic.
from cochleaai.slicer.gui import module as gui_module
from cochleaai.slicer.gui.module import (CATEGORIES,
                                         CONTRIBUTORS,
                                         CochleaAIModuleWidget,
                                         register_sample_data_on_startup)
from cochleaai.slicer.gui.panels import show_in_3d


class MetalArtifactReduction(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Metal Artifact Reduction")
        self.parent.categories = CATEGORIES
        self.parent.dependencies = []
        self.parent.contributors = CONTRIBUTORS
        register_sample_data_on_startup()
        self.parent.helpText = _(
            "<p>Reduces the bright streaks and dark shadows that the electrode array of a "
            "cochlear implant leaves in post-operative CT of the inner ear, so that the "
            "electrodes can be seen against the cochlea.</p>"
            "<p><b>Reduce artifacts</b>: MARGAN, a 3D generative adversarial network trained on "
            "simulated implant scans (the default when its model is installed), or classic "
            "sinogram methods that need only the image: NMAR, linear interpolation (LI) and a "
            "metal beam-hardening correction (BHC). The electrode contacts are found and numbered "
            "from the apex (E1), each placed to a fraction of a voxel by a small model learned from "
            "simulated implants; choosing the implanted array helps. The classic methods barely improve on the input, as in the "
            "thesis. An image without metal is returned unchanged.</p>"
            "<p><b>Simulate implant</b>: inserts an electrode array (FLEX28, Slim 22, HiFocus 1J; "
            "approximate public geometry) along the scala tympani of a cochlea shape (a fitted "
            "shape table, or the truth of a phantom) to a chosen angular depth, and simulates the "
            "post-operative CT from X-ray physics (tungsten spectrum, head-sized body, beam "
            "hardening, scatter, quantum and electronic noise, filtered back-projection). Large "
            "volumes are cropped to a 15 mm cube around the cochlea.</p>"
            "<p><b>Generate phantom</b> builds a synthetic temporal-bone CT with its "
            "ground-truth segmentation and landmarks (reproducible from its seed), so the module "
            "can be tried without patient data.</p>"
            "<p><b>Train MARGAN on your scans</b>: simulates training pairs (implant and "
            "metal-free scans) from the pre-op volume and cochlea shape of Simulate implant, then "
            "trains a model on them, both with progress and Cancel; Reduce artifacts then uses it. "
            "The command line does the same for many scans (<code>simulate-pairs</code>, "
            "<code>margan train</code>).</p>"
            "<p>Reduce, simulate and train run in their own process (Slicer stays responsive; the log "
            "box shows their output); while one runs its button reads <b>Cancel</b>, which stops it at "
            "once and leaves the scene as it was.</p>"
            "<p>More: <a href='https://github.com/cochleaai/SlicerCochleaAI'>project page</a>.</p>")
        self.parent.acknowledgementText = _(
            "Method from the PhD thesis of Z. Wang, <i>Deep Learning and Bayesian inference for "
            "the analysis of inner-ear CT</i>, Universit\u00e9 C\u00f4te d'Azur / Inria (2022), and "
            "Z. Wang, J. Vandersteen, T. Demarcy, D. Gnansia, C. Raffaelli, N. Guevara and H. "
            "Delingette, \"Inner-ear augmented metal artifact reduction with simulation-based "
            "3D generative adversarial networks\", Computerized Medical Imaging and Graphics, "
            "2021. Classic methods: Kalender et al. 1987 (LI), Meyer et al. 2010 (NMAR), Verburg "
            "and Seco 2012 (BHC). Physics tables from SpekPy and xraylib.")


class MetalArtifactReductionWidget(CochleaAIModuleWidget):
    ui_file = "UI/MetalArtifactReduction.ui"
    parameters_class = MetalArtifactReductionParameterNode

    @staticmethod
    def newLogic():
        from MetalArtifactReductionLib.logic import MetalArtifactReductionLogic  # lazy: needs torch (first click)

        return MetalArtifactReductionLogic()

    def setup(self):
        CochleaAIModuleWidget.setup(self)
        for button, slot in ((self.ui.reduceButton, self.onReduce), (self.ui.simulateButton, self.onSimulate),
                             (self.ui.simulatePairsButton, self.onSimulatePairs), (self.ui.trainButton, self.onTrain)):
            button.connect("clicked(bool)", self.runner.guard(slot, button))
            self.runner.busyWidgets.append(button)

    def readInputs(self, description, read, *args, **kwargs):
        """``read(*args, **kwargs)`` (the Logic reading the input nodes), or None after showing
        why it refused them, like a failed job (nothing started)."""
        try:
            return read(*args, **kwargs)
        except Exception as error:  # refused inputs: shown like a failed job
            self.runner.showFailure(description, error)
            return None

    def runInputs(self, description, inputs, addNodes):
        """The core call of ``inputs`` in a worker process, then ``addNodes(inputs, result)`` here."""
        share = self.logic.compute_share
        return self.runner.runInProcess(
            description, inputs.function, inputs.args, inputs.kwargs,
            finish=lambda result: addNodes(inputs, result,
                                           progress=Progress.wrap(self.runner.report).stage(share, 1.0)),
            share=share)

    def onReduce(self, *_unused):
        """Read the inputs here, correct and find the contacts in a worker process, add the nodes here."""
        description = _("Reduce metal artifacts")
        if self.runner.running:
            return
        p = self.parameters
        method = p.method.key
        inputs = self.readInputs(description, self.logic.read_reduce_inputs, slicer.mrmlScene, p.postopVolume,
                                 method=method, output_node=p.outputVolume, roi_node=p.roi,
                                 threshold_hu=float(p.thresholdHU), array=p.implantedArray.key)
        result = self.runInputs(description, inputs, self.logic.add_reduce_nodes) if inputs else None
        if result:
            p.outputVolume = result["volume"]
            slicer.util.setSliceViewerLayers(background=result["volume"], fit=True)
            found = result["contacts"].GetNumberOfControlPoints() if result["contacts"] else 0
            done = (_("Artifacts reduced ({method}); {count} contacts marked.").format(
                method=method.upper(), count=found) if result["metal_voxels"] else "")
            self.runner.setStatus(" ".join([done] + result["messages"]).strip())

    def onSimulate(self, *_unused):
        """Read the inputs here, simulate in a worker process, add the nodes here."""
        description = _("Simulate implant")
        if self.runner.running:
            return
        p = self.parameters
        inputs = self.readInputs(description, self.logic.read_simulation_inputs, slicer.mrmlScene, p.preopVolume,
                                 array=p.array.key, depth_deg=float(p.depthDeg) or None, seed=p.simulationSeed,
                                 model_table_node=p.shapeTable)
        result = self.runInputs(description, inputs, self.logic.add_simulation_nodes) if inputs else None
        if result:
            p.postopVolume = result["volume"]
            slicer.util.setSliceViewerLayers(background=result["volume"], fit=True)
            if self.show3D:
                show_in_3d(result["metal"])
            summary = result["summary"]
            self.runner.setStatus(_("Simulated {array} at {depth:.0f} deg: {inside} contacts inside the "
                                    "cochlea.").format(array=summary["array"], depth=summary["depth_deg"],
                                                       inside=summary["intracochlear_contacts"]))

    def _pairsFolder(self):
        return self.ui.pairsFolderPathLineEdit.currentPath.strip()

    def onSimulatePairs(self, *_unused):
        """Read the scan here, simulate the pairs in a worker process (minutes)."""
        description = _("Simulate training pairs")
        if self.runner.running:
            return
        scans = self.readInputs(description, self.logic.read_training_scans, self.parameters.preopVolume,
                                self.parameters.shapeTable)
        if scans is None:
            return
        folder, n, seed = self._pairsFolder(), self.parameters.trainPairs, self.parameters.simulationSeed
        done = self.runner.runInProcess(description, self.logic.pairs_function, (scans, folder, n), {"seed": seed})
        if done:
            self.runner.setStatus(_("{count} training pairs written to {folder}.").format(
                count=done["pairs"], folder=done["pairs_dir"]))

    def onTrain(self, *_unused):
        """Train in a worker process; Reduce artifacts then uses the model file it saved."""
        description = _("Train MARGAN")
        if self.runner.running:
            return
        folder = self._pairsFolder()
        path = self.ui.trainModelPathLineEdit.currentPath.strip() or (
            os.path.join(folder, "margan_user.pt") if folder else "")
        done = self.runner.runInProcess(description, self.logic.training_function,
                                        (folder, path, self.parameters.trainSteps),
                                        finish=self.logic.use_trained_model)
        if done is not None:
            training = done["training"]
            self.runner.setStatus(_("Trained in {seconds:.0f} s; validation RMSE {rmse} HU (input {before} HU). "
                                    "MARGAN now uses this model.").format(
                seconds=training.get("seconds", 0), rmse=training.get("val_rmse_hu"),
                before=training.get("val_rmse_hu_input")))


class MetalArtifactReductionTest(gui_module.CochleaAIModuleTest):
    newLogic = staticmethod(MetalArtifactReductionWidget.newLogic)
    method_test = "Simulating an implant in a phantom and reducing its artifacts"
