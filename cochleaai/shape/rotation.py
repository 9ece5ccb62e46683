"""Rotation vectors (axis * angle): matrix and closed-form derivatives."""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def skew(v) -> np.ndarray:
    """Cross-product matrix: ``skew(v) @ u == cross(v, u)``."""
    x, y, z = np.asarray(v, dtype=float)
    return np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])


def rotation_matrix(r) -> np.ndarray:
    """Rodrigues' formula."""
    r = np.asarray(r, dtype=float)
    angle = np.linalg.norm(r)
    if angle < 1e-12:
        return np.eye(3) + skew(r)
    k = skew(r / angle)
    return np.eye(3) + np.sin(angle) * k + (1.0 - np.cos(angle)) * (k @ k)


def rotation_vector(R) -> np.ndarray:
    """Inverse of :func:`rotation_matrix` (angle in [0, pi])."""
    return Rotation.from_matrix(np.asarray(R, dtype=float)).as_rotvec()


def rotation_matrix_derivatives(r) -> np.ndarray:
    """``dR/dr_k`` for k = 0, 1, 2 as a (3, 3, 3) array indexed [k].

    Closed form of Gallego & Yezzi, "A compact formula for the derivative of a 3-D
    rotation in exponential coordinates", J. Math. Imaging Vis. 2015:
    ``dR/dr_k = (r_k [r]x + [r x (I - R) e_k]x) R / |r|^2``, and ``[e_k]x`` at r = 0.
    """
    r = np.asarray(r, dtype=float)
    n2 = float(r @ r)
    eye = np.eye(3)
    if n2 < 1e-16:
        return np.stack([skew(eye[k]) for k in range(3)])
    R = rotation_matrix(r)
    out = []
    for k in range(3):
        m = r[k] * skew(r) + skew(np.cross(r, (eye - R) @ eye[k]))
        out.append(m @ R / n2)
    return np.stack(out)
