"""The plan: posterior summaries, ranking, refusals, the command, and the page in a real browser."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cochleaai.errors import EXIT_USER_ERROR, CochleaAIError
from cochleaai.io import browser
from cochleaai.planning import catalogue, paths
from cochleaai.planning.interval_scale import load_interval_scale, load_interval_table
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


def test_a_cohort_without_spread_is_scored_against_the_predicted_interval(plan):
    # no spread published: inside means the cohort's value lies in the predicted 95 % interval
    ca = next(a for a in plan.arrays if a.array.key == "contour_advance")
    d = ca.apical_deg
    assert ca.cohort["mean_deg"] == 381.0
    assert ca.within_cohort is (d["low"] <= 381.0 <= d["high"])
    tight = plan_insertions(THETA, np.eye(10) * 1e-14, arrays=["contour_advance"], samples=20).arrays[0]
    assert tight.within_cohort is False           # a collapsed interval cannot hold it


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


def test_a_pdf_without_chromium_is_refused_before_any_work(tmp_path):
    # the points file does not exist either: the browser is asked for first, and nothing is written
    done = subprocess.run([sys.executable, "-m", "cochleaai", "plan", str(tmp_path / "ct.nrrd"), "--points",
                           str(tmp_path / "p.mrk.json"), "--side", "right", "--out", str(tmp_path / "o"), "--pdf"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={"PATH": str(tmp_path), "HOME": str(tmp_path)})
    assert done.returncode == EXIT_USER_ERROR
    assert "A PDF needs Chromium" in done.stderr and "apt-get install chromium" in done.stderr
    assert not (tmp_path / "o").exists()


def test_the_command_plans_a_phantom_and_its_page_renders_in_chromium(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "cochleaai", *a], capture_output=True, text=True,
                                    cwd=ROOT, timeout=600)
    assert run("phantom", "--seed", "3", "--out", str(tmp_path / "ph"), "--quiet").returncode == 0
    pdf = ["--pdf"] if browser.available() else []   # without one the page is still checked, then a skip
    done = run("plan", str(tmp_path / "ph" / "ct.nrrd"), "--points", str(tmp_path / "ph" / "landmarks.mrk.json"),
               "--side", "right", "--out", str(tmp_path / "plan"), "--samples", "40", "--quiet", *pdf)
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert {a["key"] for a in record["arrays"]} == set(catalogue.ARRAYS)
    # the shipped calibration, with the duct lengths' own factors, as the segmentation's measures
    assert (record["interval_scale"], record["measure_factors"]) == (load_interval_scale(),
                                                                      load_interval_table()["measure_factors"])
    # the plan is the fitted cochlea's: the fitted shape's insertion, as the core computes it
    lengths = paths.cumulative_lengths(deformable_of(np.array(record["theta"])))
    for a in record["arrays"]:
        exact = paths.full_insertion(catalogue.get(a["key"]), lengths)
        assert a["apical_deg"]["value"] == pytest.approx(exact["apical_deg"], abs=1e-6)
    assert record["measures"]["cdl_organ_of_corti_mm"]["mean"] == pytest.approx(lengths["organ of Corti"][-1],
                                                                                 rel=0.03)
    # the page gives a measure as the draws' mean, as the segmentation's table does
    oc = record["measures"]["cdl_organ_of_corti_mm"]
    assert oc["value"] == pytest.approx(lengths["organ of Corti"][-1], rel=0.005)
    page = tmp_path / "plan" / "plan.html"
    assert f"{oc['mean']:.1f} &plusmn; {oc['sd']:.1f} mm" in page.read_text(encoding="utf-8")
    if not pdf:
        pytest.skip("no Chromium here (Debian: apt-get install chromium; make test installs it where it can)")
    dom = browser.page_text(page)
    assert "Arrays, ranked for 75 % coverage" in dom and dom.count("<img") == 2 and "Greenwood" in dom
    shot = browser.screenshot(page, tmp_path / "plan.png")
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), float)
    assert pixels.shape == (1600, 1200) and pixels.std() > 20      # text, tables and pictures, not blank
    # the PDF: whole A4 pages holding the page's text and its two pictures
    printed = (tmp_path / "plan" / "plan.pdf").read_bytes()
    assert printed.startswith(b"%PDF-") and printed.rstrip().endswith(b"%%EOF")
    boxes = re.findall(rb"/MediaBox \[0 0 ([0-9.]+) ([0-9.]+)\]", printed)
    assert len(boxes) >= 2                                         # the page runs over several sheets
    assert all(abs(float(w) - 595) < 1 and abs(float(h) - 842) < 1 for w, h in boxes)   # A4 in points
    assert printed.count(b"/Subtype /Image") >= 2
    assert json.loads(done.stdout)["files"]["plan.pdf"] == str(tmp_path / "plan" / "plan.pdf")
