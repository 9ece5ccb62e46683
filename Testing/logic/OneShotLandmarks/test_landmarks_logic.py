"""OneShotLandmarksLogic training in two steps (the module trains off the GUI thread):
read_training_inputs on the MRML thread, compute_training on a worker thread, on a real
MRML scene (slicer-core) and the tiny training case of test_landmarks.py."""
from __future__ import annotations

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

from cochleaai.slicer import mrml  # noqa: E402
from cochleaai.errors import CochleaAIError  # noqa: E402
from cochleaai.segments import COCHLEA  # noqa: E402
from OneShotLandmarksLib.logic import OneShotLandmarksLogic  # noqa: E402
from landmark_cases import TINY, tiny_case  # noqa: E402


def test_training_in_two_steps_matches_one_call(tmp_path, in_worker_thread):
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
    assert scene.GetNumberOfNodes() == count    # training only reads the scene
    assert two_steps.labels == one_call.labels == ["top", "knob"]
    assert two_steps.card["training"]["data"] == one_call.card["training"]["data"]
    assert two_steps.card["training"]["best_validation_bce"] == pytest.approx(
        one_call.card["training"]["best_validation_bce"], rel=1e-5)
    for (name, a), (_, b) in zip(two_steps.net.state_dict().items(), one_call.net.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name

    with pytest.raises(CochleaAIError, match="landmarks"):
        logic.read_training_inputs(nodes[0], nodes[1], None, nodes[3], nodes[4])
    with pytest.raises(CochleaAIError, match="segment named"):
        logic.read_training_inputs(*nodes, segment_name="Stapes")
    scene.Clear(1)
