"""Setting the plan's interval scale (:mod:`.interval_scale`) on phantoms.

Each calibration phantom (seeds :data:`CALIBRATION_FIRST_SEED` onwards; the benchmark's
start at 0) is segmented from its true points and planned at scale 1; every scored figure
gives the ratio of its error to its 95 % half-width, and the scale is their split-conformal
quantile. The same phantoms are then planned at that scale, and each duct length's factor is
the conformal quantile of its own ratios there. ``python -m cochleaai calibrate-plan`` runs it
and writes the shipped table.
"""
from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.phantom.core import make_phantom
from cochleaai.planning.interval_scale import LEVEL, conformal_scale
from cochleaai.planning.paths import cumulative_lengths, full_insertion
from cochleaai.planning.plan import plan_from_segmentation
from cochleaai.progress import Progress
from cochleaai.segmentation.config import SegmentConfig
from cochleaai.segmentation.pipeline import segment
from cochleaai.segmentation.pose import LANDMARK_OF_ROLE
from cochleaai.shape.measures import clinical_measures
from cochleaai.shape.params import deformable_of

#: Calibration phantoms: seeds from here on (the benchmark's start at 0).
CALIBRATION_FIRST_SEED = 1000
CALIBRATION_PHANTOMS = 48
#: The duct lengths scored beside the arrays' figures.
CDL_MEASURES = ("cdl_organ_of_corti_mm", "cdl_lateral_wall_mm")
#: Posterior draws per calibration plan.
CALIBRATION_SAMPLES = 200


def _inside(s: dict, truth: float) -> bool:
    return bool(s["low"] <= truth <= s["high"])


def segment_phantom(seed: int, fit: Optional[dict] = None) -> tuple:
    """Roi phantom ``seed`` (a right ear) segmented from its true points: (its true
    parameters, the segmentation, seconds)."""
    ph = make_phantom(seed=seed, fov="roi")
    points = {role: np.asarray(ph.truth["landmarks"][key], float) for role, key in LANDMARK_OF_ROLE.items()}
    t0 = time.perf_counter()
    result = segment(ph.ct, points, SegmentConfig(side="right", **(fit or {})))
    return np.asarray(ph.truth["theta"], float), result, time.perf_counter() - t0


def score_plan(plan, truth_theta, phantom: int) -> tuple:
    """``plan`` scored against the true shape ``truth_theta``: ``(cases, row)``, one case per
    array (true and planned depth of the apical contact and coverage, whether the 95 %
    intervals hold them, the error ratio of each) and one row for the duct lengths."""
    lengths = cumulative_lengths(deformable_of(truth_theta))
    cases = []
    for a in plan.arrays:
        truth = full_insertion(a.array, lengths)
        aid, coverage = truth["apical_deg"], 100.0 * truth["coverage_fraction"]
        cases.append({"phantom": phantom, "array": a.array.key, "aid_true": aid, "aid_mean": a.apical_deg["mean"],
                      "aid_value": a.apical_deg["value"],
                      "aid_sd": a.apical_deg["sd"], "aid_inside": _inside(a.apical_deg, aid),
                      "aid_ratio": _ratio(a.apical_deg, aid),
                      "coverage_true": coverage, "coverage_mean": a.coverage_pct["mean"],
                      "coverage_inside": _inside(a.coverage_pct, coverage),
                      "coverage_ratio": _ratio(a.coverage_pct, coverage)})
    true_measures = clinical_measures(truth_theta)
    row = {"phantom": phantom, "plan_sec": plan.seconds}
    for name in CDL_MEASURES:
        m, truth = plan.measures[name], true_measures[name]
        row[f"{name}_error"] = m["mean"] - truth
        row[f"{name}_value_error"] = m["value"] - truth
        row[f"{name}_sd"] = m["sd"]
        row[f"{name}_inside"] = _inside(m, truth)
        row[f"{name}_ratio"] = _ratio(m, truth)
    return cases, row


def _ratio(s: dict, truth: float) -> float:
    """The error of the interval's centre over the interval's half-width: above 1 when the
    interval misses the truth (the interval is taken as symmetric, from its ends)."""
    centre, half = 0.5 * (s["low"] + s["high"]), 0.5 * (s["high"] - s["low"])
    return float(abs(centre - truth) / half) if half > 0 else float("inf")


def ratios_of(cases: list, rows: list) -> np.ndarray:
    """Every scored figure's error ratio: both figures of each array case, both duct lengths of
    each phantom."""
    return np.array([c[k] for c in cases for k in ("aid_ratio", "coverage_ratio")] +
                    [r[f"{n}_ratio"] for r in rows for n in CDL_MEASURES], float)


def measure_factors(fitted: list, scale: float, samples: int = CALIBRATION_SAMPLES) -> dict:
    """Each duct length's factor on its interval at ``scale``: the conformal quantile of its
    error ratios over ``fitted`` ((true parameters, segmentation, seed) per phantom); a length
    with too few phantoms for it gets none."""
    rows = [score_plan(plan_from_segmentation(result, arrays=[], samples=samples, seed=seed, interval_scale=scale),
                       truth, seed)[1] for truth, result, seed in fitted]
    factors = {name: conformal_scale([r[f"{name}_ratio"] for r in rows]) for name in CDL_MEASURES}
    return {name: round(f, 3) for name, f in factors.items() if math.isfinite(f)}


def calibrate_intervals(first_seed: int = CALIBRATION_FIRST_SEED, phantoms: int = CALIBRATION_PHANTOMS,
                        fit: Optional[dict] = None, samples: int = CALIBRATION_SAMPLES, progress=None) -> dict:
    """The table of :data:`INTERVAL_FILE`: the scale and what it was set on."""
    p = Progress.wrap(progress)
    if int(phantoms) < 1:
        raise CochleaAIError("The interval calibration needs at least one phantom.")
    cases, rows, fitted = [], [], []
    for k in range(int(phantoms)):
        p(0.95 * k / phantoms, f"phantom {k + 1}/{phantoms}")
        truth, result, _ = segment_phantom(int(first_seed) + k, fit)
        plan = plan_from_segmentation(result, samples=samples, seed=int(first_seed) + k, interval_scale=1.0)
        c, r = score_plan(plan, truth, int(first_seed) + k)
        cases += c
        rows.append(r)
        fitted.append((truth, result, int(first_seed) + k))
    ratios = ratios_of(cases, rows)
    scale = conformal_scale(ratios)
    if not math.isfinite(scale):
        raise CochleaAIError(f"{ratios.size} scored figures are too few for a {LEVEL:.0%} calibration; "
                             "use more phantoms.")
    shipped = max(1.0, round(scale, 3))
    p(0.95, "the duct lengths' factors")
    factors = measure_factors(fitted, shipped, samples)
    p(1.0, "done")
    return {"scale": shipped, "conformal_quantile": scale, "level": LEVEL,
            "measure_factors": factors,
            "measure_factor_method": "split-conformal quantile of |error| / (95 % half-width) of each duct length "
                                     "at the scale above, on the same phantoms (none with too few phantoms)",
            "method": "split-conformal quantile of |error| / (95 % half-width) at scale 1, over the depth and "
                      "coverage of every catalogue array and the two duct lengths",
            "phantoms": {"first_seed": int(first_seed), "count": int(phantoms), "fov": "roi",
                         "start": "true centre, apex and round-window points"},
            "figures": int(ratios.size), "coverage_at_scale_1": float(np.mean(ratios <= 1.0)),
            "ratio_median": float(np.median(ratios)), "samples": int(samples)}
