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
import SimpleITK as sitk

from cochleaai.errors import CochleaAIError
from cochleaai.landmarks.align import candidate_rotations, cube_rotations, inertia_frame
from cochleaai.landmarks.inputs import check_volume
from cochleaai.landmarks.localise import localise
from cochleaai.landmarks.model_io import check_side
from cochleaai.landmarks.patches import as_sitk, hu_mapping, intensity_anchors, normalise
from cochleaai.landmarks.register import (coarse_template, model_region, normalised_target, register_patch,
                                          search_translation)
from cochleaai.markups import Markups
from cochleaai.progress import Progress
from cochleaai.volume import Volume

#: Below this confidence a detection is flagged for review. On the real development CT
#: (leave one reference out, bench landmarks-real) every wrong pose the rigid stage settled
#: on scored at most 0.43, and every success at least 0.48 (bone-window patches correlate
#: less than phantoms).
CONFIDENCE_FLAG = 0.45


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
    side: Optional[str] = None             # the target's ear as registered (None: unknown)

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
               "side": self.side or "", "mirrored": bool(self.details.get("mirrored", False)),
               "references": int(self.details.get("references", 1)),
               "spread_mm": round(float(self.details.get("spread_mm", 0.0)), 3),
               "seconds": round(float(self.seconds), 2)}
        for label, pt in zip(self.landmarks.labels, self.landmarks.points):
            out[f"{label}_lps"] = [round(float(v), 3) for v in pt]
        return out


def _euler(centre_ref, matrix, translation):
    tf = sitk.Euler3DTransform()
    tf.SetCenter([float(v) for v in centre_ref])
    tf.SetMatrix([float(v) for v in np.asarray(matrix, float).reshape(-1)], 1e-4)
    tf.SetTranslation([float(v) for v in translation])
    return tf


def pose_prior(model) -> np.ndarray:
    """The rotation (reference -> target directions) of a target scanned in the reference's
    patient orientation: the identity, or for the mirrored reference the turn that brings
    its mirror plane onto the body's midsagittal plane (LPS x), so that the pair is the
    left-right mirror image of the reference."""
    if not model.mirror:
        return np.eye(3)
    a = np.asarray(model.axes, float)[:, 0]
    return np.diag([-1.0, 1.0, 1.0]) @ (np.eye(3) - 2.0 * np.outer(a, a))


#: Rigid starts per reference: the pose prior and this many more candidate rotations, best
#: patch match (after the translation search) first.
ALIGNMENT_STARTS = 2
#: When the best rigid match stays below this, or carries a landmark out of the image, up to
#: RETRY_STARTS more starts get a rigid registration: the next candidates of the ranking, then
#: every candidate as the axes of inertia place it, without the translation search; and where
#: the candidates were the sign flips only, the CUBE_STARTS best of every quarter turn of the
#: axes, ranked by the search. A structure seen in part (a cropped field of view, a thin canal
#: the network misses) can rank the right turn far down the list, a map that takes in more
#: than the structure can order the axes wrongly, and the search, matching the whole patch,
#: can move a right turn to a wrong place.
RETRY_BELOW = 0.55
RETRY_STARTS = 8
CUBE_STARTS = 4
#: Of the retry's starts, this many (the best after a coarse pass) get the full registration.
RETRY_FULL = 3


def ranked_starts(model, image, centre, axes, values, turns=None) -> list:
    """Every start pose for the rigid registration, best first: the pose prior, then each
    candidate rotation of the axes of inertia, each moved by the translation search and
    ranked by that search's correlation (the pose prior always first). ``turns``: these
    rotations of the axes instead (named quarter turns), without the pose prior.

    Returns ``[(score, searched, unsearched, name)]``: Euler transforms reference -> target
    with and without the search."""
    fixed = model.patch_volume(normalise(model.patch, model.window))
    template = coarse_template(fixed)
    moving = normalised_target(model, image)
    if turns is None:
        rotations = [("pose prior", pose_prior(model))] + [
            (f"inertia alignment {k + 1}", axes @ q @ model.axes.T)
            for k, q in enumerate(candidate_rotations(model.eigenvalues, values))]
    else:
        rotations = [(f"quarter turn {k + 1}", axes @ q @ model.axes.T) for k, q in enumerate(turns)]
    out = []
    for name, matrix in rotations:
        start = _euler(model.centre, matrix, centre - model.centre)
        pose, score = search_translation(fixed, moving, start, template=template)
        out.append((score, pose, start, name))
    if turns is not None:
        return sorted(out, key=lambda s: -s[0])
    return out[:1] + sorted(out[1:], key=lambda s: -s[0])


@dataclass
class _Trial:
    """One reference (or its mirror image) registered to the target."""
    model: object
    region: np.ndarray
    ranked: list                # ranked_starts, empty for the baseline
    reg: object                 # the best RegistrationResult so far
    ncc_aligned: float
    scores: list


def _first_starts(ranked):
    return [(pose, name) for _, pose, _, name in ranked[:1 + ALIGNMENT_STARTS]]


def _same_pose(a, b, tol_mm: float = 0.3) -> bool:
    return (np.allclose(a.GetMatrix(), b.GetMatrix(), atol=1e-3)
            and np.linalg.norm(np.subtract(a.GetTranslation(), b.GetTranslation())) < tol_mm)


def _retry_starts(ranked, tried, n: int, search_only: bool = False):
    """The next ``n`` starts: the ranking's searched poses, then (unless ``search_only``) its
    unsearched ones, leaving out the poses in ``tried``."""
    more = [(pose, name) for _, pose, _, name in ranked]
    if not search_only:
        more += [(start, name + " without the translation search") for _, _, start, name in ranked]
    return [s for s in more if not any(_same_pose(s[0], t) for t in tried)][:n]


def _keeps_landmarks_inside(model, volume: Volume):
    """The admissibility test of a rigid pose: every reference landmark lands in the target."""
    def test(pose) -> bool:
        points = np.array([pose.TransformPoint([float(v) for v in x]) for x in model.landmarks])
        return bool(volume.contains(points).all())
    return test


def _rank(reg):
    """How registrations compare: an admissible pose first, then the rigid match."""
    return (bool(reg.admissible), float(reg.ncc_before))


def _rigid(model, image, starts, region, progress, volume=None, screen: int = 0):
    """The best rigid registration from ``[(pose, name)]``; ``start_name`` says which won.
    With ``volume`` (the target) a pose that keeps every landmark inside it wins over one that
    does not."""
    reg = register_patch(model, image, [pose for pose, _ in starts], deformable=False, progress=progress,
                         region=region,
                         admissible=_keeps_landmarks_inside(model, volume) if volume is not None else None,
                         screen=screen)
    reg.start_name = starts[reg.start][1]
    return reg


def _target_image(model, volume: Volume):
    """The target as a SimpleITK image on the reference's grey scale (HU stays HU)."""
    array = volume.numeric_array("target volume")
    gain, offset = hu_mapping(intensity_anchors(array), model.anchors)
    if gain == 1.0 and offset == 0.0:
        return as_sitk(volume, "target volume"), (gain, offset)
    scaled = array.astype(np.float32) * np.float32(gain) + np.float32(offset)
    return volume.copy(scaled).to_sitk(), (gain, offset)


def _candidates(model, side):
    """The reference, its mirror image, or both (the ear is unknown: keep the better match)."""
    side = check_side(side, "target side")
    if side is not None and model.side is not None:
        return [model.for_side(side)]
    return [model, model.mirrored()]


def detect_landmarks(model, volume: Volume, use_localisation: bool = True, deformable: bool = True,
                     progress=None, side: Optional[str] = None) -> Detection:
    """Place the model's landmarks in ``volume`` (LPS mm). The volume is not modified.

    ``side``: the target's ear ("left"/"right"); with the reference's side known, a target
    of the other ear is registered with the mirrored reference. Otherwise (None, "auto")
    both are registered and the better rigid match is kept.

    Raises :class:`~cochleaai.landmarks.localise.StructureNotFound` (a CochleaAIError)
    when the structure is not found at all; otherwise a poor match is returned with a
    low confidence and ``flagged=True``.
    """
    p = Progress.wrap(progress)
    t0 = time.perf_counter()
    volume = check_volume(volume, "target volume")
    image, (gain, offset) = _target_image(model, volume)
    details = {"grey_value_gain": gain, "grey_value_offset": offset} if gain != 1.0 or offset != 0.0 else {}
    candidates = _candidates(model, side)
    if use_localisation:
        loc = localise(model, image, volume, progress=p.stage(0.0, 0.35))
        box = loc.probability
        idx = np.argwhere(loc.weights > 0)
        pts = box.index_to_physical(idx[:, ::-1].astype(float))
        _, axes, values = inertia_frame(pts, loc.weights[loc.weights > 0])
        centre = loc.centre
        iterations, converged = loc.iterations, loc.converged
        details.update(path=loc.path, peak=loc.peak, target_variances_mm2=[float(v) for v in values])
    else:
        centre = volume.center
        iterations, converged = 0, True
    reference_region = model_region(model)
    tried = []
    for k, cand in enumerate(candidates):
        stage = p.stage(0.4 + 0.4 * k / len(candidates), 0.4 + 0.4 * (k + 1) / len(candidates))
        # the mirror's region is the reference's flipped like its patch: no second distance map
        region = np.ascontiguousarray(reference_region[:, :, ::-1]) if cand.mirror != model.mirror \
            else reference_region
        if use_localisation:
            stage(0.0, "Aligning the axes of inertia" + (" (mirrored reference)" if cand.mirror else ""))
            ranked = ranked_starts(cand, image, centre, axes, values)
            reg = _rigid(cand, image, _first_starts(ranked), region, stage.stage(0.1, 1.0), volume)
            tried.append(_Trial(cand, region, ranked, reg, float(max(r[0] for r in ranked)),
                                [round(r[0], 4) for r in ranked]))
        else:
            initial = _euler(cand.image_centre, pose_prior(cand), centre - cand.image_centre)
            reg = _rigid(cand, image, [(initial, "image centres")], region, stage.stage(0.1, 1.0), volume)
            tried.append(_Trial(cand, region, [], reg, float("nan"), []))
    leader = max((t.reg for t in tried), key=_rank)
    if leader.ncc_before < RETRY_BELOW or not leader.admissible:
        for k, t in enumerate(tried):
            if not t.ranked:
                continue
            # the moments can mislead (a map that takes in more than the structure is
            # elongated the wrong way): rank every quarter turn, not only the sign flips
            done = [pose for pose, _ in _first_starts(t.ranked)]
            starts = _retry_starts(t.ranked, done, RETRY_STARTS)
            ranked_turns = candidate_rotations(t.model.eigenvalues, values)
            others = [q for q in cube_rotations() if not any(np.array_equal(q, r) for r in ranked_turns)]
            if others:
                cube = ranked_starts(t.model, image, centre, axes, values, turns=others)
                starts += _retry_starts(cube, done + [pose for pose, _ in starts], CUBE_STARTS, search_only=True)
            if starts:
                stage = p.stage(0.8 + 0.1 * k / len(tried), 0.8 + 0.1 * (k + 1) / len(tried))
                stage(0.0, "A poor match: registering from more starts")
                again = _rigid(t.model, image, starts, t.region, stage, volume, screen=RETRY_FULL)
                if _rank(again) > _rank(t.reg):
                    t.reg = again
    for t in tried:
        details.setdefault("rigid_ncc_by_side", {})["mirrored" if t.model.mirror else "as reference"] = \
            round(float(t.reg.ncc_before), 4)
    t = max(tried, key=lambda t: _rank(t.reg))
    cand, reg, ncc_aligned, scores, region = t.model, t.reg, t.ncc_aligned, t.scores, t.region
    details["rigid_start"] = reg.start_name
    if deformable:      # demons once, from the best rigid pose
        reg = register_patch(cand, image, reg.rigid, deformable=True, progress=p.stage(0.9, 0.98), region=region,
                             rigid=False)
    details["candidate_ncc"] = scores
    details["mirrored"] = bool(cand.mirror)
    points = reg.map_points(cand.landmarks)
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
                     seconds=seconds, details=details, side=cand.side)


def detect_batch(model, volumes: Iterable, names: Optional[List[str]] = None, progress=None,
                 **kwargs) -> List[tuple]:
    """Run :func:`detect_landmarks` on each volume; returns ``(name, Detection or None, row)``.
    ``model`` may be a list of models (several references): :func:`detect_with_references`.

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
            det = detect_with_references(model, vol, progress=stage, **kwargs)
            out.append((name, det, det.row(name)))
        except CochleaAIError as exc:
            out.append((name, None, {"volume": name, "confidence": 0.0, "flagged": True,
                                     "reason": str(exc)}))
    p(1.0, f"{len(volumes)} volume(s) done")
    return out


#: A fused detection is flagged when the references disagree by more than this (mm): the
#: median distance of their points from the fused point, for the worst landmark.
SPREAD_FLAG_MM = 1.0


def fuse_detections(detections: List[Detection]) -> Detection:
    """Several references' detections of one volume as one: the coordinate-wise median of
    each landmark, and the spread (the median distance of the references' points from it,
    worst landmark) as the confidence measure: flagged above :data:`SPREAD_FLAG_MM`."""
    if not detections:
        raise CochleaAIError("No detection to fuse.")
    labels = list(detections[0].landmarks.labels)
    for det in detections[1:]:
        if list(det.landmarks.labels) != labels:
            raise CochleaAIError("The references do not have the same landmarks "
                                 f"({labels} and {list(det.landmarks.labels)}); fuse models of one kind.")
    stack = np.stack([d.landmarks.points for d in detections])        # (k, n, 3)
    fused = np.median(stack, axis=0)
    spread = float(np.max(np.median(np.linalg.norm(stack - fused, axis=2), axis=0)))
    confidence = float(np.median([d.confidence for d in detections]))
    reasons = []
    if len(detections) > 1 and spread > SPREAD_FLAG_MM:
        reasons.append(f"the references disagree by {spread:.1f} mm")
    if confidence < CONFIDENCE_FLAG:
        reasons.append("the registered patches match the references poorly")
    return Detection(landmarks=Markups(fused, labels, name="Detected landmarks"), confidence=confidence,
                     flagged=bool(reasons), reason="; ".join(reasons),
                     centre=np.median([d.centre for d in detections], axis=0),
                     iterations=max(d.iterations for d in detections),
                     converged=all(d.converged for d in detections),
                     ncc_aligned=float(np.median([d.ncc_aligned for d in detections])),
                     ncc_rigid=float(np.median([d.ncc_rigid for d in detections])),
                     ncc_final=float(np.median([d.ncc_final for d in detections])),
                     seconds=float(sum(d.seconds for d in detections)),
                     details={"references": len(detections), "spread_mm": spread,
                              "mirrored": bool(np.median([d.details.get("mirrored", False) for d in detections]) > 0.5),
                              "per_reference_confidence": [round(d.confidence, 4) for d in detections]},
                     side=detections[0].side)


def detect_with_references(models, volume: Volume, progress=None, **kwargs) -> Detection:
    """:func:`detect_landmarks` with each model (one per reference), then
    :func:`fuse_detections`. A single model gives its own detection."""
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    if not models:
        raise CochleaAIError("No model was given.")
    p = Progress.wrap(progress)
    dets, errors = [], []
    for k, model in enumerate(models):
        try:
            dets.append(detect_landmarks(model, volume, progress=p.stage(k / len(models), (k + 1) / len(models)),
                                         **kwargs))
        except CochleaAIError as exc:       # one reference not finding it: the others may
            errors.append(str(exc))
    if not dets:
        raise CochleaAIError(errors[0])
    if len(dets) == 1 and not errors:
        return dets[0]
    fused = fuse_detections(dets)
    if errors:
        fused.details["failed_references"] = errors
    p(1.0, f"Landmarks placed with {len(dets)} reference(s)")
    return fused
