"""Orientation of a structure from its axes of inertia, and the choice among the
rotations that the eigenvector signs leave open (thesis section 5.2.3).

The second moments of a weighted point cloud (a mask, or the network's probability
map) give three orthogonal axes. Each eigenvector is only defined up to its sign, and
two axes with nearly equal moments may swap; so the target frame is tried under every
proper rotation that maps the axis set onto itself (the 4 sign flips with determinant
+1, or all 24 axis permutations with signs when two moments are close), and the one
whose resampled target patch best matches the reference patch (normalised
cross-correlation) is kept.
"""
from __future__ import annotations

import itertools
from typing import Optional

import numpy as np

from cochleaai.errors import CochleaAIError

#: Two moments closer than this ratio count as "nearly equal": the axes may swap.
DEGENERATE_RATIO = 1.25


def inertia_frame(points: np.ndarray, weights: np.ndarray):
    """Weighted centre, axes (columns, largest spread first, det +1) and variances (mm^2)."""
    w = np.asarray(weights, dtype=float).reshape(-1)
    pts = np.asarray(points, dtype=float).reshape(-1, 3)
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        raise CochleaAIError("The structure is empty: there is nothing to compute its axes from.")
    centre = (pts * w[:, None]).sum(0) / total
    d = pts - centre
    cov = (d * w[:, None]).T @ d / total
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    # a deterministic sign (largest component positive), then a right-handed frame
    for k in range(3):
        if vectors[np.argmax(np.abs(vectors[:, k])), k] < 0:
            vectors[:, k] *= -1
    if np.linalg.det(vectors) < 0:
        vectors[:, 2] *= -1
    return centre, vectors, values


def mask_frame(volume, mask: np.ndarray):
    """:func:`inertia_frame` of the voxels of a bool mask on ``volume``'s grid."""
    idx = np.argwhere(mask)
    if idx.size == 0:
        raise CochleaAIError("The structure mask is empty; segment the structure of interest first.")
    pts = volume.index_to_physical(idx[:, ::-1].astype(float))
    return inertia_frame(pts, np.ones(len(pts)))


def sign_flips() -> list:
    """The four proper (det +1) diagonal sign matrices."""
    return [np.diag(s).astype(float) for s in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1))]


def cube_rotations() -> list:
    """All 24 proper rotations that permute the coordinate axes (with signs)."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            m = np.zeros((3, 3))
            for row, col in enumerate(perm):
                m[row, col] = signs[row]
            if np.linalg.det(m) > 0:
                out.append(m)
    return out


def candidate_rotations(ref_values, target_values, ratio: float = DEGENERATE_RATIO) -> list:
    """Sign flips, or all axis permutations when either structure has two close moments."""
    def near(v):
        v = np.sort(np.asarray(v, float))[::-1]
        return v[0] < ratio * v[1] or v[1] < ratio * v[2]
    return cube_rotations() if near(ref_values) or near(target_values) else sign_flips()


def ncc(a: np.ndarray, b: np.ndarray, mask: Optional[np.ndarray] = None) -> float:
    """Normalised cross-correlation of two arrays (optionally within a mask), in [-1, 1]."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if mask is not None:
        a, b = a[mask], b[mask]
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else 0.0
