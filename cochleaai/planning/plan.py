"""The pre-operative plan: every catalogue array fully inserted in a fitted cochlea, with
error bars from the shape posterior.

The segmentation's Laplace posterior over the shape parameters (``theta``, ``covariance``)
is sampled; in each draw every array is inserted along the path of its position
(:mod:`.paths`), and the angle of each contact, its place on the organ of Corti and the
characteristic frequency there are read (:mod:`.literature`: Greenwood's function on the
organ of Corti, and the spiral-ganglion map for the angle-based view). Each figure is given
as its value for the fitted shape, the mean and standard deviation over the draws, and the
central 95 % interval. The draws come from the posterior with its covariance scaled by the
calibrated interval scale (:mod:`.interval_scale`): the posterior alone is far too narrow.
The cochlea's measures are summarised over the same draws (the duct lengths' intervals with
their own calibrated factors). The arrays are ranked by how
close their coverage of the organ of Corti comes to the coverage the user asks for.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.planning import catalogue, literature
from cochleaai.planning.interval_scale import resolve_intervals, with_measure_factors
from cochleaai.planning.paths import cumulative_lengths, full_insertion
from cochleaai.progress import Progress
from cochleaai.segmentation.quality import suspect_reasons
from cochleaai.shape.measures import measure_summaries, summary
from cochleaai.shape.params import deformable_of, posterior_thetas

#: Posterior draws per plan (the spread of a 95 % interval end settles within a few percent).
DEFAULT_SAMPLES = 200
#: The coverage asked for when the user names none: most of the organ of Corti, as for a
#: patient without residual hearing to keep (a choice the user makes; see the README).
DEFAULT_TARGET_COVERAGE = 0.75


def posterior_deformables(theta, covariance, samples: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """The shape (deformable) parameters of :func:`posterior_thetas`."""
    return np.stack([deformable_of(t) for t in posterior_thetas(theta, covariance, samples, seed, scale)])


@dataclass
class ArrayPlan:
    """One array fully inserted: its figures over the posterior (see :func:`summary`)."""

    array: object                       # catalogue.ArrayModel
    apical_deg: Dict[str, float]        # angular insertion depth of the most apical contact
    tip_deg: Dict[str, float]
    coverage_pct: Dict[str, float]      # organ of Corti from the base to the apical contact, %
    contacts: List[Dict[str, object]]   # per contact (1 = apical; and the manufacturer's number):
                                        # angle, place, frequencies
    over_inserted_probability: float    # share of draws in which the array is longer than the duct
    cohort: Optional[dict] = None       # published angular insertion depths of this array
    within_cohort: Optional[bool] = None

    def to_dict(self) -> dict:
        a = self.array
        return {"key": a.key, "name": a.name, "manufacturer": a.manufacturer, "position": a.position,
                "n_contacts": a.n_contacts, "insertion_length_mm": a.insertion_length_mm,
                "apical_deg": self.apical_deg, "tip_deg": self.tip_deg, "coverage_pct": self.coverage_pct,
                "over_inserted_probability": self.over_inserted_probability, "contacts": self.contacts,
                "cohort": self.cohort, "within_cohort": self.within_cohort, "source": a.source}


@dataclass
class CochleaPlan:
    side: str
    target_coverage_pct: float
    arrays: List[ArrayPlan]             # ranked: closest coverage to the target first
    measures: Dict[str, Dict[str, float]]
    quality: Dict[str, object]
    samples: int
    seed: int
    seconds: float
    warnings: List[str] = field(default_factory=list)
    interval_scale: float = 1.0         # the posterior's sd was multiplied by this
    measure_factors: Dict[str, float] = field(default_factory=dict)   # and these measures' intervals

    def to_dict(self) -> dict:
        return {"side": self.side, "target_coverage_pct": self.target_coverage_pct,
                "warnings": self.warnings, "measures": self.measures, "quality": self.quality,
                "samples": self.samples, "seed": self.seed, "seconds": round(self.seconds, 3),
                "interval_scale": self.interval_scale, "measure_factors": self.measure_factors,
                "arrays": [a.to_dict() for a in self.arrays],
                "citations": dict(literature.CITATIONS, **{f"array_{a.array.key}": a.array.source
                                                            for a in self.arrays})}


def _array_plan(array, runs: Sequence[dict]) -> ArrayPlan:
    """Summaries of one array over the runs (run 0: the fitted shape)."""
    best, draws = runs[0], runs[1:]
    contacts = []
    for k in range(array.n_contacts):
        fraction = np.array([r["contact_oc_fraction"][k] for r in draws])
        angle = np.array([r["contact_deg"][k] for r in draws])
        best_fraction = best["contact_oc_fraction"][k]
        contacts.append({
            "contact": k + 1,
            "manufacturer_number": catalogue.manufacturer_contact_number(array, k + 1),
            "angle_deg": summary(angle, best["contact_deg"][k]),
            "organ_of_corti_pct": summary(100.0 * fraction, 100.0 * best_fraction),
            "greenwood_hz": summary(literature.greenwood_hz(1.0 - fraction),
                                    literature.greenwood_hz(1.0 - best_fraction)),
            "spiral_ganglion_hz": summary(literature.spiral_ganglion_hz(angle),
                                          literature.spiral_ganglion_hz(best["contact_deg"][k])),
            "intracochlear_probability": float(np.mean([r["intracochlear"][k] for r in draws]))})
    plan = ArrayPlan(
        array,
        summary([r["apical_deg"] for r in draws], best["apical_deg"]),
        summary([r["tip_deg"] for r in draws], best["tip_deg"]),
        summary([100.0 * r["coverage_fraction"] for r in draws], 100.0 * best["coverage_fraction"]),
        contacts, float(np.mean([r["over_inserted"] for r in draws])))
    cohort = literature.COHORT_AID.get(array.key)
    if cohort is not None:
        plan.cohort = dict(cohort)
        plan.within_cohort = bool(cohort["min_deg"] <= plan.apical_deg["mean"] <= cohort["max_deg"])
    elif array.key in literature.COHORT_AID_WITHOUT_RANGE:
        cohort = literature.COHORT_AID_WITHOUT_RANGE[array.key]
        plan.cohort = dict(cohort)
        if cohort.get("sd_deg"):        # within two standard deviations of the cohort's mean
            plan.within_cohort = bool(abs(plan.apical_deg["mean"] - cohort["mean_deg"]) <= 2 * cohort["sd_deg"])
        else:                           # no spread published: the cohort's value inside our interval
            plan.within_cohort = bool(plan.apical_deg["low"] <= cohort["mean_deg"] <= plan.apical_deg["high"])
    return plan


def plan_insertions(theta, covariance, side: str = "right", arrays: Optional[Sequence] = None,
                    target_coverage: float = DEFAULT_TARGET_COVERAGE, samples: int = DEFAULT_SAMPLES,
                    seed: int = 0, measures: Optional[dict] = None, quality: Optional[dict] = None,
                    progress=None, interval_scale: Optional[float] = None) -> CochleaPlan:
    """Plan every array of ``arrays`` (catalogue keys or names; default: the whole
    catalogue) for the cochlea ``theta`` with posterior ``covariance``.

    ``target_coverage``: the share (0-1) of the organ of Corti the user wants covered; the
    arrays come back ranked by how close their mean coverage is to it.
    ``interval_scale``: the factor on the posterior's standard deviations (default: the
    calibrated one of ``Resources/plan-intervals.json``, with its duct-length factors; 1 for the
    posterior alone).
    """
    started = time.perf_counter()
    p = Progress.wrap(progress)
    if not 0.0 < float(target_coverage) <= 1.0:
        raise CochleaAIError(f"The coverage asked for is a share of the organ of Corti between 0 and 1 "
                             f"(e.g. 0.75), got {target_coverage}.")
    if int(samples) < 10:
        raise CochleaAIError("A plan needs at least 10 posterior draws for its error bars.")
    models = [catalogue.get(a) for a in (arrays if arrays is not None else catalogue.ARRAYS)]
    scale, factors = resolve_intervals(interval_scale)
    shapes = posterior_deformables(theta, covariance, samples, seed, scale)
    runs = {m.key: [] for m in models}
    for i, shape in enumerate(shapes):
        lengths = cumulative_lengths(shape)
        for m in models:
            runs[m.key].append(full_insertion(m, lengths))
        if i % 20 == 0:
            p(0.9 * i / len(shapes), f"posterior draw {i} of {len(shapes) - 1}")
    plans = [_array_plan(m, runs[m.key]) for m in models]
    target_pct = 100.0 * float(target_coverage)
    plans.sort(key=lambda a: (a.over_inserted_probability > 0.5, abs(a.coverage_pct["mean"] - target_pct)))
    warnings = []
    if quality and quality.get("suspect"):
        reasons = "; ".join(suspect_reasons(quality)) or "quality control flagged it"
        warnings.append(f"Check the fitted cochlea before using this plan: the segmentation may be wrong "
                        f"({reasons}). The depths and frequencies below are only as good as that fit.")
    p(0.95, "measures over the draws")
    summaries = with_measure_factors(measure_summaries(shapes, measures), factors)
    p(1.0, "plan ready")
    return CochleaPlan(side, target_pct, plans, summaries, dict(quality or {}), int(samples),
                       int(seed), time.perf_counter() - started, warnings, scale, factors)


def plan_from_segmentation(result, **options) -> CochleaPlan:
    """:func:`plan_insertions` for a :class:`cochleaai.segmentation.results.CochleaSegmentation`."""
    return plan_insertions(result.theta, result.covariance, result.side, measures=result.measures,
                           quality=result.quality, **options)
