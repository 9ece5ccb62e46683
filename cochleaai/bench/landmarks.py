"""One-shot landmark benchmark: CNN localisation + registration against registration only.

Reference and validation are two temporal field-of-view phantoms; the held-out targets
are independent phantoms (other seeds: other cochlea shapes, poses, surroundings,
intensities, blur and noise) whose landmark truth is known. A last check resamples the
reference itself under a known rigid motion and measures how far its landmarks come
back. ``--quick`` uses the shipped model (its card's training time is reported) and
5 targets; the full run trains a fresh model and uses 20 targets. ``--tiny``: one target,
the shipped model (else a training of a few steps).
"""
from __future__ import annotations

import time

import numpy as np
import SimpleITK as sitk

from cochleaai.landmarks.detect import detect_landmarks
from cochleaai.landmarks.localise import StructureNotFound
from cochleaai.landmarks.model_io import load_model, phantom_model_path
from cochleaai.landmarks.patches import as_sitk
from cochleaai.landmarks.training import TrainConfig, train_oneshot
from cochleaai.phantom import SIDE as PHANTOM_SIDE  # noqa: E402  (the generator builds right ears)
from cochleaai.phantom.core import make_phantom
from cochleaai.progress import Progress
from cochleaai.volume import Volume

NAME = "landmarks"
DESCRIPTION = "one-shot landmarks on held-out phantoms: error, success, time; registration-only baseline"
REFERENCE_SEED = 1000      # the shipped model's reference; validation is REFERENCE_SEED + 1
TARGET_SEED = 2000
TINY_STEPS = 10            # --tiny without the shipped model: a training this short


def known_rigid_target(phantom, angles_deg=(8.0, -6.0, 10.0), shift_mm=(2.0, -1.5, 1.0)):
    """The phantom's CT resampled under a known rigid motion, and where its landmarks go."""
    ct = phantom.ct
    tf = sitk.Euler3DTransform()
    tf.SetCenter([float(v) for v in ct.center])
    tf.SetRotation(*[float(np.radians(a)) for a in angles_deg])
    tf.SetTranslation([float(v) for v in shift_mm])
    # the new image at x shows the old image at tf(x): a landmark at y moves to tf^-1(y)
    moved = sitk.Resample(as_sitk(ct), as_sitk(ct), tf, sitk.sitkLinear, -1000.0, sitk.sitkFloat32)
    inverse = tf.GetInverse()
    truth = np.array([inverse.TransformPoint([float(v) for v in p]) for p in phantom.landmarks.points])
    return Volume.from_sitk(moved), truth


def _summary(errors, times, prefix=""):
    e = np.concatenate(errors) if errors else np.array([np.inf])
    return {f"{prefix}mean_error_mm": float(np.mean(e)), f"{prefix}median_error_mm": float(np.median(e)),
            f"{prefix}p95_error_mm": float(np.percentile(e, 95)), f"{prefix}max_error_mm": float(np.max(e)),
            f"{prefix}success_rate": float(np.mean(e < 2.0)),
            f"{prefix}sec_per_volume": float(np.median(times)) if times else float("nan")}


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, tiny: bool = False) -> dict:
    import torch  # lazy: optional in Slicer until installed

    torch.set_num_threads(1)      # the machine is shared: one thread is faster than two contended ones
    p = Progress.wrap(progress)
    n_targets = 1 if tiny else 5 if quick else 20
    figures = {"torch_threads": 1, "targets": n_targets}
    ref_seed = REFERENCE_SEED + 10 * seed
    p(0.0, "Reference phantom")
    reference = make_phantom(ref_seed, fov="temporal")
    if (tiny or (quick and seed == 0)) and phantom_model_path().is_file():
        model = load_model(phantom_model_path())
        figures["model"] = "shipped " + phantom_model_path().name
        figures["train_sec"] = float(model.card["training"]["train_sec"])
        figures["train_sec_source"] = "model card"
        p(0.2, "Using the shipped model")
    else:
        validation = make_phantom(ref_seed + 1, fov="temporal")
        t0 = time.perf_counter()
        config = TrainConfig(max_steps=TINY_STEPS) if tiny else TrainConfig()
        model = train_oneshot(reference.ct, reference.mask("Cochlea"), reference.landmarks, validation.ct,
                              validation.mask("Cochlea"), config, seed=seed,
                              progress=p.stage(0.02, 0.3), side=PHANTOM_SIDE)
        figures["model"] = f"trained here (reference seed {ref_seed}, validation {ref_seed + 1})"
        figures["train_sec"] = time.perf_counter() - t0
        figures["train_steps"] = int(model.card["training"]["steps"])
        figures["train_stopped"] = model.card["training"]["stopped"]
    labels = list(model.labels)
    errs = {"": [], "baseline_": []}
    times = {"": [], "baseline_": []}
    per_label = {"": {k: [] for k in labels}, "baseline_": {k: [] for k in labels}}
    confidences, flagged, not_found, centre_err = [], 0, {"": 0, "baseline_": 0}, []
    start = 0.3
    for k in range(n_targets):
        s = TARGET_SEED + 100 * seed + k
        stage = p.stage(start + (1 - start) * k / (n_targets + 1), start + (1 - start) * (k + 1) / (n_targets + 1))
        stage(0.0, f"target phantom {k + 1}/{n_targets} (seed {s})")
        target = make_phantom(s, fov="temporal")
        truth = target.landmarks.points
        for prefix, loc in (("", True), ("baseline_", False)):
            t0 = time.perf_counter()
            try:
                det = detect_landmarks(model, target.ct, use_localisation=loc, side=PHANTOM_SIDE)
            except StructureNotFound:
                not_found[prefix] += 1
                errs[prefix].append(np.full(len(labels), np.inf))
                continue
            times[prefix].append(time.perf_counter() - t0)
            e = np.linalg.norm(det.landmarks.points - truth, axis=1)
            errs[prefix].append(e)
            for lab, v in zip(labels, e):
                per_label[prefix][lab].append(float(v))
            if loc:
                confidences.append(det.confidence)
                flagged += int(det.flagged)
                mask = target.mask("Cochlea")
                true_centre = target.ct.index_to_physical(np.argwhere(mask)[:, ::-1].mean(0))
                centre_err.append(float(np.linalg.norm(det.centre - true_centre)))
    for prefix in ("", "baseline_"):
        figures.update(_summary(errs[prefix], times[prefix], prefix))
        figures[f"{prefix}not_found"] = not_found[prefix]
        figures[f"{prefix}mean_error_mm_by_landmark"] = {k: float(np.mean(v)) if v else float("nan")
                                                        for k, v in per_label[prefix].items()}
    figures["localisation_centre_error_mm_median"] = float(np.median(centre_err)) if centre_err else float("nan")
    figures["confidence_median"] = float(np.median(confidences)) if confidences else float("nan")
    figures["confidence_min"] = float(np.min(confidences)) if confidences else float("nan")
    figures["flagged"] = flagged
    p(1 - (1 - start) / (n_targets + 1), "Known rigid motion of the reference")
    moved, truth = known_rigid_target(reference)
    det = detect_landmarks(model, moved, side=PHANTOM_SIDE)
    e = np.linalg.norm(det.landmarks.points - truth, axis=1)
    figures["rigid_check_max_error_mm"] = float(e.max())
    figures["rigid_check_voxel_mm"] = float(reference.ct.spacing.min())
    p(1.0, "done")
    return figures
