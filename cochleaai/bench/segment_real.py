"""Cochlea segmentation on real temporal-bone CT with expert labels (``--data DIR``).

Any folder in the layout of :mod:`cochleaai.realct` (e.g. the development specimens of
Wimmer et al. 2019, doi:10.1016/j.dib.2019.104782). For every specimen and every start a
clinician may give (the expert's centre, apex and round-window points; round window and
apex; the centre alone; no point, on a 13 mm crop around the cochlea in any orientation),
the default segmentation is scored against the cochlear part of
the expert label: Dice, volume ratio and HD95 (mm) of the label map, its volume beyond the
scoring cylinder and outside the whole labyrinth label (what a score in the cylinder cannot
see, mm^3), Dice of the shape
model region, errors (mm) of the fitted apex, centre and round window against the expert
points that the start did not give, the quality-control flag and the seconds per volume.
Beside the default (whose label map holds the vestibule's wedge, like the data set's
cylinder-cut cochlear part and the atlas peer's label), on the three-point start: the
12-parameter variant, the thesis's shape-model label map, and the label map of the cochlea
alone (no wedge). The quality control is
scored on starts that should fail: the expert points with the wrong side, the three points
moved 3 mm (a seeded random direction per specimen), and the centre point put on the
vestibule landmark; the figures count how
many of those and how many of the default fits it flags. ``--quick`` runs the first
specimen from three points only; ``--tiny`` too, with a short fit. ``--peers`` adds the
atlas-registration peer (:mod:`cochleaai.bench.segment_peers`) beside ours from three points
(with and without the wedge) and from the centre only (with ``--quick``: on two specimens).
"""
from __future__ import annotations

import time

import numpy as np

from cochleaai import realct
from cochleaai.bench import segment_peers
from cochleaai.bench.segment import TINY_FIT
from cochleaai.errors import CochleaAIError
from cochleaai.peers.atlas import load_itk
from cochleaai.progress import Progress
from cochleaai.segmentation.config import COCHLEA_ALONE_DEG, SegmentConfig
from cochleaai.segmentation.pipeline import segment
from cochleaai.segmentation.pose import LANDMARK_OF_ROLE
from cochleaai.threads import torch_threads

NAME = "segment-real"
DESCRIPTION = "segmentation on real CT with expert labels (--data DIR): Dice, volume, HD95, landmark errors by start"
#: Where the development copy of ``--data`` lies, from the project root
DATA = "../shared/data/real-ct"
OPTIONS = [("--data", {"help": f"a folder of specimens with expert labels (from the project root: {DATA})"}),
           ("--peers", {"action": "store_true", "help": "also run the atlas-registration peer (elastix, as "
                                                       "SlicerCochlea does; pip install 'cochleaai[peers]')"})]

#: Starts (name, the expert points given) in the order of the table.
STARTS = (("3 points", ("center", "apex", "round window")),
          ("round window + apex", ("apex", "round window")),
          ("centre only", ("center",)),
          ("no point", ()))
#: The "no point" start segments a crop of this size (mm) around the cochlea (centred
#: 1.5 mm up the modiolar axis from the expert centre), in any orientation.
CROP_MM = 13.0
#: Variants run beside the default on the three-point start: (name, settings changes).
VARIANTS = (("12 parameters", {"n_params": 12}), ("shape-model label map", {"label_map": "shape-model"}),
            (segment_peers.COCHLEA_ALONE, {"vestibule_wedge_deg": COCHLEA_ALONE_DEG}))
#: Starts that should fail, for the quality control: name -> (points, side) of a specimen.
FAILING = ("wrong side", "points 3 mm off", "centre on the vestibule")
FAILED_DICE = 0.75


def _failing_start(specimen, name, rng):
    if name == "wrong side":
        return specimen.points(), {"left": "right", "right": "left"}[specimen.side]
    if name == "points 3 mm off":
        d = rng.normal(size=3)
        return {k: v + 3.0 * d / np.linalg.norm(d) for k, v in specimen.points().items()}, specimen.side
    return {"center": specimen.landmarks["vestibule"]}, specimen.side


def _score(specimen, labels, part, cylinder, points, side=None, **changes) -> dict:
    ct = specimen.ct()
    if points == ():
        # no point: a crop where the cochlea dominates, its orientation unknown
        ct = ct.crop_mm(specimen.landmarks["center"] + 1.5 * specimen.axes[2], [CROP_MM] * 3,
                        spacing=0.2, direction=np.eye(3), default_value=float(ct.array.min()))
        changes = dict(changes, any_orientation=True)
    t0 = time.perf_counter()
    given = points if isinstance(points, dict) else specimen.points(points)
    fit = segment(ct, given, SegmentConfig(side=side or specimen.side, **changes))
    seconds = time.perf_counter() - t0
    mask = realct.mask_on_label_grid(fit.sroi, labels)
    row = realct.score_mask(mask, labels, specimen, part, cylinder)
    row["dice_ssi"] = realct.score_segmentation(fit.ssi, labels, specimen, part, cylinder)["dice"]
    row.update(_missed_past_basal_end(fit, labels, specimen, part & ~(mask & cylinder)))
    fitted = fit.landmarks()
    for role, key in LANDMARK_OF_ROLE.items():
        if role not in points:
            row[f"{role.replace(' ', '_')}_error_mm"] = float(np.linalg.norm(fitted[key] - specimen.landmarks[role]))
    row.update(seconds=seconds, suspect=bool(fit.quality["suspect"]),
               capsule_contrast_hu=float(fit.quality.get("capsule_contrast_hu", np.nan)),
               capsule_contrast_ratio=float(fit.quality.get("capsule_contrast_ratio", np.nan)),
               qc_surface_mm=float(fit.quality["qc_surface_mm"]))
    return row


def _missed_past_basal_end(fit, labels, specimen, missed_mask) -> dict:
    """Where the expert voxels the label map missed (``missed_mask``, on the label grid) lie:
    the share closest to the fitted duct's basal cap (past its round window), and their median
    distance (mm) to the experts' oval-window landmark."""
    # only the missed voxels' positions, not the whole grid's
    missed = labels.index_to_physical(np.argwhere(missed_mask)[:, ::-1])
    if not len(missed):
        return {"missed_past_basal_end_share": 0.0}
    # the fit frame is the image mirrored for a left ear, and the mirror is its own inverse
    _, _, feet = fit.model.shape_function.closest(fit.to_image(missed), fit.theta)
    past = feet.reshape(-1, 2)[:, 0] < 0.0
    out = {"missed_past_basal_end_share": float(past.mean())}
    if past.any():
        out["missed_past_basal_end_to_oval_window_mm"] = float(
            np.median(np.linalg.norm(missed[past] - specimen.landmarks["oval window"], axis=1)))
    return out


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, data=None, tiny: bool = False,
        peers: bool = False) -> dict:
    if not data:
        raise CochleaAIError("bench segment-real needs --data DIR: a folder of specimens with expert labels "
                             "(for example ../shared/data/real-ct).")
    if peers:
        load_itk()                          # before any fit: a clear error when itk-elastix is missing
    p = Progress.wrap(progress)
    quick = quick or tiny                   # the quick run is one fit already
    development = realct.find_specimens(data)
    specimens = development[:segment_peers.QUICK_TARGETS if peers else 1] if quick else development
    starts = STARTS[:1] if quick else STARTS
    if quick and peers:
        starts = tuple(s for s in STARTS if s[0] in segment_peers.OURS)
    ours_p, peers_p = (p.stage(0.0, 0.3), p.stage(0.3, 1.0)) if peers else (p, None)
    variants = VARIANTS if not quick else \
        tuple(v for v in VARIANTS if v[0] in segment_peers.OURS) if peers and not tiny else ()
    jobs = [(s, name, pts, TINY_FIT if tiny else {}) for s in specimens for name, pts in starts] + \
        [(s, name, STARTS[0][1], changes) for s in specimens for name, changes in variants]
    if not quick:
        rng = np.random.default_rng(seed)
        for s in specimens:
            for name in FAILING:
                points, side = _failing_start(s, name, rng)
                jobs.append((s, name, points, {"side": side}))
    rows = []
    cache = {}
    with torch_threads(1):
        for n, (s, name, pts, changes) in enumerate(jobs):
            ours_p(n / len(jobs), f"{s.id}: {name}")
            if s.id not in cache:
                labels = s.labels()
                cache = {s.id: (labels, realct.cochlear_part(labels, s), realct.scoring_cylinder(labels, s))}
            labels, part, cylinder = cache[s.id]
            rows.append(dict(_score(s, labels, part, cylinder, pts, **changes), specimen=s.id, side=s.side,
                             start=name))
    ours_p(1.0, "done")
    figures = {"specimens": [s.id for s in specimens], "data": str(data)}
    for name in [n for n, _ in starts] + [n for n, _ in variants] + ([] if quick else list(FAILING)):
        sel = [r for r in rows if r["start"] == name]
        key = segment_peers.figure_key(name)
        dice = np.array([r["dice"] for r in sel])
        figures[f"{key}/dice_mean"] = float(dice.mean())
        figures[f"{key}/dice_min"] = float(dice.min())
        figures[f"{key}/dice_ssi_mean"] = float(np.mean([r["dice_ssi"] for r in sel]))
        figures[f"{key}/volume_ratio_min"] = float(min(r["volume_ratio"] for r in sel))
        figures[f"{key}/volume_ratio_max"] = float(max(r["volume_ratio"] for r in sel))
        figures[f"{key}/hd95_mm_mean"] = float(np.mean([r["hd95_mm"] for r in sel]))
        for where in ("outside_cylinder_mm3", "outside_labyrinth_mm3"):
            figures[f"{key}/{where}_mean"] = float(np.mean([r[where] for r in sel]))
            figures[f"{key}/{where}_max"] = float(np.max([r[where] for r in sel]))
        figures[f"{key}/missed_past_basal_end_share_mean"] = float(
            np.mean([r["missed_past_basal_end_share"] for r in sel]))
        for role in ("apex", "center", "round_window"):
            errors = [r[f"{role}_error_mm"] for r in sel if f"{role}_error_mm" in r]
            if errors:
                figures[f"{key}/{role}_error_mm_mean"] = float(np.mean(errors))
                figures[f"{key}/{role}_error_mm_max"] = float(np.max(errors))
        figures[f"{key}/flagged"] = int(sum(r["suspect"] for r in sel))
        figures[f"{key}/sec_median"] = float(np.median([r["seconds"] for r in sel]))
        figures[f"{key}/sec_max"] = float(np.max([r["seconds"] for r in sel]))
    if not quick:
        tried = [r for r in rows if r["start"] in FAILING]
        failed = [r for r in tried if r["dice"] < FAILED_DICE]
        good = [r for r in rows if r["start"] in [n for n, _ in starts] and r["dice"] >= FAILED_DICE]
        figures["qc/failing_starts"] = len(tried)
        figures["qc/failing_starts_failed"] = len(failed)
        figures["qc/failed_fits_flagged"] = int(sum(r["suspect"] for r in failed))
        figures["qc/failing_starts_flagged"] = int(sum(r["suspect"] for r in tried))
        figures["qc/good_default_fits"] = len(good)
        figures["qc/good_default_fits_flagged"] = int(sum(r["suspect"] for r in good))
    figures["per_specimen"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()} for r in rows]
    if peers:
        figures.update(segment_peers.run_peers(rows, specimens, development, quick, peers_p, tiny=tiny))
    return figures
