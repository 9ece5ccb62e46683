"""Metal artifact reduction side by side: the input, LI, NMAR, BHC and MARGAN (when a model
is installed, or ``--mar-model``).

Simulated held-out pairs (phantoms no training set uses, scanner settings drawn per pair as
for training): PSNR, SSIM and RMSE against the same scanner's metal-free scan over the whole
volume, and PSNR and RMSE within 2 mm of the metal, the metal itself excluded; PSNR outside
the threshold segmentation (the metal with its blooming, where the sinogram methods keep the
input's values); seconds per
volume; contact localisation on each output (median and p95 distance in mm from each true
intracochlear contact to the nearest contact found, overall and per array, and the matched
contacts' offsets along the array, across it and into its bend; the implanted
array is given to the detector; the module and ``mar --contacts`` find the contacts in the
input's metal whatever the method, so they are scored once per pair, with the same
contacts without the learned sub-voxel refinement beside them). With ``--mar-segment``, the
downstream measure of the clinical MAR literature: the input, NMAR and MARGAN outputs are
segmented with the shape model (no points: the phantoms sit at the template pose) and
scored against the segmentation of the metal-free target (Dice). With ``--data DIR`` (real pre-op CTs in
the layout of :mod:`cochleaai.realct`), the held-out specimens (never in a training set) get
realistic post-ops: the real pre-op plus a simulated implant's artifact
(:func:`cochleaai.simulation.ct.inject_artifact`), so the target is the real scan itself. On
them: PSNR and SSIM over the whole crop and PSNR within 3 mm of the metal (the metal grown by one
voxel left out), the RMS difference from the pre-op farther than 5 mm from the metal (where a
method should change nothing), and the contacts, scored as on the phantoms; ``real_vs_targets``
gives MARGAN's margins over the input and NMAR, the figures the reduction is held to.
``--ablation``:
the thesis's loss and simulation ablation instead (:mod:`cochleaai.bench.mar_ablation`).
``--tiny``: one pair (and one real specimen with ``--data``).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation
from scipy.spatial import cKDTree

from cochleaai.bench.mar_ablation import run_ablation
from cochleaai.contacts.detect import chain_of_contacts, corrected_chain
from cochleaai.contacts.refiner import shipped_refiner
from cochleaai.io import axial_panels
from cochleaai.mar.dispatch import reduce_metal_artifacts
from cochleaai.mar.methods import default_model_available
from cochleaai.mar.quality import similarity
from cochleaai.metrics import dice, distance_from_mask
from cochleaai.progress import Progress
from cochleaai.segmentation.config import SegmentConfig
from cochleaai.segmentation.pipeline import segment
from cochleaai.simulation.pairs import EVAL_SPECIMENS, PairSpec, make_pair, training_specimens
from cochleaai.threads import threads_limited

NAME = "mar"
DESCRIPTION = ("MARGAN / LI / NMAR / BHC on held-out simulated implants (and real anatomy with --data DIR): "
               "PSNR, SSIM, RMSE, near-metal figures, contacts, s/volume")
#: Where the development copy of ``--data`` (optional here) lies, from the project root
DATA = "../shared/data/real-ct"
OPTIONS = [("--mar-model", {"help": "MARGAN model (default: the shipped one)"}),
           ("--mar-segment", {"action": "store_true",
                              "help": "also segment each output (input, NMAR, MARGAN) with the shape model "
                                      "and score it against the segmentation of the target (Dice); slow"}),
           ("--ablation", {"action": "store_true",
                           "help": "instead, the ablation of MARGAN's losses and simulation (L1, L2, "
                                   "L2 + Retinex, L2 + Retinex without scatter and noise): four short "
                                   "trainings on a small set, about 5 min on one CPU thread "
                                   "(--quick: about 2 min)"}),
           ("--data", {"help": f"a folder of real pre-op CTs (layout of cochleaai.realct; from the project "
                               f"root: {DATA}): held-out specimens get simulated implants"}),
           ("--threads", {"type": int, "help": "torch, numba and BLAS threads (default: unchanged)"})]

HELD_OUT_SEED = 100_000       # phantoms for this benchmark come from seeds no training set uses
NEAR_METAL_MM = 2.0
#: On real anatomy: "near" and "far" from the metal (mm)
REAL_NEAR_MM, REAL_FAR_MM = 3.0, 5.0


def _psnr_rmse(ref, test, region, data_range: float = 4095.0):
    err = (np.asarray(ref, np.float64) - np.asarray(test, np.float64))[region]
    mse = float(np.mean(err ** 2))
    return 10 * np.log10(data_range ** 2 / mse) if mse > 0 else float("inf"), float(np.sqrt(mse))


#: A found contact this close to a true one counts as matched in the offset breakdown.
MATCHED_MM = 0.4


def _contact_errors(found, image, insertion, offsets=None):
    """Distances (mm) from each true intracochlear contact to the nearest of the contacts
    ``found`` (N, 3) in ``image``. ``offsets`` (a dict of lists): the matched ones' offsets
    split along the array, across it, and into its bend (the signed part towards the true
    centre of curvature)."""
    keep = insertion.intracochlear & image.contains(insertion.contacts)
    inside = insertion.contacts[keep]
    if not len(found) or not len(inside):
        return []
    dist, j = cKDTree(found).query(inside)
    if offsets is not None:
        c, tangent = insertion.contacts, insertion.contact_axes
        for k, off in zip(np.flatnonzero(keep), found[j] - inside):
            if np.linalg.norm(off) > MATCHED_MM:
                continue
            t = tangent[k]
            along = float(off @ t)
            across = off - along * t
            offsets.setdefault("along", []).append(abs(along))
            offsets.setdefault("across", []).append(float(np.linalg.norm(across)))
            if 0 < k < len(c) - 1:          # the true bend: the discrete second difference
                b = c[k - 1] + c[k + 1] - 2.0 * c[k]
                b -= (b @ t) * t
                if np.linalg.norm(b) > 1e-9:
                    offsets.setdefault("into_bend", []).append(float(across @ b / np.linalg.norm(b)))
    return dist.tolist()


#: Figures on real anatomy, per method
REAL_KEYS = ("psnr", "ssim", "psnr_within_3mm", "rms_far_hu")


def _real_regions(metal: np.ndarray, d: np.ndarray) -> dict:
    """The voxels scored on real anatomy, from the distance ``d`` (mm) to the metal: everything
    but the metal grown by one voxel; those within ``REAL_NEAR_MM`` of it; those farther than
    ``REAL_FAR_MM``."""
    grown = binary_dilation(metal)
    return {"exclude": grown, "near": (d <= REAL_NEAR_MM) & ~grown, "far": d > REAL_FAR_MM}


def _real_figures(preop: np.ndarray, image: np.ndarray, regions: dict) -> dict:
    s = similarity(preop, image, regions["exclude"])
    return {"psnr": s["psnr"], "ssim": s["ssim"], "psnr_within_3mm": _psnr_rmse(preop, image, regions["near"])[0],
            "rms_far_hu": _psnr_rmse(preop, image, regions["far"])[1]}


def _margins(out: dict) -> dict:
    """MARGAN against the input and NMAR on real anatomy, beside the margins it is held to."""
    psnr, near = out["real_psnr"], out["real_psnr_within_3mm"]
    return {"psnr_over_input_db": round(psnr["margan"] - psnr["input"], 2),
            "psnr_over_nmar_db": round(psnr["margan"] - psnr["nmar"], 2),
            "psnr_within_3mm_over_input_db": round(near["margan"] - near["input"], 2),
            "ssim_over_input": round(out["real_ssim"]["margan"] - out["real_ssim"]["input"], 4),
            "rms_far_over_input_hu": round(out["real_rms_far_hu"]["margan"] - out["real_rms_far_hu"]["input"], 2),
            "held_to": {"psnr_over_input_db": ">= 3", "psnr_over_nmar_db": ">= 3",
                        "psnr_within_3mm_over_input_db": ">= 6", "ssim_over_input": "> 0",
                        "rms_far_over_input_hu": "<= 2"}}


def _methods(model_path):
    methods = ["li", "nmar", "bhc"]
    if model_path or default_model_available():
        methods.append("margan")
    return methods


def _segmentation(volume):
    return segment(volume, settings=SegmentConfig()).sroi.array > 0


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, data=None, mar_model=None,
        mar_segment: bool = False, ablation: bool = False, threads=None, tiny: bool = False) -> dict:
    """The figures (see the module's docstring); ``threads``: torch, numba and BLAS threads."""
    with threads_limited(threads):
        return _run(quick, seed, progress, data, mar_model, mar_segment, ablation, tiny, out_dir)


def _picture(preop, outputs: dict, metal: np.ndarray, path) -> None:
    """The real pre-op beside the input and the NMAR and MARGAN outputs."""
    panels = {"real pre-op": preop, "post-op (pre-op + artifact)": outputs["input"][0].array}
    panels.update({m.upper(): outputs[m][0].array for m in ("nmar", "margan") if m in outputs})
    axial_panels(panels, metal, path)


def _run(quick, seed, progress, data, mar_model, mar_segment, ablation, tiny, out_dir) -> dict:
    if ablation:
        return run_ablation(quick=quick, seed=seed, progress=progress, tiny=tiny)
    p = Progress.wrap(progress)
    methods = _methods(mar_model)
    n = 1 if tiny else 6 if quick else 12
    # the phantoms keep the simulated scanner's pairs, the figures of every earlier model
    cases = [PairSpec(k, HELD_OUT_SEED + seed * 1000 + k, f"phantom:{HELD_OUT_SEED + seed * 1000 + k}",
                      artifact_mode="simulated") for k in range(n)]
    real = []
    if data:
        per = 1 if quick or tiny else 4
        folders = training_specimens(data, EVAL_SPECIMENS)[:1 if tiny else None]
        real = [PairSpec(100 + k, HELD_OUT_SEED + seed * 1000 + 500 + k, "real:" + str(folder),
                         artifact_mode="injected")
                for folder in folders for k in range(per)]
    keys = ("input",) + tuple(methods)
    sim_scores = {m: {"psnr": [], "ssim": [], "rmse": [], "psnr_near": [], "rmse_near": [], "psnr_outside": []}
                  for m in keys}
    real_scores = {m: {k: [] for k in REAL_KEYS} for m in keys}
    seconds = {m: [] for m in methods}
    # contact errors by anatomy ("sim" / "real") and refinement ("refined" / "geometric")
    contacts = {(a, r): [] for a in ("sim", "real") for r in ("refined", "geometric")}
    contacts_by_array = {"sim": {}, "real": {}}
    offsets = {}                        # the matched contacts' offsets, by direction
    seg_keys = [m for m in ("input", "nmar", "margan") if m in keys]
    dice_scores = {m: [] for m in seg_keys}
    total = len(cases) + len(real)
    for k, spec in enumerate(cases + real):
        p(k / total, f"case {k + 1}/{total}")
        target, post, sim, info = make_pair(spec)
        tgt = target.array.astype(np.float32)
        metal = sim.metal.array.astype(bool)
        distance = distance_from_mask(metal, post.spacing)
        near = (distance <= NEAR_METAL_MM) & ~metal
        post_f = post.copy(post.array.astype(np.float32))
        outputs = {"input": (post_f, reduce_metal_artifacts(post_f, "li").metal_mask)}
        for m in methods:
            t0 = time.perf_counter()
            res = reduce_metal_artifacts(post_f, m, model=mar_model if m == "margan" else None)
            seconds[m].append(time.perf_counter() - t0)
            outputs[m] = (res.image, res.metal_mask)
        is_real = spec.source.startswith("real:")
        if is_real:
            regions = _real_regions(metal, distance)
            if out_dir and spec.index == 100:     # the first case of each specimen
                _picture(tgt, outputs, metal, Path(out_dir) / f"mar-real-{Path(spec.source[5:]).name}.png")
        # the contacts: found in the input's metal, as the module does for every method
        kind = "real" if is_real else "sim"
        chain = chain_of_contacts(post_f, outputs["input"][1], max_contacts=sim.insertion.array.n_contacts,
                                  array=sim.insertion.array)
        errors = _contact_errors(corrected_chain(post_f, outputs["input"][1], chain), post_f, sim.insertion,
                                 None if is_real else offsets)
        contacts[kind, "refined"].extend(errors)
        contacts[kind, "geometric"].extend(
            _contact_errors(corrected_chain(post_f, outputs["input"][1], chain, refiner=None), post_f, sim.insertion))
        contacts_by_array[kind].setdefault(sim.insertion.array.key, []).extend(errors)
        for m, (img, mask) in outputs.items():
            arr = img.array
            if is_real:
                for key, value in _real_figures(tgt, arr, regions).items():
                    real_scores[m][key].append(value)
                continue
            s = similarity(tgt, arr, metal)
            for key in ("psnr", "ssim", "rmse"):
                sim_scores[m][key].append(s[key])
            # outside the threshold segmentation (metal and blooming), which the sinogram methods
            # fill with the input's values by design
            sim_scores[m]["psnr_outside"].append(_psnr_rmse(tgt, arr, ~(metal | outputs["input"][1]))[0])
            pn, rn = _psnr_rmse(tgt, arr, near)
            sim_scores[m]["psnr_near"].append(pn)
            sim_scores[m]["rmse_near"].append(rn)
        if mar_segment and not is_real:
            ref = _segmentation(target)
            for m in seg_keys:
                dice_scores[m].append(float(dice(_segmentation(outputs[m][0]), ref)))
    p(1.0, "done")

    def mean(v):
        return round(float(np.mean(v)), 4) if v else None

    def median(v):
        return round(float(np.median(v)), 3) if v else None

    def p95(v):
        return round(float(np.percentile(v, 95)), 3) if v else None

    def by_array(per):
        return {a: [median(v), p95(v), len(v)] for a, v in sorted(per.items()) if v}

    refiner = shipped_refiner()

    out = {"pairs": n, "methods": list(keys),
           "psnr": {m: mean(v["psnr"]) for m, v in sim_scores.items()},
           "ssim": {m: mean(v["ssim"]) for m, v in sim_scores.items()},
           "rmse": {m: mean(v["rmse"]) for m, v in sim_scores.items()},
           "psnr_within_2mm": {m: mean(v["psnr_near"]) for m, v in sim_scores.items()},
           "rmse_within_2mm": {m: mean(v["rmse_near"]) for m, v in sim_scores.items()},
           "psnr_outside_metal_segmentation": {m: mean(v["psnr_outside"]) for m, v in sim_scores.items()},
           "sec_per_volume": {m: round(float(np.median(v)), 3) for m, v in seconds.items()},
           "contact_refiner": refiner.card.get("name") if refiner is not None else None,
           "contact_error_mm_median": median(contacts["sim", "refined"]),
           "contact_error_mm_p95": p95(contacts["sim", "refined"]),
           # the same contacts with the geometric correction only (no learned refinement)
           "contact_error_mm_median_without_refiner": median(contacts["sim", "geometric"]),
           "contact_error_mm_p95_without_refiner": p95(contacts["sim", "geometric"]),
           # per array: [median, p95, contacts]
           "contact_error_mm_by_array": by_array(contacts_by_array["sim"]),
           # matched contacts (within MATCHED_MM): median |offset| along and across the array,
           # and the mean signed offset into its bend
           "contact_offset_mm": {"along_median": median(offsets.get("along")),
                                 "across_median": median(offsets.get("across")),
                                 "into_bend_mean": mean(offsets.get("into_bend"))},
           "data_range_hu": 4095}
    if mar_segment:
        out["segmentation_dice_vs_target"] = {m: mean(v) for m, v in dice_scores.items()}
    if real:
        out["real_cases"] = len(real)
        out["real_specimens"] = list(EVAL_SPECIMENS)
        for key in REAL_KEYS:
            out["real_" + key] = {m: mean(v[key]) for m, v in real_scores.items()}
        if "margan" in keys:
            out["real_vs_targets"] = _margins(out)
        for kind, suffix in (("refined", ""), ("geometric", "_without_refiner")):
            out["real_contact_error_mm_median" + suffix] = median(contacts["real", kind])
            out["real_contact_error_mm_p95" + suffix] = p95(contacts["real", kind])
        out["real_contact_error_mm_by_array"] = by_array(contacts_by_array["real"])
    return out
