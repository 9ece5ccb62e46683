"""``bench plan`` from the command line on its ``--tiny`` setting: the interval coverages
come back as shares, with one entry per catalogue array; with ``--data`` (skipped when the
real-CT development data is not here) one specimen is planned beside the cohorts and the
A-value formulas."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from cochleaai.planning import catalogue
from cochleaai.planning.interval_scale import load_interval_scale

ROOT = Path(__file__).resolve().parents[3]
REAL_CT = ROOT / ".." / "shared" / "data" / "real-ct"
SHARES = ("aid_interval_coverage", "coverage_interval_coverage", "cdl_organ_of_corti_mm_interval_coverage",
          "cdl_lateral_wall_mm_interval_coverage")


def run_bench(tmp_path, *extra) -> dict:
    out = tmp_path / "plan.json"
    done = subprocess.run([sys.executable, "-m", "cochleaai", "bench", "plan", "--tiny", "--quiet",
                           "--json", str(out), *extra], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "benchmark: plan" in done.stdout and "interval_target" in done.stdout
    record = json.loads(out.read_text())
    assert record["benchmark"] == "plan"
    return record["figures"]


def test_bench_plan_tiny_reports_interval_coverage_per_array(tmp_path):
    figures = run_bench(tmp_path)
    for key in SHARES + ("all_interval_coverage",):
        for suffix in ("", "_posterior_only"):          # the calibrated scale and the posterior alone
            value = figures[key + suffix]
            assert isinstance(value, (int, float)) and 0.0 <= value <= 1.0, key + suffix
    assert figures["interval_scale"] == load_interval_scale()
    assert figures["phantoms"] == 2 and figures["cases"] == 2 * len(catalogue.ARRAYS)
    rows = figures["phantom_per_array"]
    assert [r["array"] for r in rows] == list(catalogue.ARRAYS)
    for row in rows:
        assert 0.0 <= row["aid_interval_coverage"] <= 1.0 and 0.0 <= row["coverage_interval_coverage"] <= 1.0
        assert row["aid_sd_deg_median"] >= 0.0 and row["aid_true_deg_median"] > 0.0
    assert figures["aid_abs_error_deg_median"] >= 0.0
    assert 0.0 < figures["sec_per_plan_only_median"] <= figures["sec_per_plan_with_segmentation_median"]
    assert "real_per_array" not in figures


@pytest.mark.skipif(not REAL_CT.is_dir(), reason="the real-CT development data (../shared/data/real-ct) is not here")
def test_bench_plan_tiny_on_one_real_specimen(tmp_path):
    figures = run_bench(tmp_path, "--data", "../shared/data/real-ct")
    assert len(figures["real_specimens"]) == 1
    specimen = figures["real_specimens"][0]
    rows = figures["real_per_array"]
    assert {r["array"] for r in rows} == set(catalogue.ARRAYS) and all(r["specimen"] == specimen for r in rows)
    for row in rows:
        assert row["aid_low"] <= row["aid_mean"] <= row["aid_high"]
        assert row["within_cohort"] in (True, False, None)
    assert any(r["cohort"] for r in rows)
    (cdl,) = figures["real_cdl"]
    for key in ("fit_minus_alexiades_oc_mm", "fit_minus_koch_oc_mm", "fit_minus_escude_lw_mm"):
        assert isinstance(cdl[key], (int, float)) and math.isfinite(cdl[key]), key
