"""MetalArtifactReductionLogic on a real MRML scene (slicer-core): simulate, reduce, cancel."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
for _folder in (ROOT, ROOT / "MetalArtifactReduction"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

pytest.importorskip("slicer", reason="slicer-core (real MRML) is not installed")

from cochleaai import CochleaAIError
from cochleaai.slicer import mrml  # noqa: E402
from cochleaai.progress import Cancelled  # noqa: E402
from MetalArtifactReductionLib.logic import (MetalArtifactReductionLogic, model_from_phantom_node,  # noqa: E402
                                             model_from_table, self_test_mar_logic)


@pytest.fixture(scope="module")
def shared(phantom_scene):
    scene, logic, phantom = phantom_scene
    from cochleaai.simulation.projector import FanBeamGeometry
    from cochleaai.simulation.ct import ScanConfig

    sim = logic.simulate_implant(scene, phantom["volume"], array="hifocus16", depth_deg=420.0, seed=3,
                                 config=ScanConfig(geometry=FanBeamGeometry(n_views=360)))
    return scene, logic, phantom, sim


def test_simulated_implant_nodes(shared):
    scene, logic, phantom, sim = shared
    assert sim["volume"].IsA("vtkMRMLScalarVolumeNode") and scene.IsNodePresent(sim["volume"])
    assert sim["preop"] is None                                   # a ROI phantom is not cropped
    seg = sim["metal"].GetSegmentation()
    assert seg.GetNumberOfSegments() == 1 and seg.GetNthSegment(0).GetName() == "Electrode metal"
    contacts = sim["contacts"]
    assert contacts.GetNumberOfControlPoints() == 16
    assert contacts.GetNthControlPointLabel(0) == "E1"
    assert contacts.GetNthControlPointDescription(0).endswith("deg")
    post = mrml.node_to_volume(sim["volume"])
    pre = mrml.node_to_volume(phantom["volume"])
    assert post.same_geometry(pre) and post.array.max() >= 3000 and pre.array.max() < 3000
    assert sim["summary"]["depth_deg"] == 420.0
    import slicer

    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    folders = {hierarchy.GetItemParent(hierarchy.GetItemByDataNode(sim[k]))
               for k in ("volume", "target", "metal", "contacts", "clean")}
    # the default post-op is the pre-op plus the artifact: the phantom itself away from the metal
    clean = mrml.node_to_volume(sim["clean"])
    assert sim["summary"]["artifact_mode"] == "injected" and clean.same_geometry(pre)
    off_by = {name: float(np.median(np.abs(v.array.astype(int) - pre.array))) for name, v in
              (("post-op", post), ("scan without implant", clean))}
    assert off_by["post-op"] < 0.5 * off_by["scan without implant"], off_by
    assert len(folders) == 1 and hierarchy.GetItemName(folders.pop()).endswith(" CI")   # one folder per run


def test_reduce_artifacts_gives_volume_and_numbered_contacts(shared):
    scene, logic, phantom, sim = shared
    before = mrml.node_to_volume(sim["volume"]).array.copy()
    out = logic.reduce_artifacts(scene, sim["volume"], "li", max_contacts=16)
    assert out["volume"].GetAttribute("CochleaAI.MARMethod") == "li"
    np.testing.assert_array_equal(mrml.node_to_volume(sim["volume"]).array, before)   # input untouched
    truth = mrml.points_from_markups(sim["contacts"]).points
    found = mrml.points_from_markups(out["contacts"]).points
    from scipy.spatial import cKDTree

    d, _ = cKDTree(found).query(truth[:10])          # the intracochlear, apical contacts
    assert np.median(d) < 0.5


def test_the_implanted_array_reaches_the_contact_detector(shared):
    """HiFocus 1J (1.1 mm pitch) keeps the deep spots, so naming it keeps the same chain,
    cut to its 16 contacts from the apex; a closely spaced array named instead is placed at
    its own pitch; an unknown one is refused and leaves no node behind."""
    from scipy.spatial import cKDTree

    scene, logic, phantom, sim = shared
    plain = mrml.points_from_markups(logic.reduce_artifacts(scene, sim["volume"], "li")["contacts"]).points
    named = mrml.points_from_markups(
        logic.reduce_artifacts(scene, sim["volume"], "li", array="hifocus16")["contacts"]).points
    assert len(plain) > 16 and len(named) == 16
    truth = mrml.points_from_markups(sim["contacts"]).points[:10]     # the apical ones
    errors = {k: cKDTree(v).query(truth)[0] for k, v in (("plain", plain), ("named", named))}
    assert np.median(errors["named"]) <= np.median(errors["plain"]) + 0.02 and np.median(errors["named"]) < 0.3
    # numbered from the apex: the lead runs on past the basal end of the chain, not the apical
    nearest = cKDTree(mrml.points_from_markups(sim["contacts"]).points).query(named)[1]
    assert nearest[:3].mean() < nearest[-3:].mean() - 8
    slim = mrml.points_from_markups(
        logic.reduce_artifacts(scene, sim["volume"], "li", array="slim22")["contacts"]).points
    steps = np.linalg.norm(np.diff(slim, axis=0), axis=1)
    assert len(slim) > 2 and np.median(steps) == pytest.approx(0.9, abs=0.25)
    count = scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError):
        logic.reduce_artifacts(scene, sim["volume"], "li", array="no-such-array")
    assert scene.GetNumberOfNodes() == count


def test_the_refiner_brings_simulated_contacts_closer(shared):
    """On a simulated implant the shipped refiner puts the intracochlear contacts nearer
    the truth than the geometric bend shift does (bench mar: about half the median)."""
    from scipy.spatial import cKDTree

    from cochleaai.contacts.refiner import shipped_refiner
    from cochleaai.contacts.detect import detect_contacts

    if shipped_refiner() is None:
        pytest.skip("no contact refiner in Resources/Models")
    scene, logic, phantom, sim = shared
    post = mrml.node_to_volume(sim["volume"])
    post = post.copy(post.array.astype(np.float32))
    mask = post.array >= 3000.0
    markups = mrml.points_from_markups(sim["contacts"])
    truth = markups.points[[("extracochlear" not in label) for label in markups.labels]]
    errors = {}
    for name, refiner in (("refined", "shipped"), ("geometric", None)):
        found = detect_contacts(post, mask, array="hifocus16", refiner=refiner).points
        errors[name] = cKDTree(found).query(truth)[0]
    # measured here: 0.046 against 0.12 mm
    assert np.median(errors["refined"]) < 0.8 * np.median(errors["geometric"]), errors
    assert np.median(errors["refined"]) < 0.1


def test_no_metal_is_reported_and_returned_unchanged(shared):
    scene, logic, phantom, sim = shared
    out = logic.reduce_artifacts(scene, phantom["volume"], "nmar")
    assert any("No metal" in m for m in out["messages"]) and out["contacts"] is None
    np.testing.assert_array_equal(mrml.node_to_volume(out["volume"]).array,
                                  mrml.node_to_volume(phantom["volume"]).array)


def test_bad_requests_and_cancel_leave_the_scene_as_it_was(shared):
    scene, logic, phantom, sim = shared
    count = scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError):
        logic.reduce_artifacts(scene, None)
    with pytest.raises(CochleaAIError):
        logic.reduce_artifacts(scene, sim["volume"], "gan")
    with pytest.raises(CochleaAIError, match="insertion depth"):
        logic.simulate_implant(scene, phantom["volume"], depth_deg=2000.0)
    plain = mrml.volume_to_node(scene, mrml.node_to_volume(phantom["volume"]), "no seed")
    count = scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError, match="No cochlea model"):
        logic.simulate_implant(scene, plain)

    def cancel_late(fraction, message):
        if fraction > 0.9:
            raise Cancelled("test")

    with pytest.raises(Cancelled):
        logic.reduce_artifacts(scene, sim["volume"], "bhc", progress=cancel_late)
    assert scene.GetNumberOfNodes() == count


def test_the_output_node_is_never_the_input_node(shared):
    scene, logic, phantom, sim = shared
    before = mrml.node_to_volume(sim["volume"]).array.copy()
    count = scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError, match="also an input"):
        logic.reduce_artifacts(scene, sim["volume"], "li", output_node=sim["volume"])
    np.testing.assert_array_equal(mrml.node_to_volume(sim["volume"]).array, before)
    assert scene.GetNumberOfNodes() == count


def test_model_from_a_shape_table(shared):
    scene, logic, phantom, sim = shared
    from cochleaai.phantom.core import make_phantom

    model = make_phantom(1, fov="roi").model
    table = mrml.table_from_dict(scene, {k: float(v) for k, v in model.as_dict().items()}, "shape")
    np.testing.assert_allclose(model_from_table(table).theta, model.theta)
    # the phantom's volume node records its seed: the same true shape comes back from it
    np.testing.assert_array_equal(model_from_phantom_node(phantom["volume"]).theta, model.theta)
    assert model_from_phantom_node(sim["volume"]) is None           # no phantom seed recorded
    bad = mrml.table_from_dict(scene, {"a": 4.0}, "partial")
    with pytest.raises(CochleaAIError, match="lacks the shape parameters"):
        model_from_table(bad)


def test_shape_tables_and_shape_files_are_read_alike(shared, tmp_path):
    """A table node (Name/Value rows or one column per parameter) and a JSON file (truth.json's
    ``theta``, a fitted ``parameters`` mapping) go through one parser, with one set of errors."""
    import json

    from cochleaai.shape import PARAM_NAMES, CochleaModel
    from cochleaai.simulation.cli import load_model_parameters

    scene = shared[0]
    theta = CochleaModel().theta + np.arange(10) * 0.01
    named = dict(zip(PARAM_NAMES, theta.tolist()))
    rows = mrml.table_from_dict(scene, named, "rows")
    columns = mrml.table_from_dict(scene, {k: [v] for k, v in named.items()}, "columns")
    (tmp_path / "truth.json").write_text(json.dumps({"theta": theta.tolist(), "seed": 1}))
    (tmp_path / "fit.json").write_text(json.dumps({"parameters": named}))
    (tmp_path / "list.json").write_text(json.dumps(theta.tolist()))
    for got in (model_from_table(rows).theta, model_from_table(columns).theta,
                *(load_model_parameters(tmp_path / f) for f in ("truth.json", "fit.json", "list.json"))):
        np.testing.assert_array_equal(got, theta)
    (tmp_path / "partial.json").write_text(json.dumps({"parameters": {"a": 4.0}}))
    with pytest.raises(CochleaAIError, match="partial.json lacks the shape parameters b, alpha"):
        load_model_parameters(tmp_path / "partial.json")
    (tmp_path / "short.json").write_text(json.dumps({"theta": theta.tolist()[:9]}))
    with pytest.raises(CochleaAIError, match="holds no 10 cochlea shape parameters; give the truth.json"):
        load_model_parameters(tmp_path / "short.json")
    with pytest.raises(CochleaAIError, match="The table 'partial' lacks the shape parameters b, alpha.*; choose"):
        model_from_table(mrml.table_from_dict(scene, {"a": 4.0}, "partial"))


def test_module_self_test_checks():
    scene = mrml.new_scene()
    try:
        assert self_test_mar_logic(MetalArtifactReductionLogic(), scene) == []
    finally:
        scene.Clear(1)


def test_training_scans_are_read_from_the_scene(shared):
    scene, logic, phantom, sim = shared
    count = scene.GetNumberOfNodes()
    scans = logic.read_training_scans(phantom["volume"])         # a phantom: its truth guides the array
    assert len(scans) == 1 and scans[0].name == phantom["volume"].GetName()
    np.testing.assert_allclose(scans[0].model.theta, model_from_phantom_node(phantom["volume"]).theta)
    assert scans[0].volume.array.shape == mrml.node_to_volume(phantom["volume"]).array.shape
    with pytest.raises(CochleaAIError, match="pre-operative"):
        logic.read_training_scans(None)
    with pytest.raises(CochleaAIError, match="No cochlea model"):
        logic.read_training_scans(sim["volume"])                 # a simulated scan has no phantom seed
    assert scene.GetNumberOfNodes() == count                      # the scene is only read


def test_reduce_in_three_steps_passes_plain_data_to_a_core_function(shared):
    """read_reduce_inputs (MRML) -> compute (a core function on plain data, as the worker process
    runs it: through pickle) -> add_reduce_nodes gives what the one call gives; results for a
    volume removed meanwhile are refused and add nothing."""
    import pickle

    from cochleaai import worker

    scene, logic, phantom, sim = shared
    inputs = logic.read_reduce_inputs(scene, sim["volume"], "li", max_contacts=16)
    assert worker.function_reference(inputs.function) == "cochleaai.mar.dispatch:reduce_and_find_contacts"
    args, kwargs = pickle.loads(pickle.dumps((inputs.args, inputs.kwargs)))
    result = pickle.loads(pickle.dumps(inputs.function(*args, **kwargs)))
    nodes = logic.add_reduce_nodes(inputs, result)
    once = logic.reduce_artifacts(scene, sim["volume"], "li", max_contacts=16)
    assert nodes["volume"].GetName() == once["volume"].GetName() == f"{sim['volume'].GetName()} LI"
    np.testing.assert_array_equal(mrml.node_to_volume(nodes["volume"]).array,
                                  mrml.node_to_volume(once["volume"]).array)
    np.testing.assert_allclose(mrml.points_from_markups(nodes["contacts"]).points,
                               mrml.points_from_markups(once["contacts"]).points)
    assert nodes["contacts"].GetName() == f"{sim['volume'].GetName()} contacts"
    assert (nodes["messages"], nodes["metal_voxels"]) == (once["messages"], once["metal_voxels"])

    gone = mrml.volume_to_node(scene, mrml.node_to_volume(sim["volume"]), "removed while running")
    inputs = logic.read_reduce_inputs(scene, gone, "li")
    scene.RemoveNode(gone)
    count = scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError, match="removed from the scene"):
        logic.add_reduce_nodes(inputs, result)
    assert scene.GetNumberOfNodes() == count


def test_a_margan_model_goes_to_the_worker_as_its_checked_file(shared, tmp_path):
    """The model of the Logic (a file, or a model read from one) is passed as its weights file,
    checked before anything runs; the other methods need none."""
    from cochleaai.mar.margan.model_io import MarganModel, load_model, model_file
    from cochleaai.mar.methods import default_model_available, default_model_path

    scene, _, phantom, sim = shared
    if default_model_available():       # a model read from its file knows it
        assert model_file(load_model()) == str(default_model_path().absolute())
    logic = MetalArtifactReductionLogic()
    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"weights")
    (tmp_path / "mine.json").write_text("{}")
    assert logic.read_reduce_inputs(scene, sim["volume"], "margan").model is None     # the shipped one
    logic.use_trained_model({"model_path": str(tmp_path / "mine"), "training": {}})
    assert logic.model == str(weights.absolute())
    assert logic.read_reduce_inputs(scene, sim["volume"], "margan").model == str(weights.absolute())
    assert logic.read_reduce_inputs(scene, sim["volume"], "nmar").model is None
    logic.model = MarganModel(None, None, path=str(weights))
    assert logic.read_reduce_inputs(scene, sim["volume"], "MARGAN").model == str(weights.absolute())
    with pytest.raises(CochleaAIError, match="not read from a file"):
        logic.read_reduce_inputs(scene, sim["volume"], "margan", model=MarganModel(None, None))
    (tmp_path / "mine.json").unlink()
    with pytest.raises(CochleaAIError, match="card"):
        logic.read_reduce_inputs(scene, sim["volume"], "margan")
    weights.unlink()
    count = scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError, match="does not exist"):
        logic.reduce_artifacts(scene, sim["volume"], "margan")
    assert scene.GetNumberOfNodes() == count
