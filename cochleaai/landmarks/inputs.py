"""Checks of what a user hands to training and detection (clear errors, inputs untouched)."""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from cochleaai.errors import CochleaAIError
from cochleaai.markups import Markups
from cochleaai.volume import Volume


def check_volume(volume, what: str) -> Volume:
    if not isinstance(volume, Volume):
        raise CochleaAIError(f"The {what} must be a 3D image (a cochleaai Volume), "
                             f"got {type(volume).__name__}.")
    volume.checked_array(what, min_per_axis=4)
    return volume


def check_mask(mask, volume: Volume, what: str) -> np.ndarray:
    """A bool array on ``volume``'s grid (a mask Volume on another grid is resampled)."""
    if isinstance(mask, Volume):
        arr = mask.array if mask.same_geometry(volume) else \
            mask.resample_like(volume, "nearest").array
    else:
        arr = np.asarray(mask)
    if arr.shape != volume.shape:
        raise CochleaAIError(f"The {what} has shape {arr.shape} but its image has {volume.shape}; "
                             "use a segmentation of that same image.")
    if arr.dtype.kind not in "biuf":
        raise CochleaAIError(f"The {what} has voxels of type {arr.dtype}; give a label map or a bool mask.")
    out = np.asarray(arr > 0.5 if arr.dtype.kind == "f" else arr != 0)
    if out.sum() < 8:
        raise CochleaAIError(f"The {what} is empty (fewer than 8 voxels); segment the structure of "
                             "interest (e.g. the cochlea) in that image first.")
    return out


def choose_segment(segments, name, source: str, hint: str) -> np.ndarray:
    """The mask of the segment called ``name`` (any case) among ``(Segment, mask)`` pairs, or
    of the only segment when no name is given. ``source`` starts the error sentences (what
    the segments come from), ``hint`` tells how to pick another name."""
    if not segments:
        raise CochleaAIError(f"{source} has no segment; segment the structure of interest first.")
    if name:
        for seg, mask in segments:
            if seg.name.lower() == name.lower():
                return mask
    elif len(segments) == 1:              # no name given: the only segment
        return segments[0][1]
    raise CochleaAIError(f"{source} has no segment named {name!r}; its segments are "
                         f"{', '.join(s.name for s, _ in segments)}. {hint}")


def check_landmarks(landmarks, volume: Volume, labels=None):
    """(points (N, 3) LPS, labels) after checking there is at least one and all lie in the image."""
    if isinstance(landmarks, Markups):
        points, labels = landmarks.points.copy(), list(landmarks.labels)
    else:
        try:
            points = np.array(landmarks, dtype=float).reshape(-1, 3)
        except (TypeError, ValueError):
            raise CochleaAIError("The reference landmarks must be (x, y, z) LPS points.") from None
        labels = [f"L{i + 1}" for i in range(len(points))] if labels is None else [str(v) for v in labels]
    if len(points) == 0:
        raise CochleaAIError("The reference has no landmarks; place at least one point on the "
                             "reference volume.")
    if len(labels) != len(points):
        raise CochleaAIError(f"{len(labels)} labels for {len(points)} landmarks; give one label per point.")
    if not np.all(np.isfinite(points)):
        raise CochleaAIError("The reference landmarks contain NaN or infinite coordinates.")
    inside = volume.contains(points)
    if not np.all(inside):
        bad = [labels[i] for i in np.flatnonzero(~inside)]
        raise CochleaAIError(f"Reference landmarks {bad} lie outside the reference image; place them "
                             "on the reference volume (check the coordinate system: LPS vs RAS).")
    return points, labels


#: A reference landmark farther than this from every voxel of the structure mask means that
#: mask and landmarks do not belong together (another image, another side, a shifted mask).
MAX_LANDMARK_DISTANCE_MM = 5.0


def check_landmarks_near(points, labels, volume: Volume, mask: np.ndarray, patch_mm: float) -> None:
    """Refuse reference landmarks that the registration patch cannot carry: farther than
    :data:`MAX_LANDMARK_DISTANCE_MM` from the structure mask, or outside the patch of
    ``patch_mm`` around the structure's centre."""
    dist = ndimage.distance_transform_edt(~mask, sampling=volume.spacing[::-1])
    idx = np.rint(volume.physical_to_index(np.asarray(points, float))).astype(int)
    idx = np.clip(idx, 0, np.asarray(volume.size) - 1)
    far = [labels[i] for i, (x, y, z) in enumerate(idx) if dist[z, y, x] > MAX_LANDMARK_DISTANCE_MM]
    centre = volume.index_to_physical(np.argwhere(mask)[:, ::-1].mean(0))
    outside = [labels[i] for i, p in enumerate(points) if np.linalg.norm(p - centre) > patch_mm * 0.5 * np.sqrt(3)]
    if far or outside:
        raise CochleaAIError(
            "The reference landmarks and the structure mask do not agree: "
            + (f"{far} lie more than {MAX_LANDMARK_DISTANCE_MM:g} mm from the structure" if far else "")
            + ("; " if far and outside else "")
            + (f"{outside} lie outside the {patch_mm:g} mm registration patch around it" if outside else "")
            + ". Check that mask and landmarks belong to this reference image (and that the points are LPS).")
