"""Training MARGAN on one's own pre-op scans (cochleaai.mar.margan.user_training and the Metal
Artifact Reduction logic's training steps): pairs, cancellation, bad input, a short training."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cochleaai import CochleaAIError
from cochleaai.progress import Cancelled

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def scan():
    from cochleaai.mar.margan.user_training import UserScan
    from cochleaai.phantom.core import make_phantom

    ph = make_phantom(5, fov="roi")
    return UserScan("phantom 5", ph.ct, ph.model)


@pytest.fixture
def quick_scanner(monkeypatch):
    from cochleaai.simulation import scanner_draw

    monkeypatch.setattr(scanner_draw, "VIEWS", (360,))          # one small projector keeps it quick


def test_pairs_from_a_scan_and_a_short_training(tmp_path, scan, quick_scanner, one_torch_thread):
    from cochleaai.mar.dispatch import reduce_metal_artifacts
    from cochleaai.simulation.pairs import GRID_XYZ, pair_folders, read_pair
    from cochleaai.mar.margan.user_training import simulate_user_pairs, train_user_model

    before = scan.volume.array.copy()
    seen = []
    done = simulate_user_pairs([scan], tmp_path / "pairs", 2, seed=4, progress=lambda f, m="": seen.append(f))
    np.testing.assert_array_equal(scan.volume.array, before)     # the scan is only read
    assert done["pairs"] == 2 and seen[-1] == 1.0 and seen == sorted(seen)
    folders = pair_folders(tmp_path / "pairs")
    assert [f.name for f in folders] == ["pair_00000", "pair_00001"]
    post, target, metal = read_pair(folders[0])
    assert post.array.shape == GRID_XYZ[::-1] and np.allclose(post.spacing, 0.2)
    m = metal.array > 0
    assert m.any() and post.array[m].mean() > 2500                # the implant is in the post-op...
    assert target.array.max() < 2500                              # ...and not in the target
    info = json.loads((folders[0] / "pair.json").read_text())
    assert info["source"] == "scan" and info["scan"] == "phantom 5"
    # the same seed gives the same pairs
    again = simulate_user_pairs([scan], tmp_path / "again", 2, seed=4)
    np.testing.assert_array_equal(read_pair(tmp_path / "again" / "pair_00001")[0].array,
                                  read_pair(folders[1])[0].array)
    assert again["pairs"] == 2

    model = train_user_model(tmp_path / "pairs", tmp_path / "m.pt", steps=2)
    assert model.card["training"]["steps_done"] == 2 and (tmp_path / "m.json").is_file()
    res = reduce_metal_artifacts(post, "margan", model=model)
    assert res.image.array.shape == post.array.shape and np.isfinite(res.image.array).all()


def test_cancel_keeps_the_pairs_written(tmp_path, scan, quick_scanner):
    from cochleaai.simulation.pairs import pair_folders
    from cochleaai.mar.margan.user_training import simulate_user_pairs

    def cancel_at_second(fraction, message=""):
        if 0 < fraction < 1:
            raise Cancelled("cancelled by the user")

    with pytest.raises(Cancelled):
        simulate_user_pairs([scan], tmp_path / "pairs", 3, progress=cancel_at_second)
    assert [f.name for f in pair_folders(tmp_path / "pairs")] == ["pair_00000"]
    assert json.loads((tmp_path / "pairs" / "manifest.json").read_text())["pairs"] == ["pair_00000"]


def test_bad_input_is_refused_clearly(tmp_path, scan):
    from cochleaai.mar.margan.user_training import UserScan, simulate_user_pairs, train_user_model
    from cochleaai.shape import CochleaModel

    with pytest.raises(CochleaAIError, match="at least one"):
        simulate_user_pairs([], tmp_path / "a", 2)
    with pytest.raises(CochleaAIError, match="at least 2"):
        simulate_user_pairs([scan], tmp_path / "b", 1)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("keep me")
    with pytest.raises(CochleaAIError, match="not an empty folder"):
        simulate_user_pairs([scan], tmp_path / "full", 2)
    assert (tmp_path / "full" / "x.txt").read_text() == "keep me"
    theta = scan.model.theta.copy()
    theta[7:10] += 100.0                                          # the translation: far outside
    far = CochleaModel(theta)
    with pytest.raises(CochleaAIError, match="outside"):
        simulate_user_pairs([UserScan("far", scan.volume, far)], tmp_path / "c", 2)
    with pytest.raises(CochleaAIError, match="simulated pairs"):
        train_user_model(tmp_path / "full", tmp_path / "m.pt", steps=1)
    with pytest.raises(CochleaAIError, match="Choose a folder"):
        simulate_user_pairs([scan], "  ", 2)
    with pytest.raises(CochleaAIError, match="Choose the folder"):
        train_user_model("", tmp_path / "m.pt", steps=1)
    with pytest.raises(CochleaAIError, match="at least 1 step"):
        train_user_model(tmp_path / "full", tmp_path / "m.pt", steps=0)
