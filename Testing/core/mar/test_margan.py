"""MARGAN: networks, losses, model files, inference and the command line (cochleaai.mar.margan)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cochleaai import CochleaAIError
from cochleaai.volume import Volume

torch = pytest.importorskip("torch")


@pytest.fixture
def tiny_model(tmp_path, one_torch_thread):
    from cochleaai.mar.margan.model_io import load_model, save_model
    from cochleaai.mar.margan.network import GeneratorConfig, build_generator

    config = GeneratorConfig((4, 8))
    torch.manual_seed(0)
    g = build_generator(config)
    with torch.no_grad():
        g.head.weight.normal_(0, 0.1)        # a non-trivial artifact, so that changes show
    pt, _ = save_model(g, tmp_path / "tiny", config, {"training": {"note": "test"}}, grid_zyx=(12, 12, 16))
    return load_model(pt)


def _metal_volume(shape=(12, 12, 16), metal=True):
    arr = np.zeros(shape, np.float32)
    arr[:, :, : shape[2] // 2] = 1500.0
    if metal:
        arr[5:7, 5:7, 7:9] = 3071.0
    return Volume(arr, (0.2, 0.2, 0.2))


def test_unet_keeps_shape_and_starts_as_identity(one_torch_thread):
    from cochleaai.mar.margan.network import GeneratorConfig, build_discriminator, build_generator, pad_to_multiple

    g = build_generator(GeneratorConfig((4, 8, 16)))
    x, crop = pad_to_multiple(np.random.default_rng(0).random((50, 50, 60), dtype=np.float32), 4, 0.0)
    assert x.shape == (52, 52, 60) and crop == (slice(0, 50), slice(0, 50), slice(0, 60))
    t = torch.from_numpy(x)[None, None]
    with torch.no_grad():
        y = g(t)
        score = build_discriminator()(t)
    assert y.shape == t.shape
    torch.testing.assert_close(y, t)                         # zero head: no artifact predicted yet
    assert score.shape[:2] == (1, 1) and score.shape[2] == 52 // 8


def test_losses_on_analytic_cases():
    from cochleaai.mar.margan.losses import (discriminator_loss, gaussian_blur3d, generator_adversarial, mse_loss,
                                             retinex_loss)

    c = torch.full((1, 1, 9, 9, 9), 0.5)
    torch.testing.assert_close(gaussian_blur3d(c), c)          # a constant stays constant
    # constant output: reflectance 1, so |0.5 - 1| / mean|input| = 0.5 / 1
    assert float(retinex_loss(c, torch.ones_like(c))) == pytest.approx(0.5, abs=1e-6)
    assert float(retinex_loss(torch.ones_like(c), torch.ones_like(c))) == pytest.approx(0.0, abs=1e-6)
    assert float(mse_loss(c, torch.zeros_like(c))) == pytest.approx(0.25)
    assert float(generator_adversarial(torch.zeros(3))) == pytest.approx(0.5)
    assert float(discriminator_loss(torch.ones(3), torch.zeros(3))) == pytest.approx(0.0)
    assert float(discriminator_loss(torch.zeros(3), torch.ones(3))) == pytest.approx(1.0)


def test_model_file_checksum_and_corrupt_file(tiny_model, tmp_path):
    from cochleaai.io import sha256_of
    from cochleaai.mar.margan.model_io import load_model

    pt = tmp_path / "tiny.pt"
    card = json.loads((tmp_path / "tiny.json").read_text())
    assert card["sha256"] == sha256_of(pt) and card["format"] == "cochleaai.margan/1"
    pt.write_bytes(pt.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(CochleaAIError, match="checksum"):
        load_model(pt)
    with pytest.raises(CochleaAIError, match="does not exist.*nmar"):
        load_model(tmp_path / "missing.pt")


def test_a_model_file_is_read_once_while_it_stays_the_same(tmp_path, tiny_model):
    import os

    from cochleaai.mar.margan.model_io import cached_model, save_model

    assert cached_model(tiny_model) is tiny_model                  # a loaded model is used as it is
    pt, _ = save_model(tiny_model.generator, tmp_path / "cached", tiny_model.config, grid_zyx=(12, 12, 16))
    first = cached_model(pt)
    assert cached_model(str(pt)) is first                          # same file, same object
    stamp = pt.stat().st_mtime_ns + 10**9
    os.utime(pt, ns=(stamp, stamp))                                # the file changed: read again
    again = cached_model(pt)
    assert again is not first and cached_model(pt) is again


def test_missing_model_is_a_clear_error_and_nmar_still_works(tmp_path):
    from cochleaai.mar.dispatch import reduce_metal_artifacts

    vol = _metal_volume((8, 24, 24))
    with pytest.raises(CochleaAIError, match="does not exist"):
        reduce_metal_artifacts(vol, "margan", model=tmp_path / "none.pt")
    assert reduce_metal_artifacts(vol, "nmar").has_metal


def test_no_metal_returns_the_input(tiny_model):
    from cochleaai.mar.dispatch import reduce_metal_artifacts

    vol = _metal_volume(metal=False)
    before = vol.array.copy()
    res = reduce_metal_artifacts(vol, "margan", model=tiny_model)
    np.testing.assert_array_equal(res.image.array, before)
    assert "No metal" in res.messages[-1]


def test_inference_on_a_tiny_volume_and_in_tiles(tiny_model):
    from cochleaai.mar.dispatch import reduce_metal_artifacts
    from cochleaai.mar.margan.inference import correct

    vol = _metal_volume()
    before = vol.array.copy()
    res = reduce_metal_artifacts(vol, "margan", model=tiny_model)
    np.testing.assert_array_equal(vol.array, before)           # input untouched
    metal = res.metal_mask
    # the network's metal-free estimate everywhere, blooming included; the metal back on request
    np.testing.assert_allclose(res.image.array, correct(tiny_model, before, metal, vol.spacing), atol=1e-3)
    kept = reduce_metal_artifacts(vol, "margan", model=tiny_model, keep_metal=True)
    np.testing.assert_array_equal(kept.image.array[metal], before[metal])
    np.testing.assert_array_equal(kept.image.array[~metal], res.image.array[~metal])
    assert np.abs(res.image.array - before)[~metal].max() > 0.1
    # a volume much larger than the tile: only the metal's surroundings change, no seams
    big = np.full((40, 40, 48), 1500.0, np.float32)
    mask = np.zeros(big.shape, bool)
    mask[20:22, 20:22, 24:26] = True
    big[mask] = 3071.0
    out = correct(tiny_model, big, mask, (0.2, 0.2, 0.2))
    assert out.shape == big.shape
    np.testing.assert_array_equal(out[:5], big[:5])              # far from the metal: copied
    assert np.isfinite(out).all()


def test_cli_end_to_end_on_a_tiny_set(tmp_path, one_torch_thread, monkeypatch):
    from cochleaai.cli import main
    from cochleaai.simulation import scanner_draw

    monkeypatch.setattr(scanner_draw, "VIEWS", (360,))          # one small projector keeps it quick
    pairs = tmp_path / "pairs"
    assert main(["simulate-pairs", "--out", str(pairs), "--n", "2", "--seed", "3", "--quiet", "--threads", "1"]) == 0
    manifest = json.loads((pairs / "manifest.json").read_text())
    assert manifest["pairs"] == ["pair_00000", "pair_00001"] and not manifest["failed"]
    # realistic pairs by default: the target is the anatomy itself, the input it plus the artifact
    assert manifest["artifact_mode"] == "injected"
    assert json.loads((pairs / "pair_00000" / "pair.json").read_text())["artifact_mode"] == "injected"
    assert (pairs / "manifest.csv").read_text().count("done") == 2
    for name in manifest["pairs"]:
        assert {"preop.nrrd", "postop.nrrd", "metal.nrrd", "contacts.mrk.json", "pair.json"} <= \
            {p.name for p in (pairs / name).iterdir()}
    # the same set trains the contact refiner, whose model then loads and refines
    from cochleaai.contacts.refiner import load_refiner

    assert main(["contacts-train", "--pairs", str(pairs), "--out", str(tmp_path / "refiner"), "--quiet"]) == 0
    refiner = load_refiner(tmp_path / "refiner.npz")
    assert refiner.card["pairs"] == 2 and refiner.card["samples"] >= 10 and refiner.card["pairs_seed"] == 3
    model = tmp_path / "m"
    assert main(["margan", "train", "--pairs", str(pairs), "--out", str(model), "--steps", "2",
                 "--channels", "4,8", "--val-every", "1", "--adv-start", "1", "--quiet"]) == 0
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["training"]["steps_done"] == 2 and card["training"]["n_val"] == 1
    # the correction's gain by distance, measured on the validation pair, is on the card
    assert card["gain_by_distance_mm"] and all(0.0 <= g <= 1.0 for _, g in card["gain_by_distance_mm"])
    assert card["training"]["val_error_by_distance_hu"][0]["voxels"] > 0
    assert (tmp_path / "m.checkpoint.pt").is_file()
    out = tmp_path / "corrected.nrrd"
    assert main(["mar", str(pairs / "pair_00000" / "postop.nrrd"), "--out", str(out), "--model", str(model),
                 "--quiet"]) == 0
    assert out.is_file()
    # a second run resumes every pair instead of simulating it again
    assert main(["simulate-pairs", "--out", str(pairs), "--n", "2", "--seed", "3", "--quiet"]) == 0
    assert (pairs / "manifest.csv").read_text().count("resumed") == 2


def test_shipped_model_loads_and_is_the_default():
    from cochleaai.mar.margan.model_io import load_model
    from cochleaai.mar.methods import default_method, default_model_available, default_model_path

    if not default_model_available():
        assert default_method() == "nmar"
        pytest.skip("no MARGAN model in Resources/Models")
    assert default_method() == "margan"
    model = load_model()
    card = model.card
    assert default_model_path().stat().st_size < 8_000_000
    assert card["training"]["command"].startswith("python -m cochleaai margan train")
    assert card["training"]["val_rmse_hu"] < card["training"]["val_rmse_hu_input"]
    assert tuple(card["grid_zyx"]) == (50, 50, 60) and card["spacing_mm"] == 0.2
    # trained on pairs that keep the anatomy's own image, with the correction's reach measured
    assert card["data_source"]["artifact_mode"] == "injected"
    rows = card["training"]["val_error_by_distance_hu"]
    assert all(r["with_gain"] <= r["input"] for r in rows if r["voxels"])
    assert card["gain_by_distance_mm"][0][1] == 1.0


def test_pixel_losses_of_the_ablation(tmp_path):
    from cochleaai.mar.margan.losses import l1_loss, mse_loss
    from cochleaai.mar.margan.train import TrainConfig, train

    a, b = torch.zeros(1, 1, 2, 2, 2), torch.full((1, 1, 2, 2, 2), 0.5)
    b[0, 0, 0, 0, 0] = -1.5
    assert float(l1_loss(a, b)) == pytest.approx((7 * 0.5 + 1.5) / 8)
    assert float(mse_loss(a, b)) == pytest.approx((7 * 0.25 + 2.25) / 8)
    with pytest.raises(CochleaAIError, match="Unknown pixel loss"):
        train(tmp_path, tmp_path / "m", TrainConfig(pixel_loss="huber"))


def test_clean_pairs_have_no_scatter(monkeypatch):
    from cochleaai.simulation import scanner_draw
    from cochleaai.simulation.pairs import PairSpec, make_pair

    monkeypatch.setattr(scanner_draw, "VIEWS", (360,))
    spec = PairSpec(0, 11, "phantom:7")
    *_, full = make_pair(spec)
    *_, clean = make_pair(spec, clean=True)
    assert full["scatter_to_primary"] > 0 and clean["scatter_to_primary"] == 0
    assert clean["array"] == full["array"] and clean["depth_deg"] == full["depth_deg"]   # same draws otherwise


def test_the_cards_gains_fade_the_correction_away_from_the_metal(tiny_model):
    """With zero gain beyond 1 mm the output far from the metal is the input; at the metal
    the network's estimate stays."""
    from cochleaai.mar.margan.inference import correct
    from cochleaai.metrics import distance_from_mask

    vol = _metal_volume()
    metal = vol.array >= 3000
    full = correct(tiny_model, vol.array, metal, vol.spacing)
    tiny_model.card["gain_by_distance_mm"] = [[0.5, 1.0], [1.0, 0.0]]
    faded = correct(tiny_model, vol.array, metal, vol.spacing)
    d = distance_from_mask(metal, vol.spacing)
    np.testing.assert_array_equal(faded[d >= 1.0], vol.array[d >= 1.0])
    np.testing.assert_allclose(faded[d <= 0.5], full[d <= 0.5], atol=1e-4)
    assert np.abs(full - vol.array)[d >= 1.0].max() > 0.1       # the fade changed something
