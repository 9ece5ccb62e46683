"""CochleaShapeSegmentationLogic on a real MRML scene (slicer-core): phantom truth, output
nodes, bad input, Cancel, inputs untouched.

Fits are the slow part (about 10-15 s each on 2 cores), so one fit is shared by the
module-scoped fixture (a left ear, template pose), the self-test makes the second (a right
ear, from the phantom's landmark point list), the third repeats the first in three steps
(read_inputs, compute on a worker thread, add_result_nodes: what the module's background
Apply does) to compare the nodes, and the rollback tests replay the first result through a
stand-in fit.
"""
from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
for _folder in (ROOT, ROOT / "CochleaShapeSegmentation"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

slicer = pytest.importorskip("slicer", reason="slicer-core (real MRML) is not installed")

from CochleaShapeSegmentationLib.logic import (NODE_NAMES, SEGMENT_POSTERIOR, SEGMENT_SHAPE,  # noqa: E402
                                               CochleaShapeSegmentationLogic)
from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402

from cochleaai.errors import CochleaAIError  # noqa: E402
from cochleaai.markups import Markups
from cochleaai.metrics import dice  # noqa: E402
from cochleaai.progress import Cancelled  # noqa: E402
from cochleaai.segmentation import pipeline  # noqa: E402
from cochleaai.segmentation.config import SegmentConfig  # noqa: E402
from cochleaai.slicer import mrml  # noqa: E402
from cochleaai.slicer.results import segmentation as scene_nodes  # noqa: E402
from cochleaai.volume import Volume  # noqa: E402

QUICK = SegmentConfig(outer_iterations=3, samples=10)


def _voxels(node) -> np.ndarray:
    return vtk_to_numpy(node.GetImageData().GetPointData().GetScalars()).copy()


def _left_ear_phantom(scene):
    """A roi phantom (seed 3) mirrored left-right: a left cochlea at the centre of the volume,
    with its truth mirrored alike. A right-ear fit of it reaches a Dice of about 0.55 only,
    so the fixture's Dice shows that the side reaches the fit."""
    from cochleaai.phantom.core import make_phantom

    ph = make_phantom(3, fov="roi")
    assert np.allclose(ph.ct.direction, np.eye(3))      # then flipping x in the array mirrors in LPS x
    centre_x = ph.ct.center[0]
    volume = mrml.volume_to_node(scene, ph.ct.copy(ph.ct.array[:, :, ::-1].copy()), "Left phantom CT")
    points = ph.landmarks.points.copy()
    points[:, 0] = 2 * centre_x - points[:, 0]
    landmarks = mrml.markups_from_points(scene, Markups(points, list(ph.landmarks.labels), name="Left landmarks"))
    return {"volume": volume, "landmarks": landmarks, "truth": ph.mask("Cochlea")[:, :, ::-1],
            "truth_points": dict(zip(ph.landmarks.labels, points))}


@pytest.fixture(scope="module")
def fitted():
    """A left-ear roi phantom segmented without points (template pose), quick settings."""
    scene = mrml.new_scene()
    logic = CochleaShapeSegmentationLogic()
    phantom = _left_ear_phantom(scene)
    before = _voxels(phantom["volume"])
    fractions = []
    nodes = logic.segment(phantom["volume"], side="left", settings=QUICK,
                          progress=lambda f, m: fractions.append(f))
    yield {"scene": scene, "logic": logic, "phantom": phantom, "nodes": nodes, "before": before,
           "fractions": fractions, "result": logic.last_result}
    scene.Clear(1)


def test_shape_model_segment_matches_the_phantom_truth(fitted):
    reference = mrml.node_to_volume(fitted["phantom"]["volume"])
    truth = fitted["phantom"]["truth"]
    masks = dict((s.name, m) for s, m in mrml.masks_from_segmentation(fitted["nodes"]["segmentation"], reference))
    assert list(masks) == [SEGMENT_POSTERIOR, SEGMENT_SHAPE]
    assert dice(masks[SEGMENT_SHAPE], truth) >= 0.8
    # the posterior label map is the cochlea too, not an empty or whole-image mask
    assert 0.3 < masks[SEGMENT_POSTERIOR].sum() / truth.sum() < 3.0
    # the segments are the pipeline's own masks, carried into MRML unchanged (same grid here)
    assert np.array_equal(masks[SEGMENT_SHAPE], fitted["result"].ssi.array > 0)
    assert fitted["nodes"]["segmentation"].GetAttribute(scene_nodes.SIDE_ATTRIBUTE) == "left"


def test_output_nodes_names_and_contents(fitted):
    nodes, scene = fitted["nodes"], fitted["scene"]
    prefix = fitted["phantom"]["volume"].GetName()
    assert set(nodes) == set(NODE_NAMES)
    for role, node in nodes.items():
        assert scene.IsNodePresent(node), role
        assert node.GetName() == f"{prefix} {NODE_NAMES[role]}"
    classes = {"segmentation": "vtkMRMLSegmentationNode", "probability": "vtkMRMLScalarVolumeNode",
               "uncertainty": "vtkMRMLScalarVolumeNode", "model": "vtkMRMLModelNode",
               "centerline": "vtkMRMLMarkupsCurveNode", "table": "vtkMRMLTableNode",
               "landmarks": "vtkMRMLMarkupsFiducialNode"}
    for role, cls in classes.items():
        assert nodes[role].IsA(cls), (role, nodes[role].GetClassName())

    prob = mrml.node_to_volume(nodes["probability"]).array
    unc = mrml.node_to_volume(nodes["uncertainty"]).array
    assert prob.min() >= 0.0 and prob.max() <= 1.0 and prob.max() > 0.9 and prob.min() < 0.1
    assert unc.min() >= 0.0 and unc.max() <= 1.0 + 1e-6       # binary entropy in bits
    for role in ("probability", "uncertainty"):
        color = nodes[role].GetDisplayNode().GetColorNode()
        assert color is not None and color.GetID() in (scene_nodes.PROBABILITY_COLORS
                                                       + scene_nodes.UNCERTAINTY_COLORS)

    assert nodes["model"].GetPolyData().GetNumberOfPoints() > 100
    curve = mrml.points_from_markups(nodes["centerline"])
    degrees = [float(label.split()[0]) for label in curve.labels]
    assert curve.labels[0] == "0 deg" and all(label.endswith(" deg") for label in curve.labels)
    assert np.all(np.diff(degrees) >= 0) and degrees[-1] > 600      # more than 2.5 turns
    landmarks = mrml.points_from_markups(nodes["landmarks"])
    assert sorted(landmarks.labels) == ["apex", "center", "round_window"]
    for label, point in zip(landmarks.labels, landmarks.points):    # in the image frame, not mirrored
        assert np.linalg.norm(point - fitted["phantom"]["truth_points"][label]) < 1.5, label


def test_results_fit_slicer(fitted):
    """Standard terminology, the input volume as reference geometry, one folder in the Data
    tree beside the input, the centreline's point labels hidden."""
    import slicer

    from cochleaai.terminology import COCHLEA

    nodes, scene, volume = fitted["nodes"], fitted["scene"], fitted["phantom"]["volume"]
    segmentation = nodes["segmentation"]
    tag = slicer.vtkSegment.GetTerminologyEntryTagName()
    for index in range(segmentation.GetSegmentation().GetNumberOfSegments()):
        segment = segmentation.GetSegmentation().GetNthSegment(index)
        entry = mrml.segment_tag(segment, tag)
        parts = entry.split("~")
        assert len(parts) == 7 and parts[2] == "^".join(COCHLEA), entry
        assert parts[3] == "SCT^7771000^Left"                   # a left ear
    assert segmentation.GetNodeReferenceID(segmentation.GetReferenceImageGeometryReferenceRole()) == volume.GetID()
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    folders = {hierarchy.GetItemParent(hierarchy.GetItemByDataNode(node)) for node in nodes.values()}
    assert len(folders) == 1 and hierarchy.GetItemName(folders.pop()).endswith(NODE_NAMES["segmentation"])
    assert not nodes["centerline"].GetDisplayNode().GetPointLabelsVisibility()
    assert nodes["landmarks"].GetDisplayNode().GetPointLabelsVisibility()


def test_table_has_parameters_measures_and_quality(fitted):
    table = mrml.table_to_dict(fitted["nodes"]["table"])
    assert list(table) == ["Name", "Kind", "Value", "Std"]
    rows = {n: (k, v, s) for n, k, v, s in zip(table["Name"], table["Kind"], table["Value"], table["Std"])}
    result = fitted["result"]
    for name, stats in result.measures.items():
        assert rows[name][0] == "measure"
        assert rows[name][1] == pytest.approx(stats["mean"]) and rows[name][2] == pytest.approx(stats["std"])
    for key in ("cdl_lateral_wall_mm", "a_value_mm", "turns"):
        assert key in rows
    assert 25 < rows["cdl_lateral_wall_mm"][1] < 45            # a human cochlea: about 30-40 mm
    assert sum(k.startswith("parameter") for k, _, _ in rows.values()) == result.theta.size
    assert "qc_surface_mm" in rows and rows["qc_surface_mm"][0] == "quality"


def test_progress_and_inputs_untouched(fitted):
    fractions = fitted["fractions"]
    assert fractions[-1] == 1.0 and all(b >= a - 1e-9 for a, b in zip(fractions, fractions[1:]))
    assert np.array_equal(_voxels(fitted["phantom"]["volume"]), fitted["before"])


def test_results_save_with_the_scene(fitted, tmp_path):
    mrml_file = mrml.save_scene(fitted["scene"], tmp_path, name="segmented")
    text = mrml_file.read_text(encoding="utf-8")
    for node in fitted["nodes"].values():
        storage = node.GetStorageNode()
        assert storage is not None and Path(storage.GetFileName()).is_file(), node.GetName()
        assert node.GetID() in text


# ------------------------------------------------------------------ the three steps (background Apply)
def test_split_steps_give_the_same_nodes_as_one_call(fitted, in_worker_thread):
    """read_inputs (MRML) -> compute on a worker thread (no MRML) -> add_result_nodes (MRML)."""
    scene = mrml.new_scene()
    logic = CochleaShapeSegmentationLogic()
    volume = fitted["phantom"]["volume"]
    inputs = logic.read_inputs(volume, side="left", settings=QUICK, scene=scene)
    assert inputs.scene is scene and inputs.volume_node is volume and inputs.prefix == volume.GetName()
    assert inputs.settings.side == "left" and inputs.points == {}
    node_voxels = vtk_to_numpy(volume.GetImageData().GetPointData().GetScalars())
    assert not np.shares_memory(inputs.volume.array, node_voxels)     # a copy the worker may keep

    plain = dataclasses.replace(inputs, volume_node=None, scene=None)  # nothing of MRML to reach
    fractions = []
    count = scene.GetNumberOfNodes()
    result = in_worker_thread(lambda: logic.compute(plain, progress=lambda f, m: fractions.append(f)))
    assert scene.GetNumberOfNodes() == count and logic.last_result is None   # compute wrote nothing
    assert fractions and fractions[-1] <= 1.0

    nodes = logic.add_result_nodes(inputs, result)
    assert logic.last_result is result
    one_call = fitted["nodes"]
    assert set(nodes) == set(one_call)
    for role, node in nodes.items():
        assert node.GetScene() is scene
        assert (node.GetName(), node.GetClassName()) == (one_call[role].GetName(), one_call[role].GetClassName())
    reference = mrml.node_to_volume(volume)
    split_masks = mrml.masks_from_segmentation(nodes["segmentation"], reference)
    one_masks = mrml.masks_from_segmentation(one_call["segmentation"], reference)
    assert [s.name for s, _ in split_masks] == [s.name for s, _ in one_masks]
    for (_, split), (_, one) in zip(split_masks, one_masks):
        assert np.array_equal(split, one)
    for role in ("probability", "uncertainty"):
        assert np.allclose(mrml.node_to_volume(nodes[role]).array, mrml.node_to_volume(one_call[role]).array,
                           atol=1e-6)
    assert np.allclose(mrml.points_from_markups(nodes["centerline"]).points,
                       mrml.points_from_markups(one_call["centerline"]).points, atol=1e-6)
    split_table, one_table = mrml.table_to_dict(nodes["table"]), mrml.table_to_dict(one_call["table"])
    assert split_table["Name"] == one_table["Name"]
    assert np.allclose(np.asarray(split_table["Value"], float), np.asarray(one_table["Value"], float),
                       rtol=1e-6, atol=1e-9, equal_nan=True)
    scene.Clear(1)


def test_nodes_are_not_added_for_a_volume_removed_during_the_fit(fitted):
    scene = mrml.new_scene()
    node = mrml.volume_to_node(scene, mrml.node_to_volume(fitted["phantom"]["volume"]), "Removed CT")
    logic = CochleaShapeSegmentationLogic()
    inputs = logic.read_inputs(node, side="left", settings=QUICK)
    scene.RemoveNode(node)          # e.g. the user deleted it while the fit ran in the background
    count = scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError, match="removed from the scene"):
        logic.add_result_nodes(inputs, fitted["result"])
    assert scene.GetNumberOfNodes() == count and logic.last_result is None


# ------------------------------------------------------------------ bad input
def _volume_node(scene, array, name, labelmap=False):
    if np.isnan(array).any():      # the adapter refuses NaN: write the voxels into the node directly
        node = mrml.volume_to_node(scene, Volume(np.zeros_like(array), (0.2, 0.2, 0.2)), name)
        vtk_to_numpy(node.GetImageData().GetPointData().GetScalars())[:] = array.reshape(-1)
        return node
    return mrml.volume_to_node(scene, Volume(array, (0.2, 0.2, 0.2)), name, labelmap=labelmap)


def _refused(scene, *args, **kwargs):
    logic = CochleaShapeSegmentationLogic()
    count = scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError) as info:
        logic.segment(*args, settings=QUICK, **kwargs)
    assert scene.GetNumberOfNodes() == count
    return str(info.value)


def test_bad_input_is_refused_and_the_scene_unchanged(fitted):
    scene = mrml.new_scene()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(40, 40, 40)).astype(np.int16)
    message = _refused(scene, _volume_node(scene, labels, "labels", labelmap=True))
    assert "label map" in message
    message = _refused(scene, _volume_node(scene, labels, "labels as scalar"))
    assert "label map" in message

    noisy = rng.normal(0, 300, size=(40, 40, 40)).astype(np.float32)
    noisy[3, 4, 5] = np.nan
    nan_node = _volume_node(scene, noisy, "nan")
    nan_before = _voxels(nan_node)
    assert re.search("(?i)nan|finite", _refused(scene, nan_node))
    assert np.array_equal(_voxels(nan_node), nan_before, equal_nan=True)

    volume = fitted["phantom"]["volume"]
    outside = mrml.markups_from_points(scene, Markups(np.array([[500.0, 0.0, 0.0]]), ["center"], name="far"))
    # the outputs would go to the volume's scene: that one must stay unchanged
    assert "outside" in _refused(fitted["scene"], volume, outside)
    unlabelled = mrml.markups_from_points(scene, Markups(np.zeros((1, 3)), ["F-1"], name="unlabelled"))
    assert "labelled" in _refused(fitted["scene"], volume, unlabelled)
    assert "Side" in _refused(fitted["scene"], volume, side="middle")
    assert "No input volume" in _refused(scene, None)
    assert np.array_equal(_voxels(volume), fitted["before"])


# ------------------------------------------------------------------ Cancel and rollback
def test_cancel_at_any_stage_leaves_the_scene_as_it_was(fitted, monkeypatch):
    scene = fitted["scene"]
    volume = fitted["phantom"]["volume"]
    result = fitted["result"]

    def cached_fit(volume, points, settings, progress=None):   # the fixture's fit, replayed
        progress(0.5, "fitting")
        progress(1.0, "fitted")
        return result

    monkeypatch.setattr(pipeline, "segment", cached_fit)
    count = scene.GetNumberOfNodes()
    for stop_at in (0.0, 0.5, 0.95, 0.99):
        def cancel(fraction, message, stop_at=stop_at):
            if fraction >= stop_at:
                raise Cancelled("test")
        with pytest.raises(Cancelled):
            CochleaShapeSegmentationLogic().segment(volume, settings=QUICK, progress=cancel)
        assert scene.GetNumberOfNodes() == count, stop_at
    # a failure half way through building the nodes is rolled back as well
    monkeypatch.setattr(scene_nodes, "result_table", lambda r: {"Name": ["a"], "Value": [1, 2]})
    with pytest.raises(CochleaAIError):
        CochleaShapeSegmentationLogic().segment(volume, settings=QUICK)
    assert scene.GetNumberOfNodes() == count


def test_side_and_points_reach_the_fit(fitted, monkeypatch):
    seen = {}

    def spy(volume, points, settings, progress=None):
        seen["side"], seen["points"] = settings.side, points
        raise Cancelled("stop before fitting")

    monkeypatch.setattr(pipeline, "segment", spy)
    settings = SegmentConfig(samples=7)
    with pytest.raises(Cancelled):
        CochleaShapeSegmentationLogic().segment(fitted["phantom"]["volume"], fitted["phantom"]["landmarks"],
                                                side="Right", settings=settings)
    assert seen["side"] == "right" and settings.side == "right"
    settings.side = "left"
    with pytest.raises(Cancelled):
        CochleaShapeSegmentationLogic().segment(fitted["phantom"]["volume"], fitted["phantom"]["landmarks"],
                                                side="Right", settings=settings)
    assert seen["side"] == "right" and settings.side == "left"      # the caller's settings untouched
    assert set(seen["points"]) == {"center", "apex", "round window"}
    truth = fitted["phantom"]["truth_points"]
    for role, label in (("center", "center"), ("apex", "apex"), ("round window", "round_window")):
        assert np.allclose(seen["points"][role], truth[label], atol=1e-6)    # LPS, as the pipeline wants


def test_self_test_from_the_phantom_landmarks():
    scene = mrml.new_scene()
    try:
        assert CochleaShapeSegmentationLogic().self_test(scene, settings=QUICK) == []
    finally:
        scene.Clear(1)


# ------------------------------------------------------------------ the Widget, with stand-in Qt
@pytest.fixture
def panel(monkeypatch, fitted):
    """The module's widget set up on the fitted scene, with stand-ins for Slicer's Qt-side
    modules (real MRML kept): ``(widget, ui, calls)``."""
    from module_widgets import build_widget

    built = build_widget(monkeypatch, "CochleaShapeSegmentation", fitted["scene"])
    return built.widget, built.ui, built.calls


def test_widget_applies_the_panel_settings_through_the_logic(panel, fitted, monkeypatch):
    from slicer_stand_in import run_jobs_in_this_process

    widget, ui, calls = panel
    run_jobs_in_this_process(monkeypatch)
    assert not widget.logicMade                            # made on the first click only
    assert [label for label, _ in ui.sideComboBox.items] == ["Right ear", "Left ear"]
    # the panel starts at the pipeline's defaults (the parameter class's: setup() imports no torch)
    assert (ui.lRefFitSpinBox.value, ui.lRefFinalSpinBox.value) == (SegmentConfig().l_ref_fit,
                                                                    SegmentConfig().l_ref_final)
    assert (ui.iterationsSpinBox.value, ui.samplesSpinBox.value) == (SegmentConfig().outer_iterations,
                                                                     SegmentConfig().samples)
    assert not ui.applyButton.enabled                      # no volume yet
    node = widget.parameters.parameterNode
    assert node.GetSingletonTag() == "CochleaShapeSegmentation"
    assert node.GetParameter("side") == "right" and float(node.GetParameter("iterations")) == \
        SegmentConfig().outer_iterations

    assert ui.vestibuleWedgeSpinBox.value == SegmentConfig().vestibule_wedge_deg == 45.0

    for name, value in {"side": "left", "iterations": "5", "lRefFit": "0.3",
                        "vestibuleWedge": "0"}.items():   # e.g. a saved scene
        node.SetParameter(name, value)
    widget.enter()
    assert ui.sideComboBox.currentIndex == 1 and ui.iterationsSpinBox.value == 5 and ui.lRefFitSpinBox.value == 0.3
    assert ui.vestibuleWedgeSpinBox.value == 0.0

    volume = fitted["phantom"]["volume"]
    ui.volumeSelector.setCurrentNode(volume)
    assert ui.applyButton.enabled and ui.inputVolumeNameLabel.text == volume.GetName()

    seen = {}

    def replay(volume, points, settings, progress=None):
        seen["settings"] = settings
        progress(1.0, "fitted")
        return fitted["result"]

    real_segment = pipeline.segment
    monkeypatch.setattr(pipeline, "segment", replay)
    count = fitted["scene"].GetNumberOfNodes()
    ui.applyButton.emit("clicked(bool)", False)
    assert calls["errors"] == []
    settings = seen["settings"]
    assert (settings.side, settings.outer_iterations, settings.l_ref_fit, settings.vestibule_wedge_deg) == \
        ("left", 5, 0.3, 0.0)
    assert fitted["scene"].GetNumberOfNodes() > count
    foreground = calls["layers"][-1]["foreground"]
    assert foreground.GetName().endswith(NODE_NAMES["probability"])
    assert calls["tables"] and fitted["scene"].GetNodeByID(calls["tables"][-1]).IsA("vtkMRMLTableNode")
    assert "Cochlear duct length" in ui.statusLabel.text
    lateral = fitted["result"].measures["cdl_lateral_wall_mm"]
    assert f"{lateral['mean']:.1f} \u00b1 {lateral['std']:.1f} mm" in ui.statusLabel.text

    # a refused input (the real pipeline's check) is shown to the user and adds nothing
    monkeypatch.setattr(pipeline, "segment", real_segment)
    count = fitted["scene"].GetNumberOfNodes()
    ui.pointsSelector.setCurrentNode(mrml.markups_from_points(
        fitted["scene"], Markups(np.array([[900.0, 0.0, 0.0]]), ["center"], name="far away")))
    count += 2                                            # the point list and its display node
    ui.applyButton.emit("clicked(bool)", False)
    assert calls["errors"] and "outside" in calls["errors"][-1]
    assert fitted["scene"].GetNumberOfNodes() == count

    # refused before the fit starts (reading the inputs): shown the same way, nothing runs
    labels = mrml.volume_to_node(fitted["scene"], Volume(np.zeros((8, 8, 8), np.int16), (0.2, 0.2, 0.2)),
                                 "labels", labelmap=True)
    ui.volumeSelector.setCurrentNode(labels)
    count = fitted["scene"].GetNumberOfNodes()
    seen.clear()
    monkeypatch.setattr(pipeline, "segment", replay)
    ui.applyButton.emit("clicked(bool)", False)
    assert "label map" in calls["errors"][-1] and "failed" in ui.statusLabel.text
    assert seen == {} and fitted["scene"].GetNumberOfNodes() == count and not widget.runner.running
