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

from cochleaai.segmentation.quality import CAPSULE_SHELL_MM
from cochleaai.shape import ShapeFunction
from cochleaai.shape.mesh import surface_arrays
from cochleaai.shape.params import with_pose
from cochleaai.shape.rotation import rotation_matrix, rotation_vector

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
#: Shifts (mm) along the modiolar axis tried with every rotation (the turns repeat about
#: every 1.5 mm up the axis).
AXIAL_SHIFTS_MM = (-0.75, 0.0, 0.75)


class ModelFrameTable:
    """Signed distance of one deformable shape, tabulated in its model frame."""

    def __init__(self, theta, spacing: float = TABLE_SPACING_MM, margin: float = TABLE_MARGIN_MM):
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
           keep: int = REFINE_KEEP, across_mm=(0.0,)) -> list:
    """The best poses of the shape ``theta`` among ``rotations``, each refined.

    ``place(R)`` gives the translation of a rotation (from the user's points); each
    rotation is also tried shifted along its modiolar axis by ``AXIAL_SHIFTS_MM``, because
    the user's points and the model's landmarks need not sit at the same height, and a
    spiral half a turn too high or low has lumen in its shell. Returns up to ``keep``
    thetas with distinct orientations, best first.
    """
    table = ModelFrameTable(theta)
    values = np.asarray(values, float)

    def score(R, dz):
        return contrast_t(values, table(points, R, place(R) + R @ dz))

    shifts = [np.array([u, v, w]) for u in across_mm for v in across_mm for w in AXIAL_SHIFTS_MM]
    coarse = sorted(((score(R, dz), i, k) for i, R in enumerate(rotations) for k, dz in enumerate(shifts)),
                    key=lambda x: -x[0])
    kept = []
    for s, i, k in coarse:
        R, dz = rotations[i], shifts[k]
        if all(np.linalg.norm(rotation_vector(R.T @ K)) > DISTINCT_RAD for _, K, _ in kept):
            kept.append((s, R, dz))
        if len(kept) == keep:
            break
    # refined shifts: along the axis, and across it too when the search went across
    moves = np.eye(3) if len(across_mm) > 1 else np.eye(3)[2:]
    refined = []
    for s, R, dz in kept:
        for step in REFINE_STEPS_RAD:
            # the best of small turns about the image axes and shifts along the axis, kept
            # while it improves
            trials = [(score(_spin(e, d) @ R, dz), _spin(e, d) @ R, dz) for e in np.eye(3) for d in (-step, step)]
            trials += [(score(R, dz + h * e), R, dz + h * e) for e in moves for h in (-step * 2, step * 2)]
            top = max(trials, key=lambda x: x[0])
            if top[0] > s:
                s, R, dz = top
        out = np.asarray(theta, float).copy()
        out[4:7], out[7:10] = rotation_vector(R), place(R) + R @ dz
        refined.append((s, out))
    return [t for _, t in sorted(refined, key=lambda x: -x[0])]


def sphere_rotations() -> List[np.ndarray]:
    """Rotations of the coarse search: the modiolar axis over the sphere, the spin about it."""
    return [_axis_to(v) @ _spin([0, 0, 1], a) for v in fibonacci_directions(AXIS_DIRECTIONS)
            for a in np.arange(SPINS) * 2 * math.pi / SPINS]


def from_centre(values, points, theta, centre, model_centre) -> list:
    """Orientation from one point: the modiolar axis over the sphere, the spin about it."""
    return search(values, points, theta, sphere_rotations(), lambda R: centre - R @ model_centre)


#: Shifts (mm, along the model's x and y) tried without any point, where only the crop's
#: centre says where the cochlea is.
ACROSS_MM = (-1.0, 0.0, 1.0)


def from_crop(values, points, theta, centre, model_box_centre) -> list:
    """Orientation and position without points, on a crop where the cochlea dominates: the
    centre of the cochlea's bounding box near the crop's centre, in any orientation."""
    return search(values, points, theta, sphere_rotations(), lambda R: centre - R @ model_box_centre,
                  across_mm=ACROSS_MM)


#: From two points, a rotation is a candidate when it puts the model's points within this
#: (mm, root mean square) of the user's: the points are clicked and the model's landmarks
#: are not the expert's (the apex is the duct's end, the cupula lies above it).
POINTS_TOLERANCE_MM = 1.5


def from_points(values, points, theta, model_points: np.ndarray, image_points: np.ndarray) -> list:
    """Orientation from two points (round window and apex): every rotation of the sphere
    search and every spin about the line of the two points that puts the model's points
    near the user's (least-squares translation), ranked by the capsule contrast."""
    model_points, image_points = np.asarray(model_points, float), np.asarray(image_points, float)
    m0, i0 = model_points.mean(0), image_points.mean(0)

    def place(R):
        return i0 - R @ m0

    def rms(R):
        return float(np.sqrt(np.mean(np.sum((model_points @ R.T + place(R) - image_points) ** 2, axis=1))))

    u, v = model_points[1] - model_points[0], image_points[1] - image_points[0]
    line = v / np.linalg.norm(v)
    R0 = _axis_to(line) @ _axis_to(u / np.linalg.norm(u)).T          # model line onto image line
    rotations = [_spin(line, a) @ R0 for a in np.arange(LINE_SPINS) * 2 * math.pi / LINE_SPINS]
    rotations += [R for R in sphere_rotations() if rms(R) <= POINTS_TOLERANCE_MM]
    return search(values, points, theta, rotations, place)
