"""The plan: posterior summaries, ranking, refusals, the command, and the page in a real browser."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cochleaai.errors import EXIT_USER_ERROR, CochleaAIError
from cochleaai.planning import catalogue, paths
from cochleaai.planning.plan import plan_insertions, summary
from cochleaai.planning.report import html_report
from cochleaai.shape import default_params
from cochleaai.shape.params import deformable_of

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[3]
THETA = default_params()
#: A small posterior: 0.05 mm on a, 0.003 on b, 0.03 on alpha and phi, the pose fixed.
COVARIANCE = np.diag([0.05 ** 2, 0.003 ** 2, 0.03 ** 2, 0.03 ** 2] + [1e-12] * 6)


@pytest.fixture(scope="module")
def plan():
    return plan_insertions(THETA, COVARIANCE, samples=60, seed=1, interval_scale=1.0)   # the posterior alone


def test_the_fitted_shape_value_is_the_exact_insertion_and_draws_spread_around_it(plan):
    lengths = paths.cumulative_lengths(deformable_of(THETA))
    for a in plan.arrays:
        exact = paths.full_insertion(a.array, lengths)
        assert a.apical_deg["value"] == pytest.approx(exact["apical_deg"])
        assert a.apical_deg["low"] <= a.apical_deg["mean"] <= a.apical_deg["high"]
        assert 0 < a.apical_deg["sd"] < 60
        assert len(a.contacts) == a.array.n_contacts
        angles = [c["angle_deg"]["value"] for c in a.contacts]
        assert np.all(np.diff([x for x in angles if x is not None and np.isfinite(x)]) < 0)   # apical first
        hz = [c["greenwood_hz"]["mean"] for c in a.contacts if np.isfinite(c["greenwood_hz"]["mean"])]
        assert np.all(np.diff(hz) > 0)              # deeper contacts sit at lower frequencies


def test_without_spread_the_interval_collapses():
    tight = plan_insertions(THETA, np.eye(10) * 1e-14, arrays=["flex28"], samples=20)
    a = tight.arrays[0]
    assert a.apical_deg["sd"] < 0.01 and a.apical_deg["high"] - a.apical_deg["low"] < 0.05


def test_arrays_are_ranked_by_the_coverage_asked_for():
    for target in (0.6, 0.9):
        ranked = plan_insertions(THETA, COVARIANCE, samples=20, target_coverage=target).arrays
        gaps = [abs(a.coverage_pct["mean"] - 100 * target) for a in ranked if a.over_inserted_probability <= 0.5]
        assert gaps == sorted(gaps)


def test_refusals_say_what_to_do():
    with pytest.raises(CochleaAIError, match="flex28"):
        plan_insertions(THETA, COVARIANCE, arrays=["Nucleus 99"])
    with pytest.raises(CochleaAIError, match="between 0 and 1"):
        plan_insertions(THETA, COVARIANCE, target_coverage=75)
    with pytest.raises(CochleaAIError, match="covariance"):
        plan_insertions(THETA, np.full((10, 10), np.nan))
    assert np.isnan(summary([np.nan, np.nan])["mean"])


def test_a_flagged_fit_is_said_at_the_top_of_the_page():
    flagged = plan_insertions(THETA, COVARIANCE, arrays=["flex28"], samples=20,
                              quality={"suspect": True, "qc_surface_mm": 0.9})
    assert flagged.warnings and "Check the fitted cochlea" in flagged.warnings[0]
    page = html_report(flagged.to_dict(), THETA)
    assert page.index("class='warning'") < page.index("<h2>The cochlea")


def test_the_command_refuses_an_unknown_array_with_the_known_names(tmp_path):
    done = subprocess.run([sys.executable, "-m", "cochleaai", "plan", str(tmp_path / "ct.nrrd"), "--points",
                           str(tmp_path / "p.mrk.json"), "--side", "right", "--out", str(tmp_path / "o"),
                           "--arrays", "Nucleus 99"], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == EXIT_USER_ERROR
    assert "Unknown electrode array" in done.stderr and all(k in done.stderr for k in catalogue.ARRAYS)


def test_the_command_plans_a_phantom_and_its_page_renders_in_chromium(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "cochleaai", *a], capture_output=True, text=True,
                                    cwd=ROOT, timeout=600)
    assert run("phantom", "--seed", "3", "--out", str(tmp_path / "ph"), "--quiet").returncode == 0
    done = run("plan", str(tmp_path / "ph" / "ct.nrrd"), "--points", str(tmp_path / "ph" / "landmarks.mrk.json"),
               "--side", "right", "--out", str(tmp_path / "plan"), "--samples", "40", "--quiet")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert {a["key"] for a in record["arrays"]} == set(catalogue.ARRAYS)
    # the plan is the fitted cochlea's: the fitted shape's insertion, as the core computes it
    lengths = paths.cumulative_lengths(deformable_of(np.array(record["theta"])))
    for a in record["arrays"]:
        exact = paths.full_insertion(catalogue.get(a["key"]), lengths)
        assert a["apical_deg"]["value"] == pytest.approx(exact["apical_deg"], abs=1e-6)
    assert record["measures"]["cdl_organ_of_corti_mm"]["mean"] == pytest.approx(lengths["organ of Corti"][-1],
                                                                                 rel=0.03)
    # the page gives a measure as the fitted shape's value, as the segmentation's table does
    oc = record["measures"]["cdl_organ_of_corti_mm"]
    assert oc["value"] == pytest.approx(lengths["organ of Corti"][-1], rel=0.005)
    html_text = (tmp_path / "plan" / "plan.html").read_text(encoding="utf-8")
    assert f"{oc['value']:.1f} &plusmn; {oc['sd']:.1f} mm" in html_text
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium)")
    page = (tmp_path / "plan" / "plan.html").as_uri()
    base = [browser, "--headless", "--no-sandbox", "--disable-gpu"]
    dom = subprocess.run(base + ["--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    assert "Arrays, ranked for 75 % coverage" in dom and dom.count("<img") == 2 and "Greenwood" in dom
    shot = tmp_path / "plan.png"
    subprocess.run(base + [f"--screenshot={shot}", "--window-size=1200,1600", page], capture_output=True,
                   timeout=120)
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), float)
    assert pixels.shape == (1600, 1200) and pixels.std() > 20      # text, tables and pictures, not blank
