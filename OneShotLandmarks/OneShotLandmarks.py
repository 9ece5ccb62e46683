"""One-Shot Landmarks: the 3D Slicer shell (Module, Widget, Test).

Everything this file does goes through OneShotLandmarksLogic and the shared helpers in
``cochleaai.slicer.gui.module``; no algorithm lives here.
"""
import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModule

# The Lib package also makes ``cochleaai`` importable from a source checkout: import it first.
from OneShotLandmarksLib.parameters import OneShotLandmarksParameterNode
from cochleaai.progress import Progress
# The test base through its module, not by name: Slicer's runUnitTest runs every TestCase
# class this file holds, and the base alone has no Logic.
from cochleaai.slicer.gui import module as gui_module
from cochleaai.slicer.gui.module import (CATEGORIES,
                                         CONTRIBUTORS,
                                         CochleaAIModuleWidget,
                                         register_sample_data_on_startup)
from cochleaai.slicer.gui.panels import PointPlacer, show_table


class OneShotLandmarks(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("One-Shot Landmarks")
        self.parent.categories = CATEGORIES
        self.parent.dependencies = []
        self.parent.contributors = CONTRIBUTORS
        register_sample_data_on_startup()
        self.parent.helpText = _(
            "<p>Places landmarks in many CT volumes after learning from a single annotated "
            "reference. A shallow 2D network, trained on randomly rotated and shifted slices of "
            "the reference, finds the structure of interest (the cochlea) in each new volume "
            "from the agreement of its axial, coronal and sagittal slices; the structure is "
            "then aligned with the reference by its centre and axes of inertia, and a rigid then "
            "diffeomorphic demons registration carries the reference landmarks over.</p>"
            "<p><b>Detect landmarks</b>: check one or more volumes (or pick a folder of files) and "
            "press the button. Each volume gets a labelled point list, and the table "
            "<i>Landmark detection confidence</i> lists a confidence per volume (low values are "
            "flagged for review). Without a model of your own, the shipped model is used: it was "
            "trained on one real temporal-bone CT (its bony labyrinth and five landmarks) and "
            "serves both ears. <b>Target ear</b> says which ear the volumes show; on Auto both "
            "are tried. <b>More references</b>: a folder of models trained on other references; "
            "the landmarks are then the median of all, flagged where they disagree.</p>"
            "<p><b>Reference and training</b>: choose the reference volume, the segmentation of "
            "the structure, the landmark point list (<b>Place landmarks</b> makes one and names "
            "center, apex, round_window, oval_window and vestibule as you click them), the "
            "reference's ear and, optionally, a second (validation) volume with its "
            "segmentation, then Train.</p>"
            "<p>Training and detection run in their own process (Slicer stays responsive; the log "
            "box shows its output), and the button turns into <b>Cancel</b>, which stops it at "
            "once and leaves the scene as it was.</p>"
            "<p><b>Generate phantom</b> builds a synthetic temporal-bone CT with its ground-truth "
            "segmentation and landmarks (reproducible from its seed).</p>"
            "<p>More: <a href='https://github.com/cochleaai/SlicerCochleaAI'>project page</a>.</p>")
        self.parent.acknowledgementText = _(
            "Method from the PhD thesis of Z. Wang, <i>Deep Learning and Bayesian inference for "
            "the analysis of inner-ear CT</i>, Universit\u00e9 C\u00f4te d'Azur / Inria (2022), and "
            "Z. Wang, J. Vandersteen, C. Raffaelli, N. Guevara and H. Delingette, \"One-shot "
            "learning for landmarks detection\", MICCAI workshop on Deep Generative Models "
            "(DGM4MICCAI), 2021.")


class OneShotLandmarksWidget(CochleaAIModuleWidget):
    ui_file = "UI/OneShotLandmarks.ui"
    parameters_class = OneShotLandmarksParameterNode

    @staticmethod
    def newLogic():
        from OneShotLandmarksLib.logic import OneShotLandmarksLogic  # lazy: needs torch (first click)

        return OneShotLandmarksLogic()

    def setup(self):
        CochleaAIModuleWidget.setup(self)
        self.ui.trainButton.connect("clicked(bool)", self.runner.guard(self.onTrain, self.ui.trainButton))
        self.ui.detectButton.connect("clicked(bool)", self.runner.guard(self.onDetect, self.ui.detectButton))
        self.runner.busyWidgets.extend([self.ui.trainButton, self.ui.detectButton])
        self.landmarkPlacer = PointPlacer(
            self.runner, self.ui.placeLandmarksButton, self.ui.referenceLandmarksSelector,
            self.ui.referenceLandmarksPlaceWidget, lambda node: self.logic.reference_landmarks_node(
                slicer.mrmlScene, self.parameters.referenceVolume, node))

    def onTrain(self, *_unused):
        """Read the training nodes here, train in a worker process (minutes), which saves the
        model file; then keep that model here for Detect."""
        description = _("Train one-shot model")
        if self.runner.running:
            return
        try:
            p = self.parameters
            inputs = self.logic.read_training_inputs(
                p.referenceVolume, p.referenceSegmentation, p.referenceLandmarks, p.validationVolume,
                p.validationSegmentation, segment_name=p.segmentName.strip() or None, side=p.referenceSide.key)
            path = self.logic.training_path(self.ui.saveModelPathLineEdit.currentPath.strip() or None)
            args, kwargs = self.logic.training_arguments(inputs, path, config=self.trainConfig())
        except Exception as error:  # refused inputs: shown like a failed job, nothing started
            self.runner.showFailure(description, error)
            return
        model = self.runner.runInProcess(description, self.logic.train_function, args, kwargs,
                                         finish=self.logic.load_model)
        if model is not None:
            training = model.card.get("training", {})
            self.runner.setStatus(_("Trained in {seconds:.0f} s ({steps} steps). Detect now uses this "
                                    "model.").format(seconds=training.get("train_sec", 0),
                                                     steps=training.get("steps", 0)))

    def trainConfig(self):
        from cochleaai.landmarks.training import TrainConfig  # lazy: needs torch (first click)

        return TrainConfig(max_steps=self.parameters.maxSteps)

    def _modelFiles(self):
        """The model files Detect uses, checked here (a model loads in milliseconds; the worker
        loads them again from their files); None when one was refused."""
        path = self.ui.modelPathLineEdit.currentPath.strip()
        if path or self.logic.model_path is None:
            model = self.runner.run(_("Load model"), lambda progress=None: self.logic.load_model(path or None))
            if model is None:
                return None
        files = [self.logic.model_path]
        folder = self.ui.referenceModelsPathLineEdit.currentPath.strip()
        if not folder:
            return files
        more = self.runner.run(_("Load models"), lambda progress=None: self.logic.model_files(folder))
        return None if more is None else files + more

    def onDetect(self, *_unused):
        """Read the target volumes (or list the files) here, detect in a worker process, add the
        point lists and the table here."""
        description = _("Detect landmarks")
        if self.runner.running:
            return
        models = self._modelFiles()
        if models is None:
            return
        side = self.parameters.targetSide.key
        folder = self.ui.targetFolderPathLineEdit.currentPath.strip()
        try:
            if folder:
                inputs = self.logic.read_file_inputs(slicer.mrmlScene, [folder], models, side=side)
            else:
                nodes = list(self.ui.targetVolumesSelector.checkedNodes())
                if not nodes and self.parameters.volume is not None:
                    nodes = [self.parameters.volume]
                inputs = self.logic.read_detection_inputs(slicer.mrmlScene, nodes, models, side=side)
            args, kwargs = self.logic.detection_arguments(inputs)
        except Exception as error:  # refused inputs: shown like a failed job, nothing started
            self.runner.showFailure(description, error)
            return
        share = self.logic.detect_share
        result = self.runner.runInProcess(
            description, self.logic.detect_function, args, kwargs,
            finish=lambda results: self.logic.add_result_nodes(
                inputs, results, progress=Progress.wrap(self.runner.report).stage(share, 1.0)),
            share=share)
        if result:
            rows = result["rows"]
            flagged = sum(1 for r in rows if r["flagged"])
            self.runner.setStatus(_("Landmarks placed in {good} of {total} volume(s) without a flag; see "
                                    "the table '{table}'.").format(good=len(rows) - flagged, total=len(rows),
                                                                   table=result["table"].GetName()))
            show_table(result["table"])


class OneShotLandmarksTest(gui_module.CochleaAIModuleTest):
    newLogic = staticmethod(OneShotLandmarksWidget.newLogic)
    method_test = "Detecting the landmarks of a phantom with the shipped phantom model"
