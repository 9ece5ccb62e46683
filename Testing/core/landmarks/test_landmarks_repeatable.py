"""Landmark detection gives the same answer every run, also outside the model's domain.

The shipped real-CT model on a small phantom is where it showed: no pose matches well,
so the registration's random metric sample decided between poses far apart (landmarks
moved by millimetres, the confidence flipped between 0.28 and 0 from run to run).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

torch = pytest.importorskip("torch")

from cochleaai import io  # noqa: E402
from cochleaai.errors import EXIT_FLAGGED  # noqa: E402
from cochleaai.landmarks.detect import detect_landmarks  # noqa: E402
from cochleaai.landmarks.model_io import default_model_path, load_model  # noqa: E402
from cochleaai.landmarks.register import sitk_seed  # noqa: E402
from cochleaai.phantom.core import make_phantom  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
PHANTOM_SEED = 3
#: The phantoms are right ears and the shipped reference a left one: registering the mirror
#: image only halves the work and keeps the out-of-domain case.
SIDE = "right"

pytestmark = pytest.mark.skipif(not default_model_path().is_file(), reason="the shipped real-CT model is missing")


@pytest.fixture(scope="module")
def phantom_ct(tmp_path_factory):
    """The small (roi) phantom's CT file."""
    return make_phantom(PHANTOM_SEED).save(tmp_path_factory.mktemp("phantom"))["ct"]


def test_detecting_twice_in_one_process_gives_the_same_landmarks(phantom_ct, one_torch_thread):
    model, volume = load_model(), io.read_volume(phantom_ct)
    first, second = (detect_landmarks(model, volume, side=SIDE) for _ in range(2))
    np.testing.assert_array_equal(first.landmarks.points, second.landmarks.points)
    assert first.confidence == second.confidence and first.ncc_final == second.ncc_final


def _detect_command(ct: Path, out: Path) -> list:
    # the registration-only baseline: the registration is where the runs parted
    return [sys.executable, "-m", "cochleaai", "landmarks", "detect", str(ct), "--baseline", "--side", SIDE,
            "--out", str(out), "--quiet"]


def test_two_command_line_runs_give_the_same_landmarks(phantom_ct, tmp_path):
    outs = [tmp_path / "run1", tmp_path / "run2"]
    # side by side: two processes contending for the cores must not change the answer either
    runs = [subprocess.Popen(_detect_command(phantom_ct, out), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for out in outs]
    for run in runs:
        output, _ = run.communicate(timeout=300)
        assert run.returncode in (0, EXIT_FLAGGED), output          # flagged: expected out of domain
    first, second = (io.read_markups(out / "ct.mrk.json") for out in outs)
    np.testing.assert_array_equal(first.points, second.points)
    rows = [json.loads((out / "detections.json").read_text())[0] for out in outs]
    for key in ("confidence", "ncc_rigid", "ncc_final", "flagged"):
        assert rows[0][key] == rows[1][key], key


def test_every_seed_is_a_fixed_one_for_simpleitk():
    seeds = [sitk_seed(s) for s in (0, 1, 2 ** 32 - 2, 2 ** 40)]
    assert sitk.sitkWallClock not in seeds and all(0 < s < 2 ** 32 for s in seeds)
    assert len(set(seeds[:3])) == 3
