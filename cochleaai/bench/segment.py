"""Cochlea segmentation benchmark on held-out roi phantoms (seeds 1000 + seed ...).

For each phantom: Dice and 95th-percentile Hausdorff distance of the posterior label map
(SROI) and of the shape model region (SSI) against the true "Cochlea" mask, seconds per
volume and the error of the lateral-wall duct length. On the first few volumes the
Gauss-Newton and the BFGS shape steps run side by side (same volumes, same settings); the
speed-up is given for the EM fit, where the two differ (``gn_vs_bfgs_speedup``), and for
the whole call, whose start search, maps and checks are the same for both
(``gn_vs_bfgs_speedup_whole_call``).
On the first phantom the fit also starts from 10 random parameter vectors drawn
uniformly within the bounds (deformable parameters over their whole range, the pose
within its allowed range around the template). The same starts are fitted once more
with the local search only (no placement search), which fails on some of them: the
quality control is scored on those fits and on the template fits (how many of the
failed fits, SSI Dice below 0.5, and how many of the good ones it flags).
The phantom's "Cochlea" is the cochlea alone (the lumen past its round window is its vestibule
segment), so its fits label the cochlea alone (``COCHLEA_ALONE_DEG``): the label convention of
the truth. Each phantom is also fitted with the default, which adds the vestibule's wedge
like expert labels on real CT (``dice_sroi_mean_vestibule_wedge``): what that costs against
a label of the cochlea alone.
"""
from __future__ import annotations

import time

import numpy as np
from scipy.stats import spearmanr

from cochleaai.metrics import dice, hausdorff95
from cochleaai.phantom.core import make_phantom
from cochleaai.progress import Progress
from cochleaai.segmentation.config import COCHLEA_ALONE_DEG, SMOKE_FIT, SegmentConfig
from cochleaai.segmentation.pipeline import relabel, segment
from cochleaai.segmentation.shapes import CochleaShape
from cochleaai.shape.measures import clinical_measures

NAME = "segment"
DESCRIPTION = "logistic shape model on held-out roi phantoms: Dice, HD95, time, GN vs BFGS, random starts"
#: A fit with an SSI Dice below this counts as failed when the quality control is scored.
FAILED_DICE = 0.5
#: --tiny: one volume and one start of each kind, each a short fit from its start (SegmentConfig changes)
TINY_FIT = SMOKE_FIT


def _truth_on(result, phantom) -> np.ndarray:
    mask = phantom.ct.copy(phantom.mask("Cochlea").astype(np.uint8))
    return mask.resample_like(result.roi, "nearest").array > 0


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, tiny: bool = False) -> dict:
    import torch  # lazy: optional in Slicer until installed

    torch.set_num_threads(1)            # the fit is many small evaluations: one core is faster
    p = Progress.wrap(progress)
    n_volumes = 1 if tiny else 5 if quick else 20
    n_bfgs = 1 if tiny else 2 if quick else 3
    n_random = 1 if tiny else 5 if quick else 10
    # the phantom truth's label convention; every fit below is scored against it
    fit = dict(TINY_FIT if tiny else {}, vestibule_wedge_deg=COCHLEA_ALONE_DEG)
    total = n_volumes + n_bfgs * 2 + 2 * n_random
    done = 0
    rows = []
    for k in range(n_volumes):
        p(done / total, f"phantom {k + 1}/{n_volumes}")
        ph = make_phantom(seed=1000 + seed + k, fov="roi")
        t0 = time.perf_counter()
        r = segment(ph.ct, settings=SegmentConfig(**fit))
        sec = time.perf_counter() - t0
        truth = _truth_on(r, ph)
        sroi, ssi = r.sroi.array > 0, r.ssi.array > 0
        true_cdl = clinical_measures(np.asarray(ph.truth["theta"]))["cdl_lateral_wall_mm"]
        rows.append({"dice_sroi": dice(sroi, truth), "dice_ssi": dice(ssi, truth),
                     "hd95_sroi": hausdorff95(r.sroi, r.roi.copy(truth.astype(np.uint8))),
                     "hd95_ssi": hausdorff95(r.ssi, r.roi.copy(truth.astype(np.uint8))),
                     "sec": sec, "cdl_err": r.measures["cdl_lateral_wall_mm"]["mean"] - true_cdl,
                     "qc": r.quality["qc_surface_mm"], "contrast": r.quality["capsule_contrast_hu"],
                     "suspect": r.quality["suspect"],
                     "search_sec": r.timings["start_search"],
                     "fit_sec": r.timings["em_fit"]})
        # the same fit, relabelled with the default's wedge (what segmenting with it gives)
        wedged = relabel(r, SegmentConfig.vestibule_wedge_deg)
        rows[-1]["dice_sroi_wedge"] = dice(wedged.sroi.array > 0, truth)
        done += 1

    # Gauss-Newton vs BFGS: same volumes, side by side
    sec = {"gauss-newton": [], "bfgs": []}
    fit_sec = {"gauss-newton": [], "bfgs": []}
    bfgs_dice = []
    for k in range(n_bfgs):
        ph = make_phantom(seed=1000 + seed + k, fov="roi")
        for step in ("gauss-newton", "bfgs"):
            p(done / total, f"{step} on phantom {k + 1}/{n_bfgs}")
            t0 = time.perf_counter()
            r = segment(ph.ct, settings=SegmentConfig(**dict(fit, shape_step=step, samples=0)))
            sec[step].append(time.perf_counter() - t0)
            fit_sec[step].append(r.timings["em_fit"])
            if step == "bfgs":
                bfgs_dice.append(dice(r.ssi.array > 0, _truth_on(r, ph)))
            done += 1

    # random starts on one phantom
    ph = make_phantom(seed=1000 + seed, fov="roi")
    rng = np.random.default_rng(seed)
    template = segment(ph.ct, settings=SegmentConfig(outer_iterations=1, samples=0,
                                                     search_start=False)).initial_theta
    bounded = CochleaShape().around(template, SegmentConfig.rotation_range, SegmentConfig.translation_range)
    starts = [rng.uniform(bounded.lower, bounded.upper) for _ in range(n_random)]
    random_dice, random_sec = [], []
    for k, start in enumerate(starts):
        p(done / total, f"random start {k + 1}/{n_random}")
        t0 = time.perf_counter()
        r = segment(ph.ct, settings=SegmentConfig(**dict(fit, start=start, samples=0)))
        random_sec.append(time.perf_counter() - t0)
        random_dice.append(dice(r.ssi.array > 0, _truth_on(r, ph)))
        done += 1

    # quality control on fits that can fail: the same starts with the local search only
    local = []
    for k, start in enumerate(starts):
        p(done / total, f"local-search start {k + 1}/{n_random} (quality control)")
        r = segment(ph.ct, settings=SegmentConfig(**dict(fit, start=start, samples=0,
                                                              search_placement=False)))
        local.append((dice(r.ssi.array > 0, _truth_on(r, ph)), r.quality["suspect"]))
        done += 1
    p(1.0, "done")
    # (Dice, flagged) of every fit the quality control is scored on: template and local-search fits
    scored = [(row["dice_ssi"], row["suspect"]) for row in rows] + local
    failed = [flag for d, flag in scored if d < FAILED_DICE]
    good = [flag for d, flag in scored if d >= FAILED_DICE]

    def col(name):
        return np.array([row[name] for row in rows], float)

    return {
        "volumes": n_volumes,
        "dice_sroi_mean": float(col("dice_sroi").mean()),
        "dice_sroi_mean_vestibule_wedge": float(col("dice_sroi_wedge").mean()),
        "dice_ssi_mean": float(col("dice_ssi").mean()),
        "dice_ssi_min": float(col("dice_ssi").min()),
        "hd95_mm_mean": float(col("hd95_sroi").mean()),
        "hd95_ssi_mm_mean": float(col("hd95_ssi").mean()),
        "sec_per_volume_median": float(np.median(col("sec"))),
        "start_search_sec_median": float(np.median(col("search_sec"))),
        "em_fit_sec_median": float(np.median(col("fit_sec"))),
        "cdl_lateral_wall_error_mm_mean": float(col("cdl_err").mean()),
        "cdl_lateral_wall_abs_error_mm_mean": float(np.abs(col("cdl_err")).mean()),
        "qc_surface_mm_median": float(np.median(col("qc"))),
        "qc_vs_dice_ssi_spearman": float(_spearman(col("qc"), col("dice_ssi"))),
        "capsule_contrast_hu_median": float(np.median(col("contrast"))),
        "capsule_contrast_hu_min": float(col("contrast").min()),
        "gn_fit_sec_median": float(np.median(fit_sec["gauss-newton"])),
        "bfgs_fit_sec_median": float(np.median(fit_sec["bfgs"])),
        "gn_vs_bfgs_speedup": float(np.median(fit_sec["bfgs"]) / np.median(fit_sec["gauss-newton"])),
        "gn_sec_median": float(np.median(sec["gauss-newton"])),
        "bfgs_sec_median": float(np.median(sec["bfgs"])),
        "gn_vs_bfgs_speedup_whole_call": float(np.median(sec["bfgs"]) / np.median(sec["gauss-newton"])),
        "bfgs_dice_ssi_mean": float(np.mean(bfgs_dice)),
        "random_init_dice_mean": float(np.mean(random_dice)),
        "random_init_dice_std": float(np.std(random_dice)),
        "random_init_dice_min": float(np.min(random_dice)),
        "random_init_sec_median": float(np.median(random_sec)),
        "local_search_random_init_dice_mean": float(np.mean([d for d, _ in local])),
        "qc_failed_fits": len(failed),
        "qc_failed_fits_flagged": int(sum(failed)),
        "qc_good_fits": len(good),
        "qc_good_fits_flagged": int(sum(good)),
    }


def _spearman(a, b) -> float:
    if len(a) < 3:
        return float("nan")
    return float(spearmanr(a, b).statistic)
