"""How wide the plan's error bars must be: one scale on the fit's posterior, and a factor on
each duct length's interval, set on phantoms.

The segmentation's Laplace posterior measures how well the image pins the shape down when the
model is right. Its dominant error is elsewhere: the model and the appearance mixtures are
never quite the scan, and the fit's optimum sits off the true shape by several posterior
standard deviations (on phantoms the fitted ``a`` comes out 0.2-0.46 mm large with a posterior
sd near 0.06 mm). Intervals from that posterior alone hold almost no true value.

The plan therefore draws from the posterior with its covariance multiplied by ``scale ** 2``.
The scale is set by split-conformal calibration on phantoms whose seeds the benchmark never
uses (:data:`CALIBRATION_FIRST_SEED` onwards): each phantom is segmented from its true points,
planned at scale 1, and every scored figure (the depth of the apical contact and the coverage
of each array, the organ-of-Corti and lateral-wall duct lengths) gives the ratio of its error
to its 95 % half-width. The scale is the ``ceil((n + 1) * 0.95)``-th smallest ratio, so that,
for new cases drawn like the calibration ones, about 95 % of the scaled intervals hold the
truth. A scaled covariance widens every interval by the same factor for a linear map of the
parameters and nearly so here; ``bench plan`` measures the coverage that results on other
phantoms. ``python -m cochleaai calibrate-plan`` redoes it and writes the table shipped in
``Resources/plan-intervals.json``.

One scale for every figure still leaves some figures' intervals too wide: the lateral-wall
duct length's held the truth in every benchmark phantom. So the calibration then plans its
phantoms at that scale and sets, for each duct length, a factor of its own on its interval's
half-width about the interval's centre (the same conformal quantile of error / half-width),
kept in the table as ``measure_factors``. They apply with the shipped scale only: a scale
given by hand (1 for the posterior alone) gets no factor.

The scale is learned on phantoms: on real scans it assumes the fit errs about as much,
relative to its posterior, as on phantoms. Nothing on the real specimens can check that
(their true depths are unknown).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from cochleaai.errors import CochleaAIError

#: The shipped table.
INTERVAL_FILE = Path(__file__).resolve().parents[2] / "Resources" / "plan-intervals.json"
#: The share of true values the intervals are to hold.
LEVEL = 0.95


def conformal_scale(ratios, level: float = LEVEL) -> float:
    """The split-conformal quantile of ``ratios`` (error / 95 % half-width at scale 1): the
    ``ceil((n + 1) level)``-th smallest, or infinity when there are too few ratios."""
    r = np.sort(np.asarray(ratios, float))
    if r.size == 0 or np.isnan(r).any():
        raise CochleaAIError("The interval calibration needs error ratios (none, or NaN among them).")
    rank = math.ceil((r.size + 1) * level)
    return float("inf") if rank > r.size else float(r[rank - 1])


def load_interval_table(path=None) -> dict:
    """The shipped table (or ``path``), checked: its ``scale`` and its ``measure_factors``
    (measure name -> factor on that measure's interval; none in tables written before them)."""
    path = Path(path) if path is not None else INTERVAL_FILE
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
        scale = float(table["scale"])
        factors = {str(k): float(v) for k, v in dict(table.get("measure_factors") or {}).items()}
    except FileNotFoundError:
        raise CochleaAIError(f"The plan's interval table {path} is missing; reinstall the extension or "
                             "rebuild it with `python -m cochleaai calibrate-plan`.") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CochleaAIError(f"The plan's interval table {path} is unreadable ({exc}); reinstall the extension "
                             "or rebuild it with `python -m cochleaai calibrate-plan`.") from None
    if not all(math.isfinite(f) and f > 0 for f in factors.values()):
        raise CochleaAIError(f"The plan's interval table {path} has a measure factor that is not a positive "
                             "number; rebuild it with `python -m cochleaai calibrate-plan`.")
    return {"scale": check_interval_scale(scale), "measure_factors": factors}


def load_interval_scale(path=None) -> float:
    """The scale of the shipped table (or of ``path``), checked."""
    return load_interval_table(path)["scale"]


def check_interval_scale(scale) -> float:
    """A usable scale: a finite number of at least 1 (a posterior is never made narrower)."""
    try:
        value = float(scale)
    except (TypeError, ValueError):
        value = math.nan                            # refused below, with the same words
    if not (math.isfinite(value) and value >= 1.0):
        raise CochleaAIError(f"The interval scale is a number of at least 1, got {scale!r}.")
    return value


def resolve_interval_scale(scale=None) -> float:
    """``scale`` checked, or the shipped one when it is None."""
    return load_interval_scale() if scale is None else check_interval_scale(scale)


def resolve_intervals(scale=None) -> tuple:
    """``(scale, measure factors)``: the shipped table's, read once, when ``scale`` is None;
    else ``scale`` checked and no factor (they were set at the shipped scale only)."""
    if scale is None:
        table = load_interval_table()
        return table["scale"], table["measure_factors"]
    return check_interval_scale(scale), {}


def rescaled(s: dict, factor: float) -> dict:
    """A figure's summary (``low``, ``high``, ``sd``; ``std`` where present) with its interval's
    half-widths about the interval's centre and its sd multiplied by ``factor``; the value and
    the mean stay."""
    centre = 0.5 * (s["low"] + s["high"])
    out = dict(s, low=centre - factor * (centre - s["low"]), high=centre + factor * (s["high"] - centre),
               sd=factor * s["sd"])
    if "std" in s:
        out["std"] = factor * s["std"]
    return out


def with_measure_factors(summaries: dict, factors: dict) -> dict:
    """``summaries`` (measure name -> summary) with each measure that has a factor rescaled."""
    return {name: rescaled(s, factors[name]) if name in factors else s for name, s in summaries.items()}
