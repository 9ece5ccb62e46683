"""Sub-voxel refinement of detected electrode contacts, learned from simulated implants.

The deep spots of :mod:`cochleaai.contacts.detect` sit where the threshold segmentation is
thickest, which blooming, the overlap of neighbouring contacts and the scanner's slice
profile move by about a voxel. The refiner looks at a small box of the image around each
detected contact, sampled in millimetres in the contact's own frame (along the chain, then
towards the scanner's slice axis, then their cross product, so it does not depend on the
voxel grid or on how the head lay in the scanner), and predicts the contact's offset in that
frame with a ridge regression. The box holds only metal-range values (HU from
:data:`METAL_WINDOW_HU`, clipped) and the segmentation, so the bone around the array, which
differs between simulated and real anatomy, carries no weight.

A linear model needs no torch, so the refinement also runs in a fresh Slicer; it is trained
by :func:`cochleaai.contacts.training.train_refiner` (``python -m cochleaai contacts-train``) on simulated pairs from
:mod:`cochleaai.simulation.pairs` and shipped as ``Resources/Models/contact_refiner.npz`` with its card.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
from scipy.ndimage import map_coordinates
from scipy.spatial import cKDTree

from cochleaai.errors import CochleaAIError
from cochleaai.model_files import load_arrays, model_paths, models_folder, save_arrays
from cochleaai.volume import Volume

FORMAT = "cochleaai.contact_refiner/1"
DEFAULT_NAME = "contact_refiner"
#: The box: (2 * HALF + 1)^3 samples STEP_MM apart around each contact.
HALF = 4
STEP_MM = 0.15
#: HU window of the image channel: below it nothing (soft tissue and bone), above it saturated.
METAL_WINDOW_HU = (2000.0, 3071.0)
#: Neighbours on each side in the local quadratic fit of the chain (tangent and bend).
NEIGHBOURS = 3
#: A predicted offset longer than this (mm) is not trusted: the contact keeps its position.
MAX_SHIFT_MM = 0.5
#: ... and a point is not moved further than this (mm) from where it was detected in all.
MAX_MOVE_MM = 1.0
#: Rounds of refinement, each from the box around the point's new position: later rounds
#: mend what the first leaves of a large miss (on simulated pairs that neither the model
#: nor the benchmark uses, seeds 300000 and 400000: p95 0.88 -> 0.61 and 0.39 -> 0.25 mm
#: from one round to three, medians about the same).
ITERATIONS = 3
#: Training: a detection counts as a sample when a true contact is this close.
MATCH_MM = 0.6
#: Ridge penalty of the fit (features are in [0, 1]).
RIDGE = 10.0
TRAIN_HINT = "train one with `python -m cochleaai contacts-train` or reinstall the extension"


def chain_geometry(points: np.ndarray, neighbours: int = NEIGHBOURS):
    """Unit tangents and curvature vectors (1/mm, pointing to the centre of the bend) of an
    ordered chain of points, each from a quadratic in arc length fitted to the point and its
    ``neighbours`` on each side. Chains of fewer than three points get a straight line."""
    pts = np.asarray(points, float)
    n = len(pts)
    tangents, bends = np.zeros((n, 3)), np.zeros((n, 3))
    if n == 0:
        return tangents, bends
    if n < 3:
        t = pts[-1] - pts[0] if n == 2 else np.array([1.0, 0.0, 0.0])
        tangents[:] = t / max(float(np.linalg.norm(t)), 1e-9)
        return tangents, bends
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    for k in range(n):
        lo, hi = max(0, k - neighbours), min(n, k + neighbours + 1)
        t = s[lo:hi] - s[k]
        coef = np.linalg.lstsq(np.stack([np.ones_like(t), t, 0.5 * t * t], 1), pts[lo:hi], rcond=None)[0]
        speed2 = float(coef[1] @ coef[1])
        if speed2 < 1e-12:
            continue
        tangents[k] = coef[1] / np.sqrt(speed2)
        bends[k] = (coef[2] - (coef[2] @ coef[1]) * coef[1] / speed2) / speed2
    return tangents, bends


def contact_frames(tangents: np.ndarray, slice_axis) -> np.ndarray:
    """(N, 3, 3) rotations whose columns are the tangent, the slice axis made perpendicular
    to it, and their cross product. Where the chain runs along the slice axis the volume's
    first axis stands in for it."""
    z = np.asarray(slice_axis, float)
    z = z / np.linalg.norm(z)
    spare = np.array([1.0, 0.0, 0.0]) if abs(z[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    out = np.zeros((len(tangents), 3, 3))
    for k, t in enumerate(tangents):
        ref = z if abs(float(t @ z)) < 0.95 else spare
        e2 = ref - float(t @ ref) * t
        e2 /= max(float(np.linalg.norm(e2)), 1e-9)
        out[k] = np.stack([t, e2, np.cross(t, e2)], axis=1)
    return out


#: Features per contact: two channels on the box, the curvature vector and a constant.
N_FEATURES = 2 * (2 * HALF + 1) ** 3 + 4


def _box_offsets() -> np.ndarray:
    g = np.arange(-HALF, HALF + 1) * STEP_MM
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)


def _channels(volume: Volume, mask: np.ndarray):
    """The image in the metal window, in [0, 1], and the segmentation, as float arrays."""
    lo, hi = METAL_WINDOW_HU
    image = np.clip((np.asarray(volume.numeric_array(), np.float32) - lo) / (hi - lo), 0.0, 1.0)
    return image, np.asarray(mask, np.float32)


def _chain_frames(volume: Volume, points: np.ndarray):
    """``(frames, bends)`` of an ordered chain in ``volume`` (see :func:`contact_frames`)."""
    tangents, bends = chain_geometry(points)
    return contact_frames(tangents, np.asarray(volume.direction, float)[:, 2]), bends


def contact_features(volume: Volume, mask: np.ndarray, points: np.ndarray, frames: np.ndarray,
                     bends: np.ndarray, channels=None) -> np.ndarray:
    """(N, F) features: the windowed image and the segmentation sampled (linearly) on the box
    in each contact's frame, the curvature vector in that frame, and a constant.
    ``channels``: those two arrays (:func:`_channels`) when already made."""
    image, seg = _channels(volume, mask) if channels is None else channels
    n = len(points)
    if n == 0:
        return np.zeros((0, N_FEATURES))
    box = _box_offsets()
    # every sample of every box at once: (N, B, 3) physical points -> (3, N * B) indices
    where = np.asarray(points, float)[:, None, :] + np.einsum("bj,nij->nbi", box, frames)
    kji = volume.physical_to_index(where.reshape(-1, 3))[:, ::-1].T
    a = map_coordinates(image, kji, order=1, mode="nearest").reshape(n, -1)
    m = map_coordinates(seg, kji, order=1, mode="nearest").reshape(n, -1)
    local_bend = np.einsum("ni,nij->nj", np.asarray(bends, float), frames)
    return np.concatenate([a, m, local_bend, np.ones((n, 1))], axis=1).astype(float)


def _flipped(features: np.ndarray) -> np.ndarray:
    """The features of the same contacts seen with the chain numbered the other way: a half
    turn about the frame's second axis (tangent and third axis reversed)."""
    n = 2 * HALF + 1
    f = features.copy()
    for c in range(2):
        block = f[:, c * n ** 3:(c + 1) * n ** 3].reshape(-1, n, n, n)
        f[:, c * n ** 3:(c + 1) * n ** 3] = block[:, ::-1, :, ::-1].reshape(len(f), -1)
    f[:, 2 * n ** 3:2 * n ** 3 + 3] *= [-1.0, 1.0, -1.0]
    return f


class ContactRefiner:
    """A fitted refiner: ``weights`` (F, 3) from features to the offset in the contact frame."""

    def __init__(self, weights: np.ndarray, card: Optional[dict] = None):
        weights = np.asarray(weights, float)
        if weights.shape != (N_FEATURES, 3) or not np.isfinite(weights).all():
            raise CochleaAIError(f"A contact refiner needs finite weights of shape ({N_FEATURES}, 3), "
                                 f"got {weights.shape}; {TRAIN_HINT}.")
        self.weights = weights
        self.card = dict(card or {})

    def offsets(self, volume: Volume, mask: np.ndarray, points: np.ndarray, channels=None) -> np.ndarray:
        """Predicted (N, 3) LPS offsets from ``points`` (an ordered chain) to the contacts."""
        pts = np.asarray(points, float).reshape(-1, 3)
        if len(pts) < 3:
            return np.zeros_like(pts)
        frames, bends = _chain_frames(volume, pts)
        local = contact_features(volume, mask, pts, frames, bends, channels) @ self.weights
        return np.einsum("nij,nj->ni", frames, local)

    def refine(self, volume: Volume, mask: np.ndarray, points: np.ndarray,
               iterations: Optional[int] = None) -> np.ndarray:
        """``points`` moved by their predicted offsets, ``iterations`` times (default
        :data:`ITERATIONS`), each time from the box around where the point now is. A point
        whose predicted step exceeds :data:`MAX_SHIFT_MM`, or whose whole move would exceed
        :data:`MAX_MOVE_MM` (an odd spot, not a contact the model knows), stays where it is."""
        start = np.asarray(points, float).reshape(-1, 3)
        pts = start.copy()
        channels = _channels(volume, mask)
        for _ in range(ITERATIONS if iterations is None else int(iterations)):
            step = self.offsets(volume, mask, pts, channels)
            moved = pts + step
            ok = (np.linalg.norm(step, axis=1) <= MAX_SHIFT_MM) & \
                 (np.linalg.norm(moved - start, axis=1) <= MAX_MOVE_MM)
            pts = np.where(ok[:, None], moved, pts)
        return pts


def fit_refiner(features: np.ndarray, offsets: np.ndarray, ridge: float = RIDGE,
                card: Optional[dict] = None) -> ContactRefiner:
    """Ridge regression of ``offsets`` (N, 3, contact frame) on ``features``, each sample
    also seen with the chain numbered the other way."""
    X = np.asarray(features, float)
    Y = np.asarray(offsets, float)
    if len(X) < 10:
        raise CochleaAIError(f"Only {len(X)} matched contacts to train the refiner on; simulate more pairs.")
    X = np.concatenate([X, _flipped(X)])
    Y = np.concatenate([Y, Y * [-1.0, 1.0, -1.0]])
    W = np.linalg.solve(X.T @ X + float(ridge) * np.eye(X.shape[1]), X.T @ Y)
    return ContactRefiner(W, card)


def training_samples(volume: Volume, mask: np.ndarray, detected: np.ndarray, truth: np.ndarray):
    """``(features, offsets)`` of the detections (an ordered chain) that have a true contact
    within :data:`MATCH_MM`: the offset to it in the contact's frame."""
    pts = np.asarray(detected, float).reshape(-1, 3)
    truth = np.asarray(truth, float).reshape(-1, 3)
    if len(pts) < 3 or len(truth) == 0:
        return np.zeros((0, N_FEATURES)), np.zeros((0, 3))
    frames, bends = _chain_frames(volume, pts)
    dist, idx = cKDTree(truth).query(pts)
    keep = dist < MATCH_MM
    feats = contact_features(volume, mask, pts[keep], frames[keep], bends[keep])
    local = np.einsum("nji,nj->ni", frames[keep], truth[idx[keep]] - pts[keep])
    return feats, local


def default_model_path() -> Path:
    return model_paths(models_folder() / DEFAULT_NAME, ".npz")[0]


def save_refiner(refiner: ContactRefiner, path) -> tuple:
    card = dict(refiner.card, format=FORMAT, box={"half": HALF, "step_mm": STEP_MM},
                metal_window_hu=list(METAL_WINDOW_HU), max_shift_mm=MAX_SHIFT_MM)
    return save_arrays({"weights": refiner.weights}, path, card)


def load_refiner(path=None) -> ContactRefiner:
    """The refiner at ``path`` (default: the shipped one), checked against its card."""
    arrays, card = load_arrays(default_model_path() if path is None else path, FORMAT, "contact refiner",
                               TRAIN_HINT)
    box = card.get("box", {})
    if box.get("half") != HALF or abs(float(box.get("step_mm", -1)) - STEP_MM) > 1e-9 \
            or [float(v) for v in card.get("metal_window_hu", [])] != list(METAL_WINDOW_HU):
        raise CochleaAIError(f"The contact refiner '{card.get('name')}' was made for another box or window; "
                             f"{TRAIN_HINT}.")
    if "weights" not in arrays:
        raise CochleaAIError(f"The contact refiner '{card.get('name')}' holds no weights; {TRAIN_HINT}.")
    return ContactRefiner(arrays["weights"], card)


@lru_cache(maxsize=1)
def _shipped() -> Optional[ContactRefiner]:
    try:
        return load_refiner()
    except CochleaAIError:
        return None


def shipped_refiner() -> Optional[ContactRefiner]:
    """The shipped refiner, or None when it is missing or damaged (the contacts then keep
    the geometric correction of :func:`cochleaai.contacts.detect.out_of_the_bend`)."""
    return _shipped()
