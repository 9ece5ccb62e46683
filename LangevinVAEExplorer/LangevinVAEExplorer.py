"""Langevin VAE Explorer: the 3D Slicer shell (Module, Widget, Test).

Everything this file does goes through LangevinVAEExplorerLogic and the shared helpers in
``cochleaai.slicer.gui.module``; no algorithm lives here.
"""
import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModule

# The Lib package also makes ``cochleaai`` importable from a source checkout: import it first.
from LangevinVAEExplorerLib.parameters import MAX_SAMPLE_SEED, LangevinVAEExplorerParameterNode
from cochleaai.errors import CochleaAIError
from cochleaai.progress import Progress
# The test base through its module, not by name: Slicer's runUnitTest runs every TestCase
# class this file holds, and the base alone has no Logic.
from cochleaai.slicer.gui import module as gui_module
from cochleaai.slicer.gui.module import (CATEGORIES,
                                         CONTRIBUTORS,
                                         CochleaAIModuleWidget,
                                         register_sample_data_on_startup)
from cochleaai.slicer.results import SUSPECT_ATTRIBUTE
from cochleaai.slicer.results.vae import MISMATCH_ATTRIBUTE
from cochleaai.vae.shipped import default_model_path

#: The share of the Interpolate progress bar the worker fills; making the sequence fills the rest.
SEQUENCE_START = 0.8


class LangevinVAEExplorer(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Langevin VAE Explorer")
        self.parent.categories = CATEGORIES
        self.parent.dependencies = []
        self.parent.contributors = CONTRIBUTORS
        register_sample_data_on_startup()
        self.parent.helpText = _(
            "<p>Explores a compact learned representation of inner-ear CT: a variational "
            "autoencoder whose approximate posterior is refined by a quasi-symplectic "
            "Langevin flow that follows the gradient of the likelihood.</p>"
            "<ul><li><b>Model</b>: the shipped default model (trained on synthetic roi phantoms, "
            "2D latent space) loads on first use; load another .pt (with its .json card) here.</li>"
            "<li><b>Explore</b>: the z1/z2 sliders regenerate the <i>Generated cochlea</i> volume "
            "as you move them; <b>Random sample</b> draws from the prior; <b>Latent map</b> shows "
            "decoded middle slices over a grid of (z1, z2) in the red slice view; <b>Encode</b> "
            "finds the latent coordinates of the selected volume (it sets the sliders and shows "
            "the reconstruction); <b>Interpolate</b> decodes the straight latent path between two "
            "volumes as a sequence you can play with the Sequences toolbar.</li>"
            "<li><b>Train</b>: a new model on the volume files of a folder (resampled to the model "
            "grid), with progress and Cancel.</li></ul>"
            "<p><b>Generate phantom</b> builds a synthetic CT to try it without patient data.</p>"
            "<p>More: <a href='https://github.com/cochleaai/SlicerCochleaAI'>project page</a>, "
            "docs/vae.md.</p>")
        self.parent.acknowledgementText = _(
            "Method from the PhD thesis of Z. Wang, <i>Deep Learning and Bayesian inference for "
            "the analysis of inner-ear CT</i>, Universit\u00e9 C\u00f4te d'Azur / Inria (2022), and "
            "Z. Wang and H. Delingette, \"Quasi-symplectic Langevin variational autoencoder\", "
            "arXiv, 2021. Hamiltonian VAE after A. L. Caterini, A. Doucet and D. Sejdinovic, "
            "NeurIPS 2018.")


class LangevinVAEExplorerWidget(CochleaAIModuleWidget):
    ui_file = "UI/LangevinVAEExplorer.ui"
    parameters_class = LangevinVAEExplorerParameterNode

    @staticmethod
    def newLogic():
        from LangevinVAEExplorerLib.logic import LangevinVAEExplorerLogic  # lazy: needs torch (first click)

        return LangevinVAEExplorerLogic()

    def setup(self):
        CochleaAIModuleWidget.setup(self)
        self._settingSliders = False
        self._generatedShown = False
        self.runner.busyWidgets.extend([self.ui.loadModelButton, self.ui.trainButton,
                                        self.ui.encodeButton, self.ui.interpolateButton])
        self.ui.modelPathLineEdit.currentPath = str(default_model_path())
        self.ui.modelInfoLabel.text = _("The model loads on first use (Load model, Random sample, Encode...).")
        self.ui.loadModelButton.connect("clicked(bool)", self.runner.guard(self.onLoadModel, self.ui.loadModelButton))
        for slider in (self.ui.latent1Slider, self.ui.latent2Slider):
            slider.minimum, slider.maximum, slider.singleStep = -3.0, 3.0, 0.05
            slider.value = 0.0
            slider.connect("valueChanged(double)", self.onLatentChanged)
        for button, slot in ((self.ui.randomSampleButton, self.onRandomSample),
                             (self.ui.latentMapButton, self.onLatentMap),
                             (self.ui.encodeButton, self.onEncode),
                             (self.ui.interpolateButton, self.onInterpolate),
                             (self.ui.trainButton, self.onTrain)):
            button.connect("clicked(bool)", self.runner.guard(slot, button))

    # ----------------------------------------------------------------- helpers
    def _call(self, description, function, *args, **kwargs):
        """Short calls: run directly, show a CochleaAIError in the status line."""
        try:
            return function(*args, **kwargs)
        except CochleaAIError as error:
            self.runner.setStatus(_("{action}: {error}").format(action=description, error=error))
            return None

    @staticmethod
    def _showInSliceViews(node, views):
        """``node`` as the background of the slice ``views`` there are (the layout is left as it is)."""
        layoutManager = slicer.app.layoutManager()
        if node is None or layoutManager is None:
            return
        for view in views:
            widget = layoutManager.sliceWidget(view)
            if widget is not None:
                widget.sliceLogic().GetSliceCompositeNode().SetBackgroundVolumeID(node.GetID())
                widget.sliceLogic().FitSliceToAll()

    def _showGenerated(self, node):
        self._showInSliceViews(node, ("Yellow", "Green"))

    def _readInputs(self, description, read, *args, **kwargs):
        """``read(*args, **kwargs)`` (a Logic's read_*_inputs); None, shown like a failed job, when
        it refuses the inputs (nothing is started then)."""
        try:
            return read(*args, **kwargs)
        except Exception as error:  # refused inputs: shown like a failed job, nothing started
            self.runner.showFailure(description, error)
            return None

    def _setSliders(self, z):
        self._settingSliders = True
        try:
            self.ui.latent1Slider.value = float(z[0])
            if len(z) > 1:
                self.ui.latent2Slider.value = float(z[1])
        finally:
            self._settingSliders = False

    # ----------------------------------------------------------------- actions
    def onLoadModel(self, *_unused):
        """Loading takes a few hundredths of a second: on the GUI thread (the sliders use this model)."""
        summary = self.runner.run(_("Load model"), lambda progress: self.logic.load_model(
            self.ui.modelPathLineEdit.currentPath or None))
        if summary:
            self.ui.modelInfoLabel.text = _(
                "{name}: {kind}, latent dimension {dim}, grid {grid} voxels of {spacing} mm").format(
                name=summary["name"], kind=summary["kind"], dim=summary["latent_dim"],
                grid="x".join(str(n) for n in summary["grid"][::-1]), spacing=summary["spacing_mm"])
            self.ui.latent2Slider.enabled = summary["latent_dim"] > 1

    def _ensureModel(self):
        """The model on first use (the one in the path box, else the shipped one); None if it failed."""
        if self.logic.model is None:
            self.onLoadModel()
        return self.logic.model

    def onLatentChanged(self, *_unused):
        """Decode the sliders' point on the GUI thread (a few milliseconds), never while a job runs."""
        if self._settingSliders:
            return
        if not self.logicMade or self.logic.model is None:    # loading needs the dependency check: a button does it
            self.runner.setStatus(_("Load a model first (Load model or Random sample)."))
            return
        if self.runner.running or not self.runner.ready():   # one job at a time (ready() says why not)
            return
        z = [self.ui.latent1Slider.value, self.ui.latent2Slider.value][:self.logic.latent_dim]
        node = self._call(_("Generate"), self.logic.generate, slicer.mrmlScene, z)
        if node is not None and not self._generatedShown:
            self._generatedShown = True
            self._showGenerated(node)

    def onRandomSample(self, *_unused):
        if self._ensureModel() is None:
            return
        p = self.parameters
        result = self._call(_("Random sample"), self.logic.random_sample, slicer.mrmlScene, p.sampleSeed)
        if result:
            node, z = result
            self._setSliders(z)
            self._showGenerated(node)
            p.sampleSeed = min(p.sampleSeed + 1, MAX_SAMPLE_SEED)   # the spin box's maximum, as before

    def onLatentMap(self, *_unused):
        if self._ensureModel() is None:
            return
        result = self._call(_("Latent map"), self.logic.latent_map, slicer.mrmlScene,
                            self.parameters.latentMapSize)
        if result:
            self._showInSliceViews(result["node"], ("Red",))

    def onEncode(self, *_unused):
        """Read the volume here, encode in a worker process, add the reconstruction here."""
        description = _("Encode")
        if self._ensureModel() is None:
            return
        inputs = self._readInputs(description, self.logic.read_encode_inputs, slicer.mrmlScene,
                                  self.parameters.volume)
        if inputs is None:
            return
        result = self.runner.runInProcess(
            description, self.logic.encode_function, (inputs.model_path, inputs.volume),
            finish=lambda encoding: self.logic.add_encoding_nodes(inputs, encoding))
        if result:
            z, node = result
            self._setSliders(z)
            self._showGenerated(node)
            status = _("Encoded: z = {z}").format(z=", ".join(f"{v:.3f}" for v in z))
            if node.GetAttribute(SUSPECT_ATTRIBUTE) == "yes":
                status = _("Outside what the model learnt (its reconstruction misses {share} of the volume): "
                           "the coordinates mean little. ").format(
                    share=node.GetAttribute(MISMATCH_ATTRIBUTE)) + status
            self.runner.setStatus(status)

    def onInterpolate(self, *_unused):
        """Read both volumes here, encode and decode the path in a worker process, make the sequence here."""
        description = _("Interpolate")
        if self._ensureModel() is None:
            return
        p = self.parameters
        inputs = self._readInputs(description, self.logic.read_interpolation_inputs, slicer.mrmlScene,
                                  p.interpolateFrom, p.interpolateTo, p.interpolationSteps)
        if inputs is None:
            return
        nodes = self.runner.runInProcess(
            description, self.logic.interpolate_function,
            (inputs.model_path, inputs.volume_a, inputs.volume_b, inputs.steps),
            finish=lambda result: self.logic.add_interpolation_nodes(
                inputs, result, progress=Progress.wrap(self.runner.report).stage(SEQUENCE_START, 1.0)),
            share=SEQUENCE_START)
        if nodes:
            self._showGenerated(nodes["proxy"])
            sequences = getattr(slicer.modules, "sequences", None)
            if sequences is not None and hasattr(sequences, "setToolBarActiveBrowserNode"):
                sequences.setToolBarActiveBrowserNode(nodes["browser"])   # play button ready
            self.runner.setStatus(_("Interpolation ready: play it with the Sequences toolbar."))

    def onTrain(self, *_unused):
        """Check the inputs here, train in a worker process, load the trained model here."""
        description = _("Train")
        if self.runner.running:
            return
        inputs = self._readInputs(description, self.logic.read_training_inputs,
                                  self.ui.trainOutputLineEdit.currentPath,
                                  folder=self.ui.trainFolderLineEdit.currentPath or None,
                                  epochs=self.parameters.trainEpochs)
        if inputs is None:
            return
        summary = self.runner.runInProcess(description, self.logic.train_function, (inputs,),
                                           finish=self.logic.load_model)
        if summary:
            self.ui.modelPathLineEdit.currentPath = summary["path"]
            self.ui.modelInfoLabel.text = _("Trained and loaded {name} ({kind}).").format(
                name=summary["name"], kind=summary["kind"])
            self.ui.latent2Slider.enabled = summary["latent_dim"] > 1


class LangevinVAEExplorerTest(gui_module.CochleaAIModuleTest):
    newLogic = staticmethod(LangevinVAEExplorerWidget.newLogic)
    method_test = "Encoding a phantom with the shipped model"
