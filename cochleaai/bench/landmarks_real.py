"""One-shot landmarks on real temporal-bone CT with expert landmarks (``--data DIR``).

The thesis protocol: train on one annotated specimen, detect in all the others. The
reference's structure is its expert label (the whole bony labyrinth, or with
``--structure cochlea`` its cochlear part); its landmarks are the data set's five (centre,
apex, round window, oval window, vestibule). Each target is detected with its side given
(as a user would pick it) and with the side found automatically; the registration-only
baseline (no CNN localisation, from the image centres) runs beside it.

``--all-references`` (or ``--quick``, with a shorter training) repeats this with every
specimen as the reference in turn (leave one reference out), and then fuses, for every
target, the detections of all the references but itself (median). ``--tiny``: one reference,
one target, a training of a few steps.
Figures: per-landmark mean and p95 error (mm), success rate (every landmark of a volume
within 2 mm), seconds per volume, training seconds, how well the confidence flag
separates successes from failures.
"""
from __future__ import annotations

import time

import numpy as np

from cochleaai import realct
from cochleaai.errors import CochleaAIError
from cochleaai.landmarks.detect import Detection, detect_landmarks, fuse_detections
from cochleaai.landmarks.training import TrainConfig, train_oneshot
from cochleaai.markups import Markups
from cochleaai.progress import Progress
from cochleaai.realct import LANDMARK_LABELS as LABELS  # noqa: E402

NAME = "landmarks-real"
DESCRIPTION = ("one-shot landmarks on real CT (--data DIR --reference ID): errors, success, time, "
               "baseline; --all-references for leave-one-reference-out")
#: Where the development copy of ``--data`` lies, from the project root
DATA = "../shared/data/real-ct"
OPTIONS = [
    ("--data", {"help": f"a folder of specimens with expert landmarks (from the project root: {DATA})"}),
    ("--reference", {"help": "the reference specimen id (default: the shipped model's, else the first)"}),
    ("--validation", {"help": "a validation specimen id (default: the reference itself under an unseen "
                              "pose); it is then left out of the targets"}),
    ("--all-references", {"action": "store_true", "help": "every specimen as the reference in turn"}),
    ("--structure", {"choices": ("labyrinth", "cochlea"),
                     "help": "the reference structure (default labyrinth: the expert label)"}),
    ("--max-steps", {"type": int, "help": "training steps (default: TrainConfig's)"}),
]

SUCCESS_MM = 2.0
QUICK_STEPS = 250
TINY_STEPS = 10


def truth(specimen) -> np.ndarray:
    return specimen.landmark_array()


def specimen_inputs(specimen, structure: str = "labyrinth"):
    """``(ct, mask, Markups)`` of a specimen for training: its expert label as the structure."""
    ct = specimen.ct()
    return ct, specimen.structure_mask(structure, ct), specimen.markups()


def train_reference(specimen, validation=None, structure="labyrinth", max_steps=None, seed=0, progress=None):
    ct, mask, marks = specimen_inputs(specimen, structure)
    cfg = TrainConfig() if max_steps is None else TrainConfig(max_steps=int(max_steps))
    val = (None, None)
    if validation is not None:
        vct, vmask, _ = specimen_inputs(validation, structure)
        val = (vct, vmask)
    return train_oneshot(ct, mask, marks, val[0], val[1], cfg, seed=seed, structure=structure,
                         side=specimen.side, progress=progress)


def _errors(points, specimen) -> np.ndarray:
    return np.linalg.norm(np.asarray(points) - truth(specimen), axis=1)


def detect_pairs(model, targets, progress=None) -> list:
    """Detect in every target: side given, side found, registration-only baseline."""
    p = Progress.wrap(progress)
    rows = []
    for k, spec in enumerate(targets):
        stage = p.stage(k / len(targets), (k + 1) / len(targets))
        ct = spec.ct()
        row = {"target": spec.id, "side": spec.side}
        for mode, kwargs in (("given", {"side": spec.side}), ("auto", {"side": None}),
                             ("baseline", {"side": spec.side, "use_localisation": False})):
            t0 = time.perf_counter()
            try:
                det = detect_landmarks(model, ct, **kwargs)
            except CochleaAIError as exc:
                row[mode] = {"error": str(exc), "errors_mm": [float("inf")] * len(LABELS),
                             "confidence": 0.0, "flagged": True, "seconds": time.perf_counter() - t0}
                continue
            row[mode] = {"start": det.details.get("rigid_start"), "points": det.landmarks.points.tolist(), "errors_mm": _errors(det.landmarks.points, spec).tolist(),
                         "confidence": float(det.confidence), "flagged": bool(det.flagged),
                         "mirrored": bool(det.details.get("mirrored")), "seconds": time.perf_counter() - t0}
            stage((["given", "auto", "baseline"].index(mode) + 1) / 3, f"{spec.id} {mode}")
        rows.append(row)
    return rows


def _summarise(results: list, prefix: str) -> dict:
    """Mean/p95 per landmark, success rate, s/volume and the flag's separation."""
    if not results:
        return {}
    with np.errstate(invalid="ignore"):      # a volume not found counts as an infinite error
        return _summary(results, prefix)


def _summary(results: list, prefix: str) -> dict:
    e = np.array([r["errors_mm"] for r in results], float)          # (volumes, landmarks)
    ok = np.all(e <= SUCCESS_MM, axis=1)
    finite = np.where(np.isfinite(e), e, np.nan)
    out = {f"{prefix}mean_error_mm": float(np.nanmean(finite)) if np.isfinite(finite).any() else float("inf"),
           f"{prefix}median_error_mm": float(np.nanmedian(finite)) if np.isfinite(finite).any() else float("inf"),
           f"{prefix}p95_error_mm": float(np.percentile(e, 95)),
           f"{prefix}success_rate": float(ok.mean()),
           f"{prefix}volumes": int(len(results)),
           f"{prefix}failed_volumes": int(sum("error" in r for r in results))}
    out[f"{prefix}mean_error_mm_by_landmark"] = {lab: float(np.mean(e[:, i])) for i, lab in enumerate(LABELS)}
    out[f"{prefix}p95_error_mm_by_landmark"] = {lab: float(np.percentile(e[:, i], 95)) for i, lab in enumerate(LABELS)}
    secs = [r["seconds"] for r in results if "seconds" in r]
    if secs:
        out[f"{prefix}sec_per_volume"] = float(np.median(secs))
        out[f"{prefix}sec_per_volume_max"] = float(np.max(secs))    # a hard volume retries
    flagged = np.array([bool(r.get("flagged")) for r in results])
    conf = np.array([float(r.get("confidence", 0.0)) for r in results])
    out[f"{prefix}flag"] = {"successes_flagged": int((ok & flagged).sum()), "successes": int(ok.sum()),
                            "failures_unflagged": int((~ok & ~flagged).sum()), "failures": int((~ok).sum()),
                            "lowest_success_confidence": float(conf[ok].min()) if ok.any() else float("nan"),
                            "highest_failure_confidence": float(conf[~ok].max()) if (~ok).any() else float("nan")}
    return out


def fuse_targets(pair_rows: list, specimens) -> list:
    """For each target, its detections by all the other references fused as the product
    fuses them (:func:`~cochleaai.landmarks.detect.fuse_detections`)."""
    by_id = {s.id: s for s in specimens}
    out = []
    for tid in sorted({r["target"] for r in pair_rows}):
        dets = [Detection(landmarks=Markups(np.array(r["given"]["points"]), list(LABELS)),
                          confidence=r["given"]["confidence"], flagged=r["given"]["flagged"], centre=np.zeros(3))
                for r in pair_rows if r["target"] == tid and "points" in r["given"]]
        if not dets:
            continue
        fused = fuse_detections(dets)
        out.append({"target": tid, "references": len(dets), "points": fused.landmarks.points.tolist(),
                    "errors_mm": _errors(fused.landmarks.points, by_id[tid]).tolist(),
                    "spread_mm": fused.details["spread_mm"], "confidence": fused.confidence,
                    "flagged": fused.flagged})
    return out


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, data=None, reference=None,
        validation=None, all_references=False, structure=None, max_steps=None, tiny: bool = False) -> dict:
    import torch  # lazy: optional in Slicer until installed

    if not data:
        raise CochleaAIError("bench landmarks-real needs --data DIR: a folder of specimens with expert "
                             "landmarks (for example ../shared/data/real-ct).")
    torch.set_num_threads(1)     # a shared machine: one thread is faster than two contended ones
    p = Progress.wrap(progress)
    structure = structure or "labyrinth"
    specimens = realct.find_specimens(data)
    by_id = {s.id: s for s in specimens}
    for name, sid in (("--reference", reference), ("--validation", validation)):
        if sid is not None and sid not in by_id:
            raise CochleaAIError(f"{name} {sid!r} is not among the specimens {sorted(by_id)}.")
    if len(specimens) < 2 + (validation is not None):
        raise CochleaAIError("bench landmarks-real needs at least two specimens (a reference and a target).")
    first = reference or specimens[0].id
    every = (all_references or quick) and not tiny
    refs = [first] + ([s.id for s in specimens if s.id != first] if every else [])
    steps = max_steps if max_steps is not None else (TINY_STEPS if tiny else QUICK_STEPS if quick else None)
    figures = {"data": str(data), "specimens": [s.id for s in specimens], "structure": structure,
               "references": refs, "validation": validation or "the reference under an unseen pose",
               "train_steps_limit": steps, "torch_threads": 1, "per_reference": []}
    pair_rows, train_secs = [], []
    for k, rid in enumerate(refs):
        stage = p.stage(k / len(refs), (k + 1) / len(refs))
        stage(0.0, f"training on {rid}")
        t0 = time.perf_counter()
        model = train_reference(by_id[rid], by_id.get(validation), structure, steps, seed,
                                progress=stage.stage(0.0, 0.5))
        train_secs.append(time.perf_counter() - t0)
        targets = [s for s in specimens if s.id not in (rid, validation)][:1 if tiny else None]
        rows = detect_pairs(model, targets, progress=stage.stage(0.5, 1.0))
        for r in rows:
            r["reference"] = rid
        pair_rows += rows
        given = [r["given"] for r in rows]
        summary = _summarise(given, "")
        figures["per_reference"].append({
            "reference": rid, "train_sec": round(train_secs[-1], 1),
            "steps": int(model.card["training"]["steps"]),
            "mean_error_mm": round(summary["mean_error_mm"], 3), "p95_error_mm": round(summary["p95_error_mm"], 3),
            "success_rate": round(summary["success_rate"], 3),
            "baseline_mean_error_mm": round(_summarise([r["baseline"] for r in rows], "")["mean_error_mm"], 3)})
    figures.update(_summarise([r["given"] for r in pair_rows], ""))
    figures.update(_summarise([r["auto"] for r in pair_rows], "auto_side_"))
    figures.update(_summarise([r["baseline"] for r in pair_rows], "baseline_"))
    sides_right = [r["auto"].get("mirrored") == (r["side"] != by_id[r["reference"]].side)
                   for r in pair_rows if "mirrored" in r["auto"]]
    figures["auto_side_correct"] = f"{sum(sides_right)}/{len(pair_rows)}"
    figures["train_sec_median"] = float(np.median(train_secs))
    figures["train_sec_max"] = float(np.max(train_secs))
    if len(refs) > 2:
        fused = fuse_targets(pair_rows, specimens)
        figures.update(_summarise(fused, "fused_"))
        figures["fused_spread_mm"] = {r["target"]: round(r["spread_mm"], 3) for r in fused}
    figures["pairs"] = [{"reference": r["reference"], "target": r["target"],
                         "errors_mm": [round(v, 2) for v in r["given"]["errors_mm"]],
                         "confidence": round(r["given"]["confidence"], 3),
                         "start": r["given"].get("start"),
                         "auto_errors_mm": [round(v, 2) for v in r["auto"]["errors_mm"]],
                         "auto_mirrored": r["auto"].get("mirrored"),
                         "baseline_max_mm": round(float(np.max(r["baseline"]["errors_mm"])), 2)}
                        for r in pair_rows]
    p(1.0, "done")
    return figures
