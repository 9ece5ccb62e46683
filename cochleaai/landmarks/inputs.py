"""Checks of what a user hands to training and detection (clear errors, inputs untouched)."""
from __future__ import annotations

import numpy as np

from ..errors import CochleaAIError
from ..io import Markups
from ..volume import Volume


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
