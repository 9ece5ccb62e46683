"""VAE model files, training loop, datasets, exploration tools and commands."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from cochleaai.errors import CochleaAIError
from cochleaai.model_files import model_paths
from cochleaai.progress import Cancelled
from cochleaai.vae.data import VolumeGrid, binarize, volume_to_grid, volumes_to_grid
from cochleaai.vae.explore import decode_volume, encode_volume, interpolate, latent_map, sample_latent
from cochleaai.vae.model_io import load_model, save_model
from cochleaai.vae.shipped import default_model_path
from cochleaai.vae.train import TrainConfig, seeded_model, train
from cochleaai.volume import Volume

TINY = {"model": "lvae", "latent_dim": 2,
        "network": {"data_shape": [1, 8, 8, 8], "channels": [4, 8], "hidden": 16},
        "likelihood": {"name": "gaussian", "sigma": 0.5}, "flow": {"steps": 2, "t_range": [0.001, 0.05]}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _blobs(n=12, seed=0):
    """Volumes of one bright ball whose radius varies: a 1D family a VAE can learn."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:8, :8, :8]
    r = np.sqrt((z - 3.5) ** 2 + (y - 3.5) ** 2 + (x - 3.5) ** 2)
    out = [(r < rng.uniform(1.5, 3.5)).astype(np.float32) * 2 - 1 for _ in range(n)]
    return torch.from_numpy(np.stack(out)).unsqueeze(1)


# ------------------------------------------------------------------ model files
def test_save_load_round_trip_and_card(tmp_path):
    model = seeded_model(TINY, 0)
    weights, card_path = save_model(model, tmp_path / "m", {"data": {"kind": "volume"}, "seed": 0})
    loaded, card = load_model(tmp_path / "m.pt", require={"kind": "volume"})
    assert card["config"]["model"] == "lvae" and card["seed"] == 0
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    with pytest.raises(CochleaAIError, match="kind"):
        load_model(weights, require={"kind": "image"})


def test_corrupted_or_foreign_model_files_are_refused(tmp_path):
    weights, card_path = save_model(seeded_model(TINY, 0), tmp_path / "m", {})
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CochleaAIError, match="checksum"):
        load_model(weights)
    # a card for another architecture (with a valid checksum) is refused too
    weights, card_path = save_model(seeded_model(TINY, 0), tmp_path / "n", {})
    card = json.loads(card_path.read_text())
    card["config"]["network"]["channels"] = [4, 16]
    card_path.write_text(json.dumps(card))
    with pytest.raises(CochleaAIError, match="another architecture"):
        load_model(weights)
    card["config"]["model"] = "transformer"
    card_path.write_text(json.dumps(card))
    with pytest.raises(CochleaAIError, match="cannot build"):
        load_model(weights)
    card_path.write_text("{not json")
    with pytest.raises(CochleaAIError, match="JSON"):
        load_model(weights)
    card_path.unlink()
    with pytest.raises(CochleaAIError, match="missing"):
        load_model(weights)


# ------------------------------------------------------------------ training
def test_training_improves_is_seeded_and_checkpoints(tmp_path):
    data = _blobs(12)
    cfg = TrainConfig(epochs=4, batch_size=3, lr=3e-3, patience=50, seed=3)
    m1 = seeded_model(TINY, 3)
    before = data.clone()
    r1 = train(m1, data[:9], data[9:], cfg, checkpoint=tmp_path / "ckpt", card={"data": {"kind": "volume"}})
    torch.testing.assert_close(data, before)                      # inputs untouched
    assert r1["history"]["val_elbo"][-1] > r1["history"]["val_elbo"][0]
    m2 = seeded_model(TINY, 3)
    r2 = train(m2, data[:9], data[9:], cfg)
    assert r1["history"]["val_elbo"] == r2["history"]["val_elbo"]  # seeded: identical runs
    loaded, card = load_model(tmp_path / "ckpt")
    assert card["training_progress"]["epoch"] == r1["best_epoch"]


def test_early_stopping_and_cancel():
    data = _blobs(8)
    model = seeded_model(TINY, 0)
    result = train(model, data[:6], data[6:], TrainConfig(epochs=40, batch_size=6, lr=0.0, patience=2))
    assert result["stop_reason"] == "early stopping" and len(result["history"]["epoch"]) < 40
    calls = []

    def cancel_after_three(fraction, message):
        calls.append(fraction)
        if len(calls) > 3:
            raise Cancelled("test")
    with pytest.raises(Cancelled):
        train(seeded_model(TINY, 0), data, None, TrainConfig(epochs=5, batch_size=2),
              progress=cancel_after_three)


def test_training_refuses_nan():
    data = _blobs(4)
    data[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(CochleaAIError, match="NaN"):
        train(seeded_model(TINY, 0), data, None, TrainConfig(epochs=1))


# ------------------------------------------------------------------ data
def test_volume_to_grid_resamples_without_touching_the_input():
    grid = VolumeGrid((10, 10, 12), 0.4)
    arr = np.zeros((25, 25, 30), np.int16)
    arr[10:15, 10:15, 12:18] = 2000                     # a bright box at the centre
    vol = Volume(arr, 0.2, (-2.9, -2.4, -2.4))
    before = vol.array.copy()
    out = volume_to_grid(vol, grid)
    np.testing.assert_array_equal(vol.array, before)
    assert out.shape == grid.shape and out.dtype == np.float32
    assert out[5, 5, 6] > out[0, 0, 0] + 0.5            # the box stays in the middle
    # another spacing and size of the same scene gives nearly the same grid values
    coarse = Volume(arr[::2, ::2, ::2].astype(np.float32), 0.4, (-2.8, -2.3, -2.3))
    assert np.abs(volume_to_grid(coarse, grid) - out).mean() < 0.2


@pytest.mark.parametrize("shape, spacing", [((7, 9, 11), 0.1), ((10, 10, 12), 0.3), ((5, 6, 7), 1 / 3),
                                            ((9, 8, 13), 0.7)])
def test_volume_to_grid_has_the_grid_shape_and_fills_outside_the_image(shape, spacing):
    """crop_mm alone gives the grid's shape for awkward spacings and fills the part of the
    grid beyond the image with the low (1st percentile) value: no extra padding step."""
    grid = VolumeGrid(shape, spacing)
    nz, ny, nx = shape
    n_img = int(np.ceil(0.6 * nx))                       # narrower than the grid along x only
    arr = np.random.default_rng(1).uniform(0, 2000, size=(nz, ny, n_img)).astype(np.float32)
    vol = Volume(arr, spacing, -0.5 * spacing * (np.array([n_img, ny, nz]) - 1))      # centred on 0
    out = volume_to_grid(vol, grid)
    assert out.shape == grid.shape and out.dtype == np.float32
    x = (np.arange(nx) - (nx - 1) / 2.0) * spacing        # grid voxel centres along x (mm)
    outside = np.abs(x) > 0.5 * n_img * spacing + 0.01 * spacing    # beyond the image's outer voxel edge
    assert outside.any() and (~outside).any()
    np.testing.assert_allclose(out[..., outside], grid.normalise(np.percentile(arr, 1)), rtol=1e-6)
    inside = out[..., np.abs(x) < 0.5 * (n_img - 1) * spacing]
    assert inside.min() >= grid.normalise(arr.min()) - 1e-5 and inside.max() <= grid.normalise(arr.max()) + 1e-5


def test_model_configs_live_in_the_vae_package():
    """The CLI and the benchmarks take their configs from cochleaai.vae (never the reverse)."""
    from pathlib import Path

    from cochleaai.vae.configs import mnist_model_config, volume_model_config
    from cochleaai.vae.likelihoods import Gaussian
    from cochleaai.vae.models import build_model

    for source in Path(__file__).resolve().parents[3].joinpath("cochleaai", "vae").glob("*.py"):
        assert "bench" not in "".join(line for line in source.read_text().splitlines(True)
                                      if line.lstrip().startswith(("import ", "from "))), source.name
    image = build_model(mnist_model_config("lvae", 2, latent=3))
    assert image.latent_dim == 3 and not isinstance(image.likelihood, Gaussian)
    with torch.no_grad():
        assert image.decode_mean(torch.zeros(2, 3)).shape == (2, 1, 28, 28)
    volume = build_model(volume_model_config("hvae", 2, VolumeGrid((8, 8, 10), 0.5), steps=1))
    assert isinstance(volume.likelihood, Gaussian)
    with torch.no_grad():
        assert volume.decode_mean(torch.zeros(1, 2)).shape == (1, 1, 8, 8, 10)



def test_one_config_dataclass_per_model_gives_what_the_card_records():
    from cochleaai.vae.configs import HVAEConfig, LVAEConfig, VAEConfig, mnist_model_config
    from cochleaai.vae.models import build_model

    for kind, cls in (("vae", VAEConfig), ("hvae", HVAEConfig), ("lvae", LVAEConfig)):
        config = mnist_model_config(kind, 2, latent=3)
        assert type(config) is cls and config.model == kind
        model = build_model(config)
        assert build_model(config.as_dict()).config() == model.config()
        recorded = model.config()
        assert recorded["latent_dim"] == 3 and config.flow().items() <= recorded["flow"].items()


def test_config_classes_follow_one_name_and_vae_files_go_through_model_files():
    """Configuration dataclasses are named ``<Thing>Config``; the VAE's model files are read
    and checked by cochleaai.model_files, not by a second loader."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "cochleaai"
    for package in ("segmentation", "vae", "landmarks"):
        for source in (root / package).glob("*.py"):
            for node in ast.walk(ast.parse(source.read_text())):
                if isinstance(node, ast.ClassDef) and any("dataclass" in ast.unparse(d) for d in node.decorator_list):
                    assert not node.name.endswith(("Settings", "Options", "Params")), f"{source.name}: {node.name}"
    tree = ast.parse((root / "vae" / "model_io.py").read_text())
    imported = {a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    assert {"load_tensors", "save_tensors"} <= imported and not {"torch", "sha256_of"} & imported

def test_volume_to_grid_bad_input():
    grid = VolumeGrid((10, 10, 12), 0.4)
    bad = Volume(np.full((25, 25, 30), np.nan, np.float32), 0.2)
    with pytest.raises(CochleaAIError, match="NaN"):
        volume_to_grid(bad, grid)
    with pytest.raises(CochleaAIError, match="field of view"):
        volume_to_grid(Volume(np.arange(64, dtype=np.int16).reshape(4, 4, 4), 0.2), grid)
    with pytest.raises(CochleaAIError, match="constant"):
        volume_to_grid(Volume(np.zeros((25, 25, 30), np.int16), 0.2), grid)
    with pytest.raises(CochleaAIError):
        Volume(np.zeros((5, 5)), 1.0)                   # a 2D image is not a volume
    with pytest.raises(CochleaAIError):
        volumes_to_grid([], grid)


def test_binarize_is_seeded_and_binary():
    x = torch.rand(3, 1, 28, 28)
    a, b = binarize(x, 5), binarize(x, 5)
    torch.testing.assert_close(a, b)
    assert set(torch.unique(a).tolist()) <= {0.0, 1.0}


# ------------------------------------------------------------------ shipped model
@pytest.fixture(scope="module")
def shipped():
    if not default_model_path().is_file():
        pytest.skip("the shipped model is not there")
    return load_model(default_model_path(), require={"kind": "volume"})


def test_shipped_model_card(shipped):
    model, card = shipped
    assert card["config"]["model"] == "lvae" and model.latent_dim == 2
    assert card.get("training_command", "").startswith("python -m cochleaai vae train")
    assert "nll" in card.get("figures", {})


def test_explore_tools_on_the_shipped_model(shipped):
    model, card = shipped
    z = sample_latent(model, 3, seed=1)
    np.testing.assert_array_equal(z, sample_latent(model, 3, seed=1))
    vol = decode_volume(model, card, z[0])
    grid = VolumeGrid.from_dict(card["data"]["grid"])
    assert vol.shape == grid.shape and np.all(np.isfinite(vol.array))
    # the decoded cochlea has otic-capsule bone and fluid: a real CT-like range in HU
    assert vol.array.max() > 1000 and vol.array.min() < 500
    # decoding then encoding comes back near the same latent points (self-consistency;
    # measured: correlations 0.85 and 0.95, median distance 0.44 for this model)
    zs = sample_latent(model, 30, seed=0)
    back = np.stack([encode_volume(model, card, decode_volume(model, card, zi)) for zi in zs])
    for i in range(2):
        assert np.corrcoef(zs[:, i], back[:, i])[0, 1] > 0.7
    assert np.median(np.linalg.norm(back - zs, axis=1)) < 0.8
    path = interpolate(z[0], z[1], 5)
    np.testing.assert_allclose(path[0], z[0])
    np.testing.assert_allclose(path[-1], z[1])
    mosaic, coords = latent_map(model, card, n=4)
    assert mosaic.shape == (4 * grid.shape[1], 4 * grid.shape[2])
    assert coords[0] < 0 < coords[-1]
    # different latent points give different volumes
    assert np.abs(mosaic[:grid.shape[1], :grid.shape[2]] - mosaic[-grid.shape[1]:, -grid.shape[2]:]).mean() > 20


def test_shipped_model_copy_with_damaged_weights_is_refused(shipped, tmp_path):
    weights, card = model_paths(default_model_path())
    shutil.copy(weights, tmp_path / "x.pt")
    shutil.copy(card, tmp_path / "x.json")
    with open(tmp_path / "x.pt", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(CochleaAIError, match="checksum"):
        load_model(tmp_path / "x.pt")


# ------------------------------------------------------------------ commands
def test_cli_help_and_errors(capsys, tmp_path):
    from cochleaai.cli import main

    for sub in ("train", "sample", "encode", "nll"):
        with pytest.raises(SystemExit) as exit_info:
            main(["vae", sub, "--help"])
        assert exit_info.value.code == 0
    assert main(["vae", "nll", "--model", str(tmp_path / "none.pt"), "--quiet"]) == 2
    assert "missing" in capsys.readouterr().err
    # a first flow step outside the step range: a sentence, and no model file
    assert main(["vae", "train", "--out", str(tmp_path / "m"), "--phantoms", "2", "--grid", "8,8,10",
                 "--spacing", "1.0", "--epochs", "1", "--t-init", "0.2", "--quiet"]) == 2
    assert "t_init = 0.2 must lie in t_range" in capsys.readouterr().err
    assert not list(tmp_path.glob("m.*"))


def test_benchmarks_are_registered():
    from cochleaai import bench

    names = bench.registry()
    assert "vae-mnist" in names and "vae-cochlea" in names
    flags = dict(bench.options())
    assert "--data" in flags
    with pytest.raises(CochleaAIError, match="mnist.npz"):
        names["vae-mnist"][0](quick=True)
