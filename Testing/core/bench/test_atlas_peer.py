"""The atlas-registration peer (cochleaai.peers.atlas, elastix as SlicerCochlea uses it) and
``bench segment-real --peers``.

The peer runs for real: a phantom atlas registered to another phantom from three points, on
the same side and mirrored; the benchmark's quick peer run from the command line on two
development specimens (skipped, saying so, without the data); and the clear error when
itk-elastix is missing.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_CT, requires_real_ct

from cochleaai.cli import main
from cochleaai.errors import CochleaAIError
from cochleaai.metrics import dice
from cochleaai.peers import atlas as peer
from cochleaai.phantom.core import make_phantom

ROOT = Path(__file__).resolve().parents[3]


def points(phantom) -> dict:
    """The phantom's landmarks by role (``round_window`` -> ``round window``)."""
    return {label.replace("_", " "): p for label, p in zip(phantom.landmarks.labels, phantom.landmarks.points)}


@pytest.fixture(scope="module")
def phantoms():
    pytest.importorskip("itk", reason="itk-elastix (the optional extra 'peers') is not installed")
    atlas_phantom, target = make_phantom(0, fov="roi"), make_phantom(1, fov="roi")
    cochlea = atlas_phantom.ct.copy(atlas_phantom.mask("Cochlea").astype(np.uint8))
    return peer.Atlas("phantom 0", atlas_phantom.ct, cochlea, points(atlas_phantom), "right"), target


def test_the_atlas_reaches_another_phantom_from_three_points(phantoms):
    atlas, target = phantoms
    mask, seconds = peer.segment_with_atlas(target.ct, points(target), "right", atlas, "3 points")
    assert mask.same_geometry(target.ct) and seconds > 0
    assert dice(mask.array > 0, target.mask("Cochlea")) > 0.8


def test_the_atlas_is_mirrored_for_the_other_side(phantoms):
    """A left ear (the target mirrored) is segmented by the right-ear atlas, mirrored."""
    atlas, target = phantoms
    centre = points(target)["center"]
    ct = peer.mirror(target.ct, centre)
    truth = peer.mirror(target.ct.copy(target.mask("Cochlea")), centre).array
    assert np.linalg.det(ct.direction) == pytest.approx(np.linalg.det(target.ct.direction))
    given = {k: peer.mirror_points(v, centre) for k, v in points(target).items()}
    mask, _ = peer.segment_with_atlas(ct, given, "left", atlas, "3 points")
    assert dice(mask.array > 0, truth) > 0.8


def test_mirroring_moves_voxels_and_points_alike():
    vol = make_phantom(2, fov="roi").ct
    centre = vol.center + np.array([0.7, -0.3, 0.2])
    mirrored = peer.mirror(vol, centre)
    ijk = np.array([[3, 5, 7], [40, 20, 11]])
    moved = peer.mirror_points(vol.index_to_physical(ijk), centre)
    back = np.rint(mirrored.physical_to_index(moved)).astype(int)
    assert np.array_equal(mirrored.array[back[:, 2], back[:, 1], back[:, 0]],
                          vol.array[ijk[:, 2], ijk[:, 1], ijk[:, 0]])
    assert np.allclose(peer.mirror_points(moved, centre), vol.index_to_physical(ijk))


def test_similarity_recovers_a_turned_scaled_shifted_triangle():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    src = rng.normal(size=(3, 3))
    a, b = peer.similarity(src, 1.1 * src @ q.T + [1.0, 2.0, 3.0])
    assert np.allclose(a, 1.1 * q) and np.allclose(b, [1.0, 2.0, 3.0])


def test_vote_and_ranking():
    grid = make_phantom(2, fov="roi").ct
    masks = [grid.copy((grid.array * 0 + v).astype(np.uint8)) for v in (1, 1, 0)]
    assert peer.vote(masks).array.all() and not peer.vote(masks[1:]).array.any()
    scores = {("a", "b"): 0.9, ("a", "c"): 0.7, ("b", "a"): 0.6, ("b", "c"): 0.6, ("c", "a"): 0.85, ("c", "b"): 0.85}
    assert [a for a, _ in peer.rank_atlases(scores, ["a", "b", "c"])] == ["c", "a", "b"]


def test_missing_itk_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "itk", None)        # "import itk" raises ImportError
    with pytest.raises(CochleaAIError, match=r"pip install 'cochleaai\[peers\]'"):
        peer.load_itk()
    grid = make_phantom(2, fov="roi")
    with pytest.raises(CochleaAIError, match="itk-elastix"):
        peer.segment_with_atlas(grid.ct, points(grid), "right", peer.Atlas("x", grid.ct, grid.ct, points(grid),
                                                                          "right"))
    # the benchmark stops before any fit, with the one-line error and the user-error status
    code = main(["bench", "segment-real", "--data", str(REAL_CT or ROOT), "--peers", "--quick", "--quiet"])
    assert code == 2 and "pip install 'cochleaai[peers]'" in capsys.readouterr().err


@requires_real_ct
def test_bench_tiny_peers_runs_from_the_command_line(tmp_path):
    pytest.importorskip("itk", reason="itk-elastix (the optional extra 'peers') is not installed")
    out = tmp_path / "out.json"
    done = subprocess.run([sys.executable, "-m", "cochleaai", "bench", "segment-real", "--data", str(REAL_CT),
                           "--tiny", "--peers", "--quiet", "--json", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "peers/per_specimen" in done.stdout
    figures = json.loads(out.read_text())["figures"]
    rows = figures["peers/per_specimen"]
    specimens = figures["specimens"]
    assert len(specimens) == 2
    for sid in specimens:
        for method, start in (("ours", "3 points"), ("ours", "centre only"), ("atlas", "3 points"),
                              ("atlas vote of 3", "3 points"), ("atlas", "centre + rotation search")):
            row = next(r for r in rows if r["specimen"] == sid and r["method"] == method and r["start"] == start)
            assert 0.0 <= row["dice"] <= 1.0 and row["seconds"] > 0
            if method != "ours":
                assert sid not in row["atlas"]           # leave-one-out: never the target itself
    for key in ("ours_3_points", "atlas_3_points", "atlas_vote_of_3_3_points", "ours_centre_only",
                "atlas_centre_rotation_search"):
        assert 0.0 <= figures[f"peers/{key}/dice_mean"] <= 1.0
    assert figures["peers/atlas_3_points_vs_ours_3_points/dice_mean_ratio"] > 0
    assert figures["peers/atlas_centre_rotation_search_vs_ours_centre_only/dice_mean_ratio"] > 0
