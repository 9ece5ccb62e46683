"""The online pipeline: localise, align, register, map the landmarks (thesis Algorithm 4
and section 5.2.4), with a confidence figure per volume.

``detect_landmarks(model, volume)`` returns a :class:`Detection`; ``detect_batch`` runs
it over many volumes and keeps going when one fails (that volume gets a row with
confidence 0 and the reason). ``localise=False`` is the registration-only baseline:
the reference patch is placed at the target's image centre, unrotated, and the same
rigid and demons registration runs from there.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable, List, Optional

import numpy as np

from ..errors import CochleaAIError
from ..io import Markups
from ..progress import Progress
from ..volume import Volume
from .align import candidate_rotations, inertia_frame, ncc
from .inputs import check_volume
from .localise import localise
from .patches import as_sitk, normalise, sample_patch
from .register import model_region, register_patch

#: Below this confidence a detection is flagged for review.
CONFIDENCE_FLAG = 0.5


@dataclass
class Detection:
    landmarks: Markups                     # LPS mm, the reference's labels
    confidence: float                      # masked NCC after the rigid stage, in [0, 1]
    flagged: bool
    reason: str = ""
    centre: Optional[np.ndarray] = None
    iterations: int = 0
    converged: bool = True
    ncc_aligned: float = 0.0
    ncc_rigid: float = 0.0
    ncc_final: float = 0.0
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    def point_list(self, name: str) -> Markups:
        """The landmarks as a point list called ``name``, each point described by the
        confidence (what the module and the demo put in the scene)."""
        return Markups(self.landmarks.points, list(self.landmarks.labels), name=name,
                       descriptions=[f"confidence {self.confidence:.2f}"] * len(self.landmarks))

    def row(self, name: str = "") -> dict:
        """One line of the confidence table."""
        out = {"volume": name, "confidence": round(float(self.confidence), 4),
               "flagged": bool(self.flagged), "reason": self.reason,
               "localisation_passes": int(self.iterations), "converged": bool(self.converged),
               "ncc_rigid": round(float(self.ncc_rigid), 4), "ncc_final": round(float(self.ncc_final), 4),
               "seconds": round(float(self.seconds), 2)}
        for label, pt in zip(self.landmarks.labels, self.landmarks.points):
            out[f"{label}_lps"] = [round(float(v), 3) for v in pt]
        return out


def _euler(centre_ref, matrix, translation):
    import SimpleITK as sitk

    tf = sitk.Euler3DTransform()
    tf.SetCenter([float(v) for v in centre_ref])
    tf.SetMatrix([float(v) for v in np.asarray(matrix, float).reshape(-1)], 1e-4)
    tf.SetTranslation([float(v) for v in translation])
    return tf


def choose_alignment(model, image, centre, axes, values, region=None):
    """The rotation (reference axes -> target axes) that best matches the patches.

    Returns ``(matrix, best_ncc, scores)`` with ``matrix`` mapping reference LPS
    directions to target LPS directions. ``region``: :func:`model_region` when the
    caller has it already.
    """
    ref = normalise(model.patch, model.window)
    region = model_region(model) if region is None else region
    scores = []
    for q in candidate_rotations(model.eigenvalues, values):
        t_axes = axes @ q
        patch = sample_patch(image, centre, t_axes, model.patch_size, model.patch_spacing, model.window[0])
        scores.append((ncc(ref, normalise(patch.array, model.window), region), t_axes))
    best, t_axes = max(scores, key=lambda s: s[0])
    return t_axes @ model.axes.T, float(best), [round(s[0], 4) for s in scores]


def detect_landmarks(model, volume: Volume, use_localisation: bool = True, deformable: bool = True,
                     progress=None) -> Detection:
    """Place the model's landmarks in ``volume`` (LPS mm). The volume is not modified.

    Raises :class:`~cochleaai.landmarks.localise.StructureNotFound` (a CochleaAIError)
    when the structure is not found at all; otherwise a poor match is returned with a
    low confidence and ``flagged=True``.
    """
    p = Progress.wrap(progress)
    t0 = time.perf_counter()
    volume = check_volume(volume, "target volume")
    image = as_sitk(volume, "target volume")
    region = model_region(model)
    details = {}
    if use_localisation:
        loc = localise(model, image, volume, progress=p.stage(0.0, 0.4))
        box = loc.probability
        idx = np.argwhere(loc.weights > 0)
        pts = box.index_to_physical(idx[:, ::-1].astype(float))
        centre, axes, values = inertia_frame(pts, loc.weights[loc.weights > 0])
        centre = loc.centre
        p(0.42, "Aligning the axes of inertia")
        matrix, ncc_aligned, scores = choose_alignment(model, image, centre, axes, values, region)
        initial = _euler(model.centre, matrix, centre - model.centre)
        iterations, converged = loc.iterations, loc.converged
        details.update(path=loc.path, peak=loc.peak, candidate_ncc=scores,
                       target_variances_mm2=[float(v) for v in values])
    else:
        centre = volume.center
        initial = _euler(model.image_centre, np.eye(3), centre - model.image_centre)
        iterations, converged, ncc_aligned = 0, True, float("nan")
    reg = register_patch(model, image, initial, deformable=deformable, progress=p.stage(0.5, 0.98),
                         region=region)
    points = reg.map_points(model.landmarks)
    # the rigid match measures the confidence: demons can make almost anything look alike,
    # a rigid motion cannot, so a wrong structure or a wrong turn shows up here
    confidence = float(np.clip(reg.ncc_before, 0.0, 1.0))
    reasons = []
    if not converged:
        confidence *= 0.7
        reasons.append("the localisation did not settle")
    outside = ~volume.contains(points)
    if outside.any():
        confidence = 0.0
        reasons.append("landmarks fell outside the image: " +
                       ", ".join(model.labels[i] for i in np.flatnonzero(outside)))
    if confidence < CONFIDENCE_FLAG and not outside.any():
        reasons.append("the registered patch matches the reference poorly")
    seconds = time.perf_counter() - t0
    p(1.0, f"Landmarks placed (confidence {confidence:.2f})")
    return Detection(landmarks=Markups(points, list(model.labels), name="Detected landmarks"),
                     confidence=confidence, flagged=confidence < CONFIDENCE_FLAG, reason="; ".join(reasons),
                     centre=np.asarray(centre, float), iterations=iterations, converged=converged,
                     ncc_aligned=ncc_aligned, ncc_rigid=reg.ncc_before, ncc_final=reg.ncc_after,
                     seconds=seconds, details=details)


def detect_batch(model, volumes: Iterable, names: Optional[List[str]] = None, progress=None,
                 **kwargs) -> List[tuple]:
    """Run :func:`detect_landmarks` on each volume; returns ``(name, Detection or None, row)``.

    A volume where the structure is not found (or that is not a usable image) gets
    ``None`` and a table row with confidence 0 and the reason, and the batch goes on.
    """
    p = Progress.wrap(progress)
    volumes = list(volumes)
    names = names or [f"volume{i + 1}" for i in range(len(volumes))]
    out = []
    for k, (name, vol) in enumerate(zip(names, volumes)):
        stage = p.stage(k / len(volumes), (k + 1) / len(volumes))
        stage(0.0, f"{name} ({k + 1}/{len(volumes)})")
        try:
            if callable(vol):          # lazy loading: read the file only when its turn comes
                vol = vol()
            det = detect_landmarks(model, vol, progress=stage, **kwargs)
            out.append((name, det, det.row(name)))
        except CochleaAIError as exc:
            out.append((name, None, {"volume": name, "confidence": 0.0, "flagged": True,
                                     "reason": str(exc)}))
    p(1.0, f"{len(volumes)} volume(s) done")
    return out
