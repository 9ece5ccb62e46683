"""`CochleaModel`: one posed cochlea shape and everything derived from it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict

import numpy as np
import torch
from scipy.spatial import cKDTree

from cochleaai.errors import CochleaAIError
from cochleaai.markups import Markups
from cochleaai.shape import geometry as G
from cochleaai.shape.mesh import surface_arrays, surface_mesh
from cochleaai.shape.params import (PARAM_NAMES, ROTATION, TRANSLATION, as_dict, bounds, default_params,
                                    deformable_of, with_pose)
from cochleaai.shape.rotation import rotation_matrix
from cochleaai.shape.sdf import ShapeFunction

#: Shared shape function (its table cache makes repeated calls on one shape cheap).
SHAPE_FUNCTION = ShapeFunction()

LABEL_OUTSIDE, LABEL_SCALA_TYMPANI, LABEL_SCALA_VESTIBULI = 0, 2, 3

#: Name of the scala tympani centreline curve (files and scene nodes).
CENTERLINE_NAME = "Scala tympani centerline"


def centerline_markups(points, degrees, name: str = CENTERLINE_NAME) -> Markups:
    """The scala tympani centreline as an open curve whose points are labelled with their
    angle from the round window ("90 deg"): what every tool writes or shows."""
    return Markups(points, [f"{d:.0f} deg" for d in degrees], kind="curve", name=name)


@dataclass
class CochleaModel:
    """The parametric cochlea at parameters ``theta`` (see :mod:`cochleaai.shape.params`)."""

    theta: np.ndarray = field(default_factory=default_params)
    shape_function: ShapeFunction = field(default=SHAPE_FUNCTION, repr=False)

    def __post_init__(self):
        self.theta = np.asarray(self.theta, dtype=float).reshape(-1).copy()
        if self.theta.size not in (10, 12, 14) or not np.all(np.isfinite(self.theta)):
            raise CochleaAIError("A cochlea model needs 10 finite parameters: " + ", ".join(PARAM_NAMES)
                                 + " (optionally followed by 2 or 4 cross-section scales).")
        lo, hi = bounds(n_params=self.theta.size)
        d, lo, hi = deformable_of(self.theta), deformable_of(lo), deformable_of(hi)
        if np.any(d < lo - 1e-9) or np.any(d > hi + 1e-9):
            raise CochleaAIError(
                f"Deformable parameters {np.round(d, 4).tolist()} are outside the model bounds "
                f"{lo.tolist()} .. {hi.tolist()} (a, b, alpha, phi, cross-section scales).")

    # ------------------------------------------------------------- frames
    @property
    def rotation(self) -> np.ndarray:
        return rotation_matrix(self.theta[ROTATION])

    @property
    def translation(self) -> np.ndarray:
        return self.theta[TRANSLATION]

    def to_image(self, local) -> np.ndarray:
        """Model-frame points (..., 3) -> image (LPS) points."""
        return np.asarray(local, dtype=float) @ self.rotation.T + self.translation

    def to_model(self, points) -> np.ndarray:
        """Image (LPS) points (..., 3) -> model-frame points."""
        return (np.asarray(points, dtype=float) - self.translation) @ self.rotation

    @property
    def _deformable(self) -> torch.Tensor:
        return torch.as_tensor(deformable_of(self.theta), dtype=torch.float64)

    # ------------------------------------------------------ shape function
    def signed_distance(self, points) -> np.ndarray:
        """Signed distance (mm, positive inside) of image points to the surface."""
        return self.shape_function(points, self.theta)

    def signed_distance_and_jacobian(self, points):
        return self.shape_function.evaluate(points, self.theta, jacobian=True)

    def labels(self, points):
        """Per point: signed distance, scala label (0 outside, 2 tympani, 3 vestibuli) and the
        signed distance (mm) to the partition between the scalae (positive towards the
        vestibuli), meaningful for points inside."""
        sdf, local, ts = self.shape_function.closest(points, self.theta)
        flat_local = local.reshape(-1, 3)
        tau = ts.reshape(-1, 2)[:, 0]
        f = G.tube_functions(torch.as_tensor(tau), self._deformable).numpy()
        th = f[:, 0]
        # the point's offset from the centreline in the meridian plane of its foot
        xi = flat_local[:, 0] * np.cos(th) + flat_local[:, 1] * np.sin(th) - f[:, 1]
        eta = flat_local[:, 2] - f[:, 2]
        m11, m12, m21, m22 = f[:, 3], f[:, 4], f[:, 5], f[:, 6]
        det = m11 * m22 - m12 * m21
        safe = np.where(np.abs(det) > 1e-12, det, 1e-12)
        c2 = (-m21 * xi + m11 * eta) / safe           # sin-coordinate in the cross-section
        minor = np.hypot(m12, m22)                     # semi-axis along which c2 runs
        partition = c2 * minor                        # ~ mm from the major-axis chord
        inside = sdf.reshape(-1) > 0
        lab = np.where(inside, np.where(c2 < 0, LABEL_SCALA_TYMPANI, LABEL_SCALA_VESTIBULI), LABEL_OUTSIDE)
        return sdf, lab.reshape(sdf.shape).astype(np.uint8), partition.reshape(sdf.shape)

    # ------------------------------------------------------------ curves
    def centerline(self, n: int = 400, theta_range=(0.0, G.THETA_MAX)) -> np.ndarray:
        """Points (n, 3) in image coordinates along the duct centreline."""
        th = torch.linspace(theta_range[0], theta_range[1], n, dtype=torch.float64)
        return self.to_image(G.centerline_points(th, self._deformable).numpy())

    def scala_tympani_centerline(self, n: int = 400, theta_range=(0.0, G.THETA_MAX)) -> np.ndarray:
        """Points (n, 3) in image coordinates along the scala tympani centreline."""
        th = torch.linspace(theta_range[0], theta_range[1], n, dtype=torch.float64)
        return self.to_image(G.scala_tympani_points(th, self._deformable).numpy())

    def centerline_angles(self, n: int = 400) -> np.ndarray:
        """Angular positions (degrees from the round window) matching :meth:`centerline`."""
        return np.degrees(np.linspace(0.0, G.THETA_MAX, n))

    def centerline_markups(self, n: int = 60, name: str = CENTERLINE_NAME) -> Markups:
        """:func:`centerline_markups` of ``n`` points of this shape's scala tympani centreline."""
        return centerline_markups(self.scala_tympani_centerline(n), self.centerline_angles(n), name)

    def angular_position(self, points, max_distance_mm: float = 3.0):
        """Angular insertion depth (degrees from the round window) of image points (N, 3).

        Each point takes the angle of its nearest point on the scala tympani centreline
        (sampled every 0.1 degree), which is how insertion depth of an electrode contact
        is read clinically. Returns ``(degrees, distance_mm)``; points farther than
        ``max_distance_mm`` from the centreline get NaN degrees.
        """
        pts = np.atleast_2d(np.asarray(points, dtype=float))
        n = int(np.degrees(G.THETA_MAX) * 10) + 1
        dist, idx = cKDTree(self.scala_tympani_centerline(n)).query(pts)
        deg = np.degrees(np.linspace(0.0, G.THETA_MAX, n))[idx]
        return np.where(dist <= max_distance_mm, deg, np.nan), dist

    def duct_length(self, curve: str = "centerline", n: int = 4000) -> float:
        """Length (mm) of the duct along the centreline or the scala tympani centreline."""
        pts = self.centerline(n) if curve == "centerline" else self.scala_tympani_centerline(n)
        return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())

    @property
    def turns(self) -> float:
        return G.TURNS

    # --------------------------------------------------------- landmarks
    def landmarks(self) -> Dict[str, np.ndarray]:
        """Image (LPS) positions of the cochlea apex, the centre of the basal turn on the
        modiolar axis, and the round window (start of the scala tympani).

        The apex is the point of the modiolar axis at the height of the duct's apical end:
        the cupula of the cochlea as experts place it on clinical CT (on the six real
        specimens, the expert apex lay 0.3-1.2 mm from the duct's end, off the axis side)."""
        d = self._deformable
        end = G.centerline_points(torch.tensor([G.THETA_MAX], dtype=torch.float64), d).numpy()[0]
        apex = np.array([0.0, 0.0, end[2]])
        rw = G.scala_tympani_points(torch.tensor([0.0], dtype=torch.float64), d).numpy()[0]
        # the basal turn's centre: on the modiolar axis at the mean height of the first turn
        th = torch.linspace(0.0, 2.0 * math.pi, 200, dtype=torch.float64)
        z0 = float(G.centerline_points(th, d)[:, 2].mean())
        local = {"apex": apex, "center": np.array([0.0, 0.0, z0]), "round_window": rw}
        return {k: self.to_image(v) for k, v in local.items()}

    def continued_duct(self, points, degrees: float, margin_mm: float, radius_mm: float = math.inf) -> np.ndarray:
        """Bool per image point (N, 3): inside the duct continued ``degrees`` past the round
        window, give or take ``margin_mm``, and within ``radius_mm`` of the modiolar axis. The
        continuation follows the centreline's formula below angle 0 and keeps the cross-section
        of the round window."""
        local = self.to_model(np.atleast_2d(np.asarray(points, dtype=float)))
        phi = np.arctan2(local[:, 1], local[:, 0])
        out = (phi <= 0.0) & (phi >= -math.radians(degrees)) & (np.hypot(local[:, 0], local[:, 1]) <= radius_mm)
        if not out.any():
            return out
        d = self._deformable
        f = G.tube_functions(torch.zeros(1, dtype=torch.float64), d).numpy()[0]
        centre = G.centerline_points(torch.as_tensor(phi[out]), d).numpy()
        offset = np.stack([np.hypot(local[out, 0], local[out, 1]) - np.hypot(centre[:, 0], centre[:, 1]),
                           local[out, 2] - centre[:, 2]])
        section = np.array([[f[3], f[4]], [f[5], f[6]]])        # (R, Z) = section @ (cos s, sin s)
        c = np.linalg.solve(section, offset)
        minor = min(np.hypot(f[3], f[5]), np.hypot(f[4], f[6]))
        out[out] = np.hypot(c[0], c[1]) <= 1.0 + margin_mm / minor
        return out

    # ------------------------------------------------------------- mesh
    def mesh(self, edge_mm: float = 0.2):
        return surface_mesh(self.theta, edge_mm)

    def extent_mm(self, edge_mm: float = 0.1) -> np.ndarray:
        """Size (mm) of the surface along the model axes x, y (basal plane) and z (height)."""
        v, _ = surface_arrays(with_pose(self.theta, np.zeros(6)), edge_mm)
        return v.max(0) - v.min(0)

    def as_dict(self) -> dict:
        return as_dict(self.theta)
