"""Orientation search for starts that do not fix the cochlea's orientation.

One centre point fixes no orientation, and the round window and apex leave the spin about
the line through them free. Candidate poses of the population-mean shape are ranked by
the capsule contrast (:func:`.quality.capsule_contrast`: the cochlea is a dark spiral
inside the densest bone of the body), which needs no intensity model, so it holds for
fluid- and air-filled labyrinths and for grey values that are not HU.

Hundreds of poses are scored, so the mean shape's signed distance is tabulated once on a
grid in the model frame and interpolated at the image points moved into that frame.
"""
from __future__ import annotations

import math
from typing import Callable, List

import numpy as np
from scipy.ndimage import map_coordinates

from ..shape import ShapeFunction
from ..shape.rotation import rotation_matrix, rotation_vector
from .quality import CAPSULE_SHELL_MM

#: Grid spacing (mm) of the tabulated signed distance, and the margin (mm) around the shape.
TABLE_SPACING_MM = 0.25
TABLE_MARGIN_MM = 1.2
#: Modiolar-axis directions (a Fibonacci sphere) and spins about it of the coarse search
#: from one point: about 25 and 30 degrees apart.
AXIS_DIRECTIONS = 64
SPINS = 12
#: Spins about the round window - apex line (15 degrees apart).
LINE_SPINS = 24
#: The best few coarse poses at least this far apart (rad) are refined.
REFINE_KEEP = 3
DISTINCT_RAD = 0.35
REFINE_STEPS_RAD = (0.15, 0.07, 0.035)


class ModelFrameTable:
    """Signed distance of one deformable shape, tabulated in its model frame."""

    def __init__(self, theta, spacing: float = TABLE_SPACING_MM, margin: float = TABLE_MARGIN_MM):
        from ..shape.mesh import surface_arrays
        from ..shape.params import with_pose

        zero = with_pose(theta, np.zeros(6))
        v, _ = surface_arrays(zero, 0.4)
        self.lo = v.min(0) - margin
        n = np.ceil((v.max(0) + margin - self.lo) / spacing).astype(int) + 1
        self.spacing = spacing
        axes = [self.lo[i] + spacing * np.arange(n[i]) for i in range(3)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        self.values = ShapeFunction()(grid, zero).reshape(tuple(n))
        self.outside = float(self.values.min())

    def __call__(self, points, R, t) -> np.ndarray:
        """Signed distance at image points for the pose ``x = R y + t``."""
        local = (np.asarray(points) - t) @ R
        idx = ((local - self.lo) / self.spacing).T
        return map_coordinates(self.values, idx, order=1, mode="constant", cval=self.outside)


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors on the sphere."""
    k = np.arange(n) + 0.5
    z = 1.0 - 2.0 * k / n
    phi = k * math.pi * (3.0 - math.sqrt(5.0))
    r = np.sqrt(1.0 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], -1)


def _axis_to(v: np.ndarray) -> np.ndarray:
    """A rotation taking the model's +z onto unit vector ``v``."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(z, v)
    s, c = np.linalg.norm(axis), float(np.dot(z, v))
    if s < 1e-9:
        return np.eye(3) if c > 0 else rotation_matrix([math.pi, 0.0, 0.0])
    return rotation_matrix(axis / s * math.atan2(s, c))


def _spin(axis: np.ndarray, angle: float) -> np.ndarray:
    return rotation_matrix(np.asarray(axis, float) / np.linalg.norm(axis) * angle)


def contrast_t(values, S, shell_mm: float = CAPSULE_SHELL_MM) -> float:
    """Capsule contrast in units of its standard error (Welch's t): the shell must be
    bright and the inside dark all round, not just on average. On the fluid-filled real
    specimens the plain contrast ranked about 1 % of wrong orientations above the true
    one, this statistic about 0.1-0.5 %."""
    inside, shell = values[S >= 0], values[(S < 0) & (S > -shell_mm)]
    if inside.size < 5 or shell.size < 5:
        return -np.inf
    return float((shell.mean() - inside.mean()) / np.sqrt(inside.var() / inside.size + shell.var() / shell.size + 1e-12))


def search(values, points, theta, rotations: List[np.ndarray], place: Callable,
           keep: int = REFINE_KEEP) -> list:
    """The best poses of the shape ``theta`` among ``rotations``, each refined.

    ``place(R)`` gives the translation of a rotation (from the user's points). Returns up
    to ``keep`` thetas with distinct poses, best first.
    """
    table = ModelFrameTable(theta)
    values = np.asarray(values, float)

    def score(R):
        return contrast_t(values, table(points, R, place(R)))

    coarse = sorted(((score(R), i) for i, R in enumerate(rotations)), reverse=True)
    kept = []
    for s, i in coarse:
        R = rotations[i]
        if all(np.linalg.norm(rotation_vector(R.T @ K)) > DISTINCT_RAD for _, K in kept):
            kept.append((s, R))
        if len(kept) == keep:
            break
    refined = []
    for s, R in kept:
        for step in REFINE_STEPS_RAD:
            # the best of small turns about the image axes, kept while it improves
            trials = [(score(_spin(e, d) @ R), _spin(e, d) @ R) for e in np.eye(3) for d in (-step, step)]
            top = max(trials, key=lambda x: x[0])
            if top[0] > s:
                s, R = top
        out = np.asarray(theta, float).copy()
        out[4:7], out[7:10] = rotation_vector(R), place(R)
        refined.append((s, out))
    return [t for _, t in sorted(refined, key=lambda x: -x[0])]


def from_centre(values, points, theta, centre, model_centre) -> list:
    """Orientation from one point: the modiolar axis over the sphere, the spin about it."""
    rotations = [_axis_to(v) @ _spin([0, 0, 1], a) for v in fibonacci_directions(AXIS_DIRECTIONS)
                 for a in np.arange(SPINS) * 2 * math.pi / SPINS]
    return search(values, points, theta, rotations, lambda R: centre - R @ model_centre)


def spins_about(values, points, theta, R0, line, anchor_image, anchor_model) -> list:
    """Orientation from the round window and apex: ``R0`` maps the model's round window -
    apex line onto the image's (unit vector ``line``); the spin about it is searched."""
    rotations = [_spin(line, a) @ R0 for a in np.arange(LINE_SPINS) * 2 * math.pi / LINE_SPINS]
    return search(values, points, theta, rotations, lambda R: anchor_image - R @ anchor_model)
