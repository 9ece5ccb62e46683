"""The initial pose of the cochlea model: the ROI template, or a rigid fit to the user's
points (``center``, ``apex``, ``round window``); a left ear is fitted as a mirrored right ear."""
from __future__ import annotations

import functools
from typing import Dict, Optional

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.segmentation.options import POINT_ROLES
from cochleaai.shape import CochleaModel, default_params
from cochleaai.shape.mesh import surface_arrays
from cochleaai.shape.rotation import rotation_matrix, rotation_vector

#: Size (x, y, z, mm) of the region fitted when no points are given: the thesis ROI
#: (60 x 50 x 50 voxels of 0.2 mm).
TEMPLATE_ROI_MM = (12.0, 10.0, 10.0)
#: Size of the region fitted around user points: the cochlea (about 9 x 7 x 4 mm) in any
#: orientation plus its capsule.
POINTS_ROI_MM = (13.0, 13.0, 13.0)
ROI_SPACING_MM = 0.2
#: How the scan is resampled onto that grid: cubic B-spline interpolation keeps the thin walls
#: and upper turns of a coarse scan sharper than linear interpolation, whose averaging lifts
#: the lumen of a 1 mm turn towards the bone level (bench segment-real / segment-versions:
#: better Dice on every version, most at 0.5 mm voxels).
ROI_INTERPOLATION = "bspline"
#: The model landmark (CochleaModel.landmarks) each point role stands for.
LANDMARK_OF_ROLE = {"center": "center", "apex": "apex", "round window": "round_window"}
#: A mirror of the left-right (LPS x) axis turns a left cochlea into a right one.
MIRROR = np.diag([-1.0, 1.0, 1.0])


def mirror(points, centre) -> np.ndarray:
    """Points mirrored across the plane x = centre's x; the mirror is its own inverse."""
    points = np.asarray(points, float)
    return (points - centre) @ MIRROR.T + centre


def parse_points(labels, points) -> Dict[str, np.ndarray]:
    """Map markups labels to roles ``center``, ``apex``, ``round window`` (case and the
    separator between words do not matter; other labels are ignored)."""
    found = {}
    for label, point in zip(labels, np.asarray(points, float).reshape(-1, 3)):
        key = " ".join(str(label).lower().replace("_", " ").replace("-", " ").split())
        if key in POINT_ROLES:
            found[key] = point
    return found


@functools.lru_cache(maxsize=1)
def default_box_centre() -> tuple:
    """Centre of the bounding box of the default (zero-pose) cochlea; computed once."""
    v, _ = surface_arrays(default_params(), 0.3)
    return tuple(0.5 * (v.min(0) + v.max(0)))


def _template_theta(centre) -> np.ndarray:
    theta = default_params()
    theta[7:] = np.asarray(centre, float) - np.asarray(default_box_centre())
    return theta


def _kabsch(model_pts: np.ndarray, image_pts: np.ndarray):
    a, b = model_pts - model_pts.mean(0), image_pts - image_pts.mean(0)
    U, _, Vt = np.linalg.svd(a.T @ b)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    return R, image_pts.mean(0) - R @ model_pts.mean(0)


def _smallest_rotation(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotation taking unit vector u onto unit vector v about their common normal."""
    axis = np.cross(u, v)
    s, c = np.linalg.norm(axis), float(np.dot(u, v))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        perp = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
        return rotation_matrix(np.pi * perp / np.linalg.norm(perp))
    return rotation_matrix(axis / s * np.arctan2(s, c))


def initial_theta(points: Optional[Dict[str, np.ndarray]], centre) -> np.ndarray:
    """Initial parameters (fit frame) from the ROI template or the user's points."""
    theta = _template_theta(centre)
    if not points:
        return theta
    ref = CochleaModel(default_params()).landmarks()        # model frame (zero pose)
    roles = [r for r in POINT_ROLES if r in points]
    if len(roles) == 3:
        R, t = _kabsch(np.stack([ref[LANDMARK_OF_ROLE[r]] for r in roles]), np.stack([points[r] for r in roles]))
    elif "apex" in points and "round window" in points:
        # the spin about the apex-round window line is taken from the template orientation
        u = ref["apex"] - ref["round_window"]
        v = points["apex"] - points["round window"]
        R = _smallest_rotation(u / np.linalg.norm(u), v / np.linalg.norm(v))
        t = 0.5 * (points["apex"] + points["round window"]) - R @ (0.5 * (ref["apex"] + ref["round_window"]))
    elif "center" in points:
        R, t = np.eye(3), points["center"] - ref["center"]
    else:
        raise CochleaAIError("Give a 'center' point, or 'apex' and 'round window' points "
                             f"(got only: {', '.join(roles)}).")
    theta[4:7], theta[7:] = rotation_vector(R), t
    return theta

