"""LangevinVAEExplorerLogic on a real MRML scene (slicer-core) with the shipped model."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
for folder in (ROOT, ROOT / "LangevinVAEExplorer"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

pytest.importorskip("slicer", reason="slicer-core (real MRML) is not installed")

from cochleaai import io
from cochleaai.slicer import mrml  # noqa: E402
from cochleaai.errors import CochleaAIError  # noqa: E402
from cochleaai.progress import Cancelled  # noqa: E402
from cochleaai.slicer.results import SUSPECT_ATTRIBUTE  # noqa: E402
from cochleaai.slicer.results.vae import MISMATCH_ATTRIBUTE  # noqa: E402
from cochleaai.vae.explore import OUT_OF_DOMAIN_MISMATCH  # noqa: E402
from cochleaai.vae.shipped import default_model_path  # noqa: E402
from LangevinVAEExplorerLib.logic import (GENERATED_NAME, LATENT_MAP_NAME, RECONSTRUCTION_NAME,  # noqa: E402
                                          LangevinVAEExplorerLogic)

pytestmark = pytest.mark.skipif(not default_model_path().is_file(), reason="no shipped model")


@pytest.fixture(scope="module")
def logic():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    lg = LangevinVAEExplorerLogic()
    lg.load_model()
    yield lg
    torch.set_num_threads(before)


def test_sliders_regenerate_one_node_quickly(logic, scene):
    node = logic.generate(scene, [0.0, 0.0])
    assert node.GetName() == GENERATED_NAME
    count = scene.GetNumberOfNodes()
    times = []
    first = mrml.node_to_volume(node).array.copy()
    for z in ([1.5, -1.0], [-1.5, 1.0], [0.3, 0.3]):
        t0 = time.perf_counter()
        again = logic.generate(scene, z)
        times.append(time.perf_counter() - t0)
        assert again is node                                      # reused, not duplicated
    assert scene.GetNumberOfNodes() == count
    assert np.median(times) < 1.0                                 # interactive on a CPU
    assert np.abs(mrml.node_to_volume(node).array - first).mean() > 1.0
    assert node.GetAttribute("CochleaAI.LatentCoordinates") == "0.30000 0.30000"


def test_encode_a_phantom_and_interpolate(logic, scene):
    ph_a = logic.generate_phantom(scene, seed=150, fov="roi")["volume"]
    sample, z_rand = logic.random_sample(scene, seed=4)
    before = mrml.node_to_volume(ph_a).array.copy()
    z, recon = logic.encode(scene, ph_a)
    np.testing.assert_array_equal(mrml.node_to_volume(ph_a).array, before)   # input untouched
    assert z.shape == (2,) and np.all(np.isfinite(z))
    rec = mrml.node_to_volume(recon)
    # the reconstruction sits where the input is and looks like it (coarse: 2D latent space)
    np.testing.assert_allclose(rec.center, mrml.node_to_volume(ph_a).center, atol=0.3)
    small = mrml.node_to_volume(ph_a).resample_like(rec).array
    corr = np.corrcoef(small.ravel(), rec.array.ravel())[0, 1]
    assert corr > 0.7
    nodes = logic.interpolate(scene, ph_a, sample, steps=4)
    assert nodes["sequence"].GetNumberOfDataNodes() == 4
    assert nodes["proxy"] is not None and nodes["proxy"].IsA("vtkMRMLScalarVolumeNode")
    np.testing.assert_allclose(nodes["latent"][0], z, atol=1e-5)


def test_encode_never_writes_into_its_input_and_flags_what_the_model_never_learnt(logic, scene):
    phantom = logic.generate_phantom(scene, seed=151, fov="roi")["volume"]
    z, recon = logic.encode(scene, phantom)
    assert recon.GetAttribute(SUSPECT_ATTRIBUTE) == "no"
    assert 0.0 < float(recon.GetAttribute(MISMATCH_ATTRIBUTE)) < OUT_OF_DOMAIN_MISMATCH
    # encoding the reconstruction again (it has the reconstruction's name) makes a new node
    before = mrml.node_to_volume(recon).array.copy()
    _, again = logic.encode(scene, recon)
    assert again is not recon
    np.testing.assert_array_equal(mrml.node_to_volume(recon).array, before)
    with pytest.raises(CochleaAIError, match="also an input"):
        logic.encode(scene, phantom, reconstruction_node=phantom)
    volume = mrml.node_to_volume(phantom)
    noise = np.random.default_rng(1).normal(0.0, 400.0, volume.shape).astype(np.float32)
    _, flagged = logic.encode(scene, mrml.volume_to_node(scene, volume.copy(noise), "noise"))
    assert flagged.GetAttribute(SUSPECT_ATTRIBUTE) == "yes"


def test_encode_and_interpolate_in_steps_match_one_call_and_leave_the_scene_alone_on_cancel(logic, scene):
    """read_*_inputs (MRML) -> the worker's core function (the model from its file) -> add_*_nodes."""
    a, b = [logic.generate_phantom(scene, seed=seed, fov="roi")["volume"] for seed in (150, 152)]
    inputs = logic.read_encode_inputs(scene, a)
    assert inputs.model_path == str(default_model_path()) and inputs.volume_node is a
    z, recon = logic.add_encoding_nodes(inputs, logic.encode_function(inputs.model_path, inputs.volume))
    z_one, recon_one = logic.encode(scene, a)
    assert recon_one is recon and recon.GetName() == RECONSTRUCTION_NAME          # the node is reused
    np.testing.assert_allclose(z, z_one, atol=1e-6)

    inputs = logic.read_interpolation_inputs(scene, a, b, 3)
    result = logic.interpolate_function(inputs.model_path, inputs.volume_a, inputs.volume_b, inputs.steps)
    np.testing.assert_allclose(result.latent, logic.interpolate(scene, a, b, steps=3)["latent"], atol=1e-6)
    count = scene.GetNumberOfNodes()

    def cancel_when_ready(fraction, message):
        if message == "interpolation ready":
            raise Cancelled("test")
    with pytest.raises(Cancelled):
        logic.add_interpolation_nodes(inputs, result, progress=cancel_when_ready)
    assert scene.GetNumberOfNodes() == count
    assert logic.add_interpolation_nodes(inputs, result)["sequence"].GetNumberOfDataNodes() == 3
    with pytest.raises(CochleaAIError, match="at least 2 steps"):
        logic.read_interpolation_inputs(scene, a, b, 1)


def test_latent_map_node_and_png(logic, scene, tmp_path):
    result = logic.latent_map(scene, n=5, png_path=tmp_path / "map.png")
    assert result["node"].GetName() == LATENT_MAP_NAME
    dims = result["node"].GetImageData().GetDimensions()
    grid = logic.card["data"]["grid"]["shape"]
    assert dims == (5 * grid[2], 5 * grid[1], 1)
    assert result["png"].stat().st_size > 1000
    with pytest.raises(CochleaAIError):
        logic.latent_map(scene, n=1)


def test_bad_input_leaves_the_scene_alone(logic, scene, tmp_path):
    count = scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError):
        logic.generate(scene, [np.nan, 0.0])
    with pytest.raises(CochleaAIError):
        logic.encode(scene, None)
    with pytest.raises(CochleaAIError):
        logic.interpolate(scene, None, None)
    with pytest.raises(CochleaAIError):
        LangevinVAEExplorerLogic().load_model(tmp_path / "missing.pt")
    assert scene.GetNumberOfNodes() == count


def test_train_on_a_folder_can_be_cancelled_and_refuses_too_little(logic, scene, tmp_path):
    from cochleaai.volume import Volume

    grid = logic.card["data"]["grid"]
    rng = np.random.default_rng(0)
    folder = tmp_path / "vols"
    for i in range(3):
        arr = rng.normal(500, 300, size=(30, 30, 36)).astype(np.int16)   # other size/spacing
        io.write_volume(Volume(arr, 0.35), folder / f"v{i}.nrrd")
    fresh = LangevinVAEExplorerLogic()
    fresh.load_model()

    def cancel_in_training(fraction, message):
        if fraction > 0.15:
            raise Cancelled("test")
    with pytest.raises(Cancelled):
        fresh.train(tmp_path / "new", folder=folder, epochs=50, progress=cancel_in_training)
    with pytest.raises(CochleaAIError, match="at least two"):
        fresh.train(tmp_path / "new2", volume_nodes=[], epochs=1)
    # the model in use is still the shipped one
    assert fresh.model_summary()["path"] == str(default_model_path())
    assert grid["shape"] == fresh.card["data"]["grid"]["shape"]


def test_training_in_steps_off_the_calling_thread_matches_one_call(logic, scene, tmp_path, in_worker_thread):
    """read_training_inputs (MRML) -> compute_training on a worker thread -> load_model."""
    import torch

    from cochleaai.vae.model_io import load_model
    from cochleaai.volume import Volume

    rng = np.random.default_rng(1)
    nodes = [mrml.volume_to_node(scene, Volume(rng.normal(500, 300, size=(30, 30, 36)).astype(np.int16), 0.35),
                                 f"train {i}") for i in range(3)]
    fresh = LangevinVAEExplorerLogic()
    fresh.load_model()
    inputs = fresh.read_training_inputs(tmp_path / "split", nodes, epochs=2, seed=3)
    assert inputs.folder is None and len(inputs.volumes) == 3 and "train 0" in inputs.source
    path = in_worker_thread(lambda: LangevinVAEExplorerLogic.compute_training(inputs))
    assert fresh.model_summary()["path"] == str(default_model_path())   # nothing loaded yet
    summary = fresh.load_model(path)
    assert summary["path"] == str(tmp_path / "split")

    one_call = LangevinVAEExplorerLogic()
    one_call.load_model()
    assert one_call.train(tmp_path / "one", nodes, epochs=2, seed=3)["kind"] == summary["kind"]
    split_model, split_card = load_model(tmp_path / "split")
    one_model, one_card = load_model(tmp_path / "one")
    assert split_card["data"]["grid"] == one_card["data"]["grid"]
    for (name, a), (_, b) in zip(split_model.state_dict().items(), one_model.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), name

    with pytest.raises(CochleaAIError, match="where to save"):
        fresh.read_training_inputs("", nodes)
    with pytest.raises(CochleaAIError, match="at least two"):
        fresh.read_training_inputs(tmp_path / "x", nodes[:1])


def test_put_volume_reuses_the_named_volume_node_and_records_the_latent_point(scene):
    """The one place (used by the Logic and the demo) that writes decoded volumes to nodes."""
    from cochleaai.slicer.results.vae import LATENT_ATTRIBUTE, put_volume
    from cochleaai.volume import Volume

    vol = Volume(np.zeros((4, 5, 6), np.float32), 0.5)
    first = put_volume(scene, vol, "Decoded", z=np.array([0.25, -1.0], np.float32))
    assert first.IsA("vtkMRMLScalarVolumeNode") and first.GetAttribute(LATENT_ATTRIBUTE) == "0.25000 -1.00000"
    again = put_volume(scene, vol.copy(np.ones(vol.shape, np.float32)), "Decoded", z=[0.5])
    assert again is first and again.GetAttribute(LATENT_ATTRIBUTE) == "0.50000"
    assert mrml.node_to_volume(again).array.min() == 1.0
    # a node of another kind with that name is left alone: a new volume node is made
    points = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "Points")
    other = put_volume(scene, vol, "Points")
    assert other is not points and other.IsA("vtkMRMLScalarVolumeNode") and other.GetAttribute(LATENT_ATTRIBUTE) is None
