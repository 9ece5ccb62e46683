"""OneShotLandmarksLogic in steps (the module trains and detects in a worker process):
read_training_inputs on the MRML thread, compute_training on a worker thread or the core
function train_to_file (it saves the model and returns its path), models kept with their
files, detection read / computed / added in steps, on a real MRML scene (slicer-core) and
the tiny training case of test_landmarks.py."""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
for _folder in (ROOT, ROOT / "OneShotLandmarks", ROOT / "Testing"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

pytest.importorskip("slicer", reason="slicer-core (real MRML) is not installed")
torch = pytest.importorskip("torch")

from cochleaai import worker  # noqa: E402
from cochleaai.slicer import mrml  # noqa: E402
from cochleaai.errors import CochleaAIError  # noqa: E402
from cochleaai.landmarks.model_io import default_model_path, load_model, phantom_model_path  # noqa: E402
from cochleaai.segments import COCHLEA  # noqa: E402
from OneShotLandmarksLib.logic import OneShotLandmarksLogic  # noqa: E402
from landmark_cases import TINY, tiny_case  # noqa: E402


def test_training_in_two_steps_matches_one_call(tmp_path, in_worker_thread, one_torch_thread):
    ref, ref_mask, lm, val, val_mask = tiny_case()
    scene = mrml.new_scene()
    nodes = (mrml.volume_to_node(scene, ref, "Reference"),
             mrml.segmentation_from_masks(scene, [(COCHLEA, ref_mask)], ref, "Reference seg"),
             mrml.markups_from_points(scene, lm),
             mrml.volume_to_node(scene, val, "Validation"),
             mrml.segmentation_from_masks(scene, [(COCHLEA, val_mask)], val, "Validation seg"))
    count = scene.GetNumberOfNodes()

    logic = OneShotLandmarksLogic()
    inputs = logic.read_training_inputs(*nodes)
    assert inputs.data == {"reference": "Reference", "validation": "Validation",
                           "landmarks": nodes[2].GetName(), "segment": "Cochlea", "side": "unknown"}
    np.testing.assert_array_equal(inputs.reference_mask, ref_mask)
    np.testing.assert_allclose(inputs.landmarks.points, lm.points, atol=1e-6)
    two_steps = in_worker_thread(lambda: logic.compute_training(inputs, output_path=tmp_path / "split.pt",
                                                            config=TINY, seed=1))
    assert logic.model is None                  # compute_training keeps nothing: the caller decides
    assert (tmp_path / "split.json").is_file()

    one_call = OneShotLandmarksLogic().train(scene, *nodes, config=TINY, seed=1)
    # what the module's worker process runs: plain arguments in, the model's file out
    args, kwargs = logic.training_arguments(inputs, tmp_path / "worker", config=TINY, seed=1)
    worker.function_reference(logic.train_function)
    path = logic.train_function(*pickle.loads(pickle.dumps(args)), **kwargs)
    assert path == str(tmp_path / "worker.pt") and logic.model is None
    in_file = load_model(path)
    assert scene.GetNumberOfNodes() == count    # training only reads the scene
    assert two_steps.labels == one_call.labels == in_file.labels == ["top", "knob"]
    assert two_steps.card["training"]["data"] == one_call.card["training"]["data"] == in_file.card["training"]["data"]
    assert in_file.card["training"]["command"] == "OneShotLandmarks module: Train"
    assert two_steps.card["training"]["best_validation_bce"] == pytest.approx(
        one_call.card["training"]["best_validation_bce"], rel=1e-5)
    for model in (one_call, in_file):
        for (name, a), (_, b) in zip(two_steps.net.state_dict().items(), model.net.state_dict().items()):
            assert torch.allclose(a, b, atol=1e-6), name

    with pytest.raises(CochleaAIError, match="landmarks"):
        logic.read_training_inputs(nodes[0], nodes[1], None, nodes[3], nodes[4])
    with pytest.raises(CochleaAIError, match="segment named"):
        logic.read_training_inputs(*nodes, segment_name="Stapes")
    scene.Clear(1)


def test_the_logic_keeps_each_model_with_its_file(tmp_path):
    """Detect in a worker process gets the model as its file: load_model and train keep it,
    training without a path gets a new file of the Logic's own each time, and a folder of
    references gives its checked files."""
    logic = OneShotLandmarksLogic()
    logic.load_model()
    assert logic.model_path == str(default_model_path())
    stem = phantom_model_path().with_suffix("")
    logic.load_model(stem.with_suffix(".json"))         # the card or the stem name the same model
    assert logic.model_path == str(phantom_model_path()) and logic.model.labels == load_model(stem).labels

    first, second = logic.training_path(), logic.training_path()
    assert first != second and Path(first).parent == Path(second).parent and Path(first).parent.is_dir()
    assert logic.training_path(tmp_path / "mine.pt") == str(tmp_path / "mine.pt")

    for stem in ("b", "a"):
        for suffix in (".pt", ".json"):
            (tmp_path / f"{stem}{suffix}").write_bytes(phantom_model_path().with_suffix(suffix).read_bytes())
    assert logic.model_files(tmp_path) == [str(tmp_path / "a.pt"), str(tmp_path / "b.pt")]
    assert len(logic.load_models(tmp_path)) == 2
    (tmp_path / "b.pt").write_bytes(b"damaged")
    with pytest.raises(CochleaAIError, match="b.pt"):
        logic.model_files(tmp_path)
    with pytest.raises(CochleaAIError, match="No model"):
        logic.model_files(tmp_path / "empty")


def test_detection_in_steps_matches_one_call_and_reads_nodes_as_asked(scene):
    """read_detection_inputs (Volumes copied out: what goes to the worker) + detect_function
    + add_result_nodes give detect's nodes; detect reads each node only when its turn comes,
    so a node that is no volume gets a row with the reason there, and is refused up front
    when the volumes are copied out for a worker."""
    logic = OneShotLandmarksLogic()
    blank = mrml.volume_to_node(scene, tiny_case()[0].copy(np.full((40, 40, 40), 40, np.float32)), "Blank")
    count = scene.GetNumberOfNodes()
    inputs = logic.read_detection_inputs(scene, blank, [str(phantom_model_path())])
    args, kwargs = logic.detection_arguments(inputs)
    results = logic.detect_function(*pickle.loads(pickle.dumps(args)), **kwargs)
    assert scene.GetNumberOfNodes() == count            # computing adds nothing
    in_steps = logic.add_result_nodes(inputs, results)
    one_call = logic.detect(scene, [blank], model=load_model(phantom_model_path()))
    for result in (in_steps, one_call):
        assert result["points"] == [None] and result["rows"][0]["volume"] == "Blank"
        assert mrml.table_to_dict(result["table"])["Volume"] == ["Blank"]
    assert in_steps["rows"][0]["reason"] == one_call["rows"][0]["reason"]

    lazy = logic.detect(scene, [None])                   # the shipped model
    assert lazy["rows"][0]["volume"] == "(none)" and "No target volume" in lazy["rows"][0]["reason"]
    with pytest.raises(CochleaAIError, match="No target volume"):
        logic.read_detection_inputs(scene, [None])
    with pytest.raises(CochleaAIError, match="No MRML scene"):
        logic.read_detection_inputs(None, [blank])
