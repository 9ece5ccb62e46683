"""Cochlea Shape Segmentation: the 3D Slicer shell (Module, Widget, Test).

Everything this file does goes through CochleaShapeSegmentationLogic and the shared helpers in
``cochleaai.slicer.gui.module``; no algorithm lives here.
"""
import slicer
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import ScriptedLoadableModule

# The Lib package also makes ``cochleaai`` importable from a source checkout: import it first.
from CochleaShapeSegmentationLib.parameters import CochleaShapeSegmentationParameterNode
from cochleaai.progress import Progress
from cochleaai.segmentation.options import FIT_SHARE
# The test base through its module, not by name: Slicer's runUnitTest runs every TestCase
# class this file holds, and the base alone has no Logic.
from cochleaai.slicer.gui import module as gui_module
from cochleaai.slicer.gui.module import (CATEGORIES,
                                         CONTRIBUTORS,
                                         CochleaAIModuleWidget,
                                         register_sample_data_on_startup)
from cochleaai.slicer.gui.panels import PointPlacer, show_in_3d, show_table

#: Share of the progress bar the planning worker fills (the rest: adding the plan's nodes).
PLAN_SHARE = 0.9


class CochleaShapeSegmentation(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Cochlea Shape Segmentation")
        self.parent.categories = CATEGORIES
        self.parent.dependencies = []
        self.parent.contributors = CONTRIBUTORS
        register_sample_data_on_startup()
        self.parent.helpText = _(
            "<p>Segments the cochlea in CT by fitting a parametric model of cochlear shape to the "
            "image with Bayesian inference. An expectation-maximisation loop alternates between "
            "intensity models of the tissues (mixtures of Student-t distributions) and the shape "
            "parameters (Gauss-Newton steps); a Laplace approximation then gives how uncertain "
            "the fitted shape is.</p>"
            "<p><b>Segment the cochlea</b>: choose the CT volume in the Data section and, "
            "optionally, a point list whose points are labelled <i>center</i>, or <i>apex</i> and "
            "<i>round window</i>; <b>Place points</b> makes one and names the points as you click "
            "them in the views (they tell where the cochlea is and how it is turned; without "
            "them the cochlea must lie near the centre of the volume, as in a crop around the "
            "ear). Choose the side and press <b>Segment cochlea</b>; the fit runs in its own "
            "process (Slicer stays responsive; the log box shows its output), and the button "
            "turns into <b>Cancel</b>, which stops it at once and leaves the scene as it was. Results: a segmentation with the segments "
            "<i>Cochlea</i> (posterior label map) and <i>Cochlea shape model</i> (inside of the "
            "fitted shape), the posterior probability and the shape uncertainty (entropy, bits) "
            "as colour-mapped volumes, the fitted surface, the scala tympani centreline labelled "
            "in degrees from the round window, the fitted landmarks, and a table of the shape "
            "parameters and clinical measures (cochlear duct lengths, A and B values, height, "
            "turns) as the mean and standard deviation of posterior draws (widened as for the implant "
            "plan below: the posterior alone is far too narrow) and a quality-control score. A result flagged "
            "by the quality control needs a look before it is used.</p>"
            "<p><b>Implant plan</b> (after a segmentation): every electrode array of the catalogue "
            "(MED-EL, Cochlear, Advanced Bionics) is inserted in full along its path (the lateral wall "
            "of the scala tympani, or its centre for mid-scala and precurved arrays) "
            "in the fitted cochlea and in shapes drawn from its posterior "
            "(its spread widened by a factor set on phantoms, so that 95 % intervals hold the truth "
            "about 95 times in 100), "
            "and the arrays are ranked by how close the coverage of the organ of Corti by their most "
            "apical contact comes to the <b>coverage to aim for</b>: high for deep coverage when no "
            "hearing is left to keep, lower to spare apical (low-frequency) residual hearing. "
            "<b>Plan implant</b> adds a table of the arrays (angular depth of the apical contact and "
            "coverage, mean, standard deviation and 95 % interval, the chance that the array is "
            "longer than the duct, published depths), and for the best-ranked array a table of its "
            "contacts (angle, place on the organ of Corti, Greenwood and spiral-ganglion "
            "frequencies), its contacts as points labelled with their angle from the round window, "
            "and its path as a tube. A plan is only as good as the fit: a warning comes first when "
            "quality control flagged the segmentation. <b>Save report</b> writes the plan as one "
            "self-contained web page at the report file, and the same page as a PDF beside it when "
            "Chromium is installed. Check the manufacturers' data before relying "
            "on a figure for a patient.</p>"
            "<p><b>Advanced</b>: the logistic reference lengths l_ref (fit and final label map), "
            "the number of EM iterations and of posterior samples, and the vestibule wedge: "
            "45 degrees (default) also labels the lumen next to the basal end, by the oval "
            "window, as expert labels cut from the whole labyrinth by a cylinder do; 0 keeps "
            "the label map to the cochlea alone. The shape and measures stay the same.</p>"
            "<p><b>Generate phantom</b> builds a synthetic temporal-bone CT with its ground-truth "
            "segmentation and landmarks (reproducible from its seed), so the module can be tried "
            "without patient data: the landmark point list of a phantom can be used as the "
            "points.</p>"
            "<p>More: <a href='https://github.com/cochleaai/SlicerCochleaAI'>project page</a>.</p>")
        self.parent.acknowledgementText = _(
            "Method from the PhD thesis of Z. Wang, <i>Deep Learning and Bayesian inference for "
            "the analysis of inner-ear CT</i>, Universit\u00e9 C\u00f4te d'Azur / Inria (2022), and "
            "Z. Wang, T. Demarcy, J. Vandersteen, D. Gnansia, C. Raffaelli, N. Guevara and H. "
            "Delingette, \"Bayesian logistic shape model inference: application to cochlear "
            "image segmentation\", Medical Image Analysis, 2022; and Z. Wang et al., \"A deep "
            "learning based fast signed distance map generation\", MIDL 2020.")


class CochleaShapeSegmentationWidget(CochleaAIModuleWidget):
    ui_file = "UI/CochleaShapeSegmentation.ui"
    parameters_class = CochleaShapeSegmentationParameterNode

    @staticmethod
    def newLogic():
        from CochleaShapeSegmentationLib.logic import CochleaShapeSegmentationLogic  # lazy: needs torch (first click)

        return CochleaShapeSegmentationLogic()

    def setup(self):
        CochleaAIModuleWidget.setup(self)
        self.ui.applyButton.connect("clicked(bool)", self.runner.guard(self.onApply, self.ui.applyButton))
        self.pointPlacer = PointPlacer(self.runner, self.ui.placePointsButton, self.ui.pointsSelector,
                                       self.ui.pointsPlaceWidget, lambda node: self.logic.points_node(
                                           slicer.mrmlScene, self.parameters.volume, node))
        self.ui.planButton.connect("clicked(bool)", self.runner.guard(self.onPlan, self.ui.planButton))
        self.ui.saveReportButton.connect("clicked(bool)", self.runner.guard(self.onSaveReport))
        self.runner.busyWidgets.extend([self.ui.applyButton, self.ui.planButton, self.ui.saveReportButton])
        self.updateApplyButton()

    def onParameterNodeModified(self, caller=None, event=None):
        self.updateApplyButton()

    def updateApplyButton(self, *_unused):
        volume = self.parameters.volume if self.parameters is not None else None
        self.ui.inputVolumeNameLabel.text = volume.GetName() if volume is not None else _("(select a volume above)")
        if not self.runner.running:     # while a job runs the button is its Cancel
            self.ui.applyButton.enabled = volume is not None
            # the Logic is made on the first click (it needs torch): no Logic, no segmentation yet
            self.ui.planButton.enabled = self.logicMade and self.logic.last_result is not None
            self.ui.saveReportButton.enabled = self.logicMade and self.logic.last_plan is not None

    def settings(self):
        from cochleaai.segmentation.config import SegmentConfig  # lazy: needs torch (first click)

        p = self.parameters
        return SegmentConfig(l_ref_fit=float(p.lRefFit), l_ref_final=float(p.lRefFinal),
                               outer_iterations=p.iterations, samples=p.samples,
                               vestibule_wedge_deg=float(p.vestibuleWedge))

    def onApply(self, *_unused):
        """Read the inputs here, fit in a worker process, add the nodes back here."""
        description = _("Segment cochlea")
        if self.runner.running:
            return
        try:
            inputs = self.logic.read_inputs(self.parameters.volume, self.parameters.points,
                                            side=self.parameters.side.key, settings=self.settings())
        except Exception as error:  # refused inputs: shown like a failed job, nothing started
            self.runner.showFailure(description, error)
            return
        nodes = self.runner.runInProcess(
            description, self.logic.fit_function, (inputs.volume, inputs.points, inputs.settings),
            finish=lambda result: self.logic.add_result_nodes(
                inputs, result, progress=Progress.wrap(self.runner.report).stage(FIT_SHARE, 1.0)),
            share=FIT_SHARE)
        self.updateApplyButton()    # the selection may have changed while the job ran
        if nodes:
            self.showResult(nodes, inputs.volume_node)

    def onPlan(self, *_unused):
        """Read the last segmentation here, plan in a worker process, add the nodes back here."""
        description = _("Plan implant")
        if self.runner.running:
            return
        try:
            inputs = self.logic.read_plan_inputs(float(self.parameters.targetCoverage) / 100.0)
        except Exception as error:  # refused inputs (no segmentation yet): shown like a failed job
            self.runner.showFailure(description, error)
            return
        nodes = self.runner.runInProcess(
            description, self.logic.plan_function, inputs.args, inputs.kwargs,
            finish=lambda plan: self.logic.add_plan_nodes(
                inputs, plan, progress=Progress.wrap(self.runner.report).stage(PLAN_SHARE, 1.0)),
            share=PLAN_SHARE)
        self.updateApplyButton()
        if nodes:
            self.showPlan(nodes, self.logic.last_plan)

    def onSaveReport(self, *_unused):
        """Write the last plan's page (and PDF) at the report file; the status line says where."""
        try:
            files = self.logic.save_plan_report(self.ui.reportPathLineEdit.currentPath)
        except Exception as error:  # refused (no plan, no file name, a file already there)
            self.runner.showFailure(_("Save report"), error)
            return
        saved = _("Report saved: {files}.").format(files=", ".join(files.values()))
        if "pdf" not in files:
            saved += " " + _("No PDF: Chromium is not installed here.")
        self.runner.setStatus(saved)

    def showPlan(self, nodes, plan):
        """The plan table in the table view, the planned contacts and path in the views; the
        best array in the status line, after any warning."""
        show_table(nodes["table"])
        for role in ("contacts", "path"):
            display = nodes[role].GetDisplayNode()
            if display is not None:
                display.SetVisibility(True)
        best = plan["arrays"][0]
        depth, coverage = best["apical_deg"], best["coverage_pct"]
        text = _("Best for {target:.0f} % coverage: {manufacturer} {array}, apical contact at {depth:.0f} "
                 "\u00b1 {depth_sd:.0f}\u00b0, covering {coverage:.0f} \u00b1 {coverage_sd:.0f} % of the organ of "
                 "Corti. See the table '{table}' and the points '{contacts}'.").format(
            target=plan["target_coverage_pct"], manufacturer=best["manufacturer"], array=best["name"],
            depth=depth["mean"], depth_sd=depth["sd"], coverage=coverage["mean"], coverage_sd=coverage["sd"],
            table=nodes["table"].GetName(), contacts=nodes["contacts"].GetName())
        self.runner.setStatus(" ".join([*plan.get("warnings", []), text]))

    def showResult(self, nodes, volumeNode=None):
        """Probability over the CT in the slice views, surfaces in 3D, the table in the table view."""
        if self.show3D:
            show_in_3d(nodes["segmentation"])
        background = volumeNode if volumeNode is not None else self.parameters.volume
        slicer.util.setSliceViewerLayers(background=background,
                                         foreground=nodes["probability"], foregroundOpacity=0.35)
        show_table(nodes["table"])
        result = self.logic.last_result
        if result is None:
            return
        measures = result.measures
        lateral = measures.get("cdl_lateral_wall_mm", {})
        a_value = measures.get("a_value_mm", {})
        nan = float("nan")
        text = _("Cochlear duct length (lateral wall) {cdl:.1f} \u00b1 {cdl_sd:.1f} mm; A-value {a:.2f} "
                 "\u00b1 {a_sd:.2f} mm; fit in {seconds:.0f} s. See the table '{table}'.").format(
            cdl=lateral.get("mean", nan), cdl_sd=lateral.get("std", nan), a=a_value.get("mean", nan),
            a_sd=a_value.get("std", nan), seconds=result.seconds, table=nodes["table"].GetName())
        if result.quality.get("suspect"):
            from cochleaai.segmentation.quality import suspect_reasons  # lazy: needs torch (first click)

            text = _("Check this result: {reasons}.").format(
                reasons="; ".join(suspect_reasons(result.quality))) + " " + text
        self.runner.setStatus(text)


class CochleaShapeSegmentationTest(gui_module.CochleaAIModuleTest):
    newLogic = staticmethod(CochleaShapeSegmentationWidget.newLogic)
    method_test = "Segmenting a phantom cochlea from its landmarks"
