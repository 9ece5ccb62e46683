"""One-shot landmarks with the shipped phantom model: known answers on phantoms, the CLI,
and the module Logic on a real MRML scene."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cochleaai.errors import EXIT_FLAGGED, CochleaAIError  # noqa: E402
from cochleaai.landmarks.model_io import load_model, phantom_model_path  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
for _folder in (ROOT, ROOT / "OneShotLandmarks"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

pytestmark = pytest.mark.skipif(not phantom_model_path().is_file(), reason="the shipped phantom model is missing")

TARGET_SEED = 3                # not the reference (1000) nor the validation phantom (1001)


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return load_model(phantom_model_path())


@pytest.fixture(scope="module")
def reference(model):
    from cochleaai.phantom.core import make_phantom

    from cochleaai.bench.landmarks import REFERENCE_SEED

    return make_phantom(REFERENCE_SEED, fov="temporal")


@pytest.fixture(scope="module")
def target():
    from cochleaai.phantom.core import make_phantom

    return make_phantom(TARGET_SEED, fov="temporal")


def test_shipped_card_describes_the_model(model):
    card = model.card
    assert card["sha256"] and card["training"]["command"].startswith("python -m cochleaai")
    assert model.labels == ["apex", "center", "round_window"]
    assert phantom_model_path().stat().st_size < 5e6


def test_known_rigid_motion_of_the_reference_gives_its_landmarks_back_within_a_voxel(model, reference):
    from cochleaai.bench.landmarks import known_rigid_target
    from cochleaai.landmarks.detect import detect_landmarks

    moved, truth = known_rigid_target(reference, angles_deg=(12.0, -8.0, 15.0), shift_mm=(3.0, -2.0, 1.5))
    before = moved.array.copy()
    det = detect_landmarks(model, moved)
    np.testing.assert_array_equal(moved.array, before)                     # input untouched
    errors = np.linalg.norm(det.landmarks.points - truth, axis=1)
    assert errors.max() < reference.ct.spacing.min(), errors
    assert not det.flagged and det.confidence > 0.8


def test_no_structure_is_an_error_not_a_placement(model, reference):
    from cochleaai.landmarks.detect import detect_landmarks
    from cochleaai.landmarks.localise import StructureNotFound

    blank = reference.ct.copy(np.full(reference.ct.shape, 40, np.int16))    # soft tissue only
    with pytest.raises(StructureNotFound):
        detect_landmarks(model, blank)


def test_cli_detects_a_held_out_phantom(target, tmp_path):
    from cochleaai import io
    from cochleaai.cli import main

    files = target.save(tmp_path / "ph")
    phantom_model = ["--model", str(phantom_model_path())]
    rc = main(["landmarks", "detect", str(files["ct"]), *phantom_model, "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 0
    found = io.read_markups(tmp_path / "out" / "ct.mrk.json")
    assert found.labels == target.landmarks.labels
    errors = np.linalg.norm(found.points - target.landmarks.points, axis=1)
    assert errors.max() < 1.5, errors
    rows = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert rows[0]["confidence"] > 0.5 and not rows[0]["flagged"]
    assert rows[0]["file"] == str((tmp_path / "out" / "ct.mrk.json").absolute())
    # a rerun keeps the finished volume and reports the same row
    assert main(["landmarks", "detect", str(files["ct"]), *phantom_model, "--out", str(tmp_path / "out"),
                 "--quiet"]) == 0
    again = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert again[0]["status"] == "resumed" and again[0]["confidence"] == rows[0]["confidence"]
    # a corrupted model file is refused with a clear message
    bad = tmp_path / "bad.pt"
    bad.write_bytes(phantom_model_path().read_bytes()[:-100])
    (tmp_path / "bad.json").write_text(phantom_model_path().with_suffix(".json").read_text())
    assert main(["landmarks", "detect", str(files["ct"]), "--model", str(bad), "--out",
                 str(tmp_path / "o2"), "--quiet"]) == 2


def test_logic_detects_on_mrml_nodes_and_leaves_the_scene_alone_on_cancel(model, target):
    pytest.importorskip("slicer")
    from cochleaai.slicer import mrml
    from cochleaai.slicer.results.phantom import add_phantom_to_scene
    from cochleaai.progress import Cancelled
    from OneShotLandmarksLib.logic import TABLE_NAME, OneShotLandmarksLogic

    scene = mrml.new_scene()
    nodes = add_phantom_to_scene(scene, target, prefix="Target")
    logic = OneShotLandmarksLogic()
    logic.model = model
    count = scene.GetNumberOfNodes()

    def cancel(fraction, message):
        if fraction > 0.1:
            raise Cancelled("test")
    with pytest.raises(Cancelled):
        logic.detect(scene, [nodes["volume"]], progress=cancel)
    with pytest.raises(CochleaAIError):
        logic.detect(scene, None)
    assert scene.GetNumberOfNodes() == count

    result = logic.detect(scene, [nodes["volume"]])
    node = result["points"][0]
    assert node.GetName() == "Target CT landmarks" and scene.IsNodePresent(node)
    found = mrml.points_from_markups(node)
    truth = mrml.points_from_markups(nodes["landmarks"])
    assert found.labels == truth.labels
    assert np.linalg.norm(found.points - truth.points, axis=1).max() < 1.5
    table = mrml.table_to_dict(result["table"])
    assert result["table"].GetName() == TABLE_NAME and table["Volume"] == ["Target CT"]
    assert 0.5 < table["Confidence"][0] <= 1.0


def test_logic_and_cli_name_files_with_equal_stems_alike(tmp_path):
    """Files read by the Logic get the CLI's names: the folder in front where two share a stem.
    (Blank soft-tissue volumes: the structure is not found, so each gets a row quickly.)"""
    pytest.importorskip("slicer")
    from cochleaai import io
    from cochleaai.slicer import mrml
    from cochleaai.cli import main
    from cochleaai.volume import Volume
    from OneShotLandmarksLib.logic import OneShotLandmarksLogic

    blank = Volume(np.full((30, 30, 30), 40, np.int16), 0.5)
    for name in ("a/ct.nrrd", "b/ct.nrrd", "c/ear.nii.gz"):
        io.write_volume(blank, tmp_path / name)
    folders = [tmp_path / "a", tmp_path / "b", tmp_path / "c"]
    expected = ["a_ct", "b_ct", "ear"]

    scene = mrml.new_scene()
    result = OneShotLandmarksLogic().detect_files(scene, folders)
    assert mrml.table_to_dict(result["table"])["Volume"] == expected
    assert result["points"] == [None, None, None]

    assert main(["landmarks", "detect", *map(str, folders), "--out", str(tmp_path / "out"), "--quiet"]) == EXIT_FLAGGED
    rows = json.loads((tmp_path / "out" / "detections.json").read_text())
    assert [r["volume"] for r in rows] == expected and all(r["confidence"] == 0 for r in rows)
