"""Shape functions for the logistic shape model: signed value (positive inside, mm) and its
Jacobian with respect to the shape parameters, at any points.

Every shape has ``evaluate(points, theta, jacobian=False) -> (values, J or None)``,
``names``, ``lower`` and ``upper``. The cochlea model is one; simple analytic shapes
(circle and ellipse in 2D, sphere and ellipsoid in 3D) test the framework on known answers.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.shape import ShapeFunction
from cochleaai.shape.params import bounds, param_names

#: Population prior of the deformable parameters (a, b, alpha, phi): mean and sd of the
#: phantom shape prior (cochleaai.phantom.prior, after the histograms of thesis Fig. 3.8).
SHAPE_PRIOR_MEAN = np.array([3.99, 0.150, 0.56, 0.2])
SHAPE_PRIOR_SD = np.array([0.33, 0.010, 0.35, 0.3])
#: Prior sd of the width and height factors of the 12-parameter variant (mean 1): their
#: spread across the six real specimens of the calibration (Resources/shape-calibration.json).
SECTION_PRIOR_SD = np.array([0.055, 0.036])


class CochleaShape:
    """The cochlea model (:mod:`cochleaai.shape`): 10 parameters, or 12 / 14 with
    cross-section scales (``n_params``)."""

    def __init__(self, shape_function=None, rotation_range: float = np.pi, translation_range: float = 1e3,
                 n_params: int = 10):
        self.sf = shape_function or ShapeFunction()
        self.names = param_names(n_params)
        self.lower, self.upper = bounds(rotation_range, translation_range, n_params)
        #: largest change of each parameter in one Gauss-Newton step (mm, 1/rad, mm, rad, rad, mm,
        #: then the unitless cross-section scales)
        self.max_step = np.concatenate([[0.2, 0.01, 0.2, 0.2, 0.05, 0.05, 0.05, 0.5, 0.5, 0.5],
                                        np.full(n_params - 10, 0.1)])

    @property
    def n_params(self) -> int:
        return len(self.names)

    def around(self, theta0, rotation_range: float, translation_range: float) -> "CochleaShape":
        """The same shape with the pose bounded to +-``rotation_range`` (rad, per rotation
        vector component) and +-``translation_range`` (mm) around ``theta0``'s pose.

        The spiral's self-similarity makes a turn about the modiolar axis nearly equivalent
        to a change of the radial scale; with a known initial pose (ROI template or the
        user's points) these bounds keep the fit out of that valley.
        """
        bounded = CochleaShape(self.sf, n_params=self.n_params)
        theta0 = np.asarray(theta0, float)
        bounded.lower, bounded.upper = self.lower.copy(), self.upper.copy()
        bounded.lower[4:7], bounded.upper[4:7] = theta0[4:7] - rotation_range, theta0[4:7] + rotation_range
        bounded.lower[7:10], bounded.upper[7:10] = theta0[7:10] - translation_range, theta0[7:10] + translation_range
        return bounded

    def evaluate(self, points, theta, jacobian: bool = False, reach=None):
        """Values (truncated at ``-reach`` mm if given, see :meth:`ShapeFunction.evaluate`)."""
        return self.sf.evaluate(points, theta, jacobian=jacobian, reach=reach)


class Ellipsoid:
    """Axis-aligned ellipsoid (3D) or ellipse (2D): ``theta = [semi-axes..., centre...]``
    (one radius for a sphere/circle).

    The value is the first-order (Sampson) signed distance ``(1 - rho) / |grad rho|`` with
    ``rho = |(x - c) / semi|``: exact for a sphere or circle, exact to first order at the
    surface of an ellipsoid. The Jacobian is analytic for the sphere/circle and by central
    differences of this closed form otherwise.
    """

    def __init__(self, dim: int = 3, isotropic: bool = False):
        if dim not in (2, 3):
            raise CochleaAIError("Ellipsoid shapes are 2D or 3D.")
        self.dim = dim
        self.isotropic = isotropic
        axes = ["radius"] if isotropic else [f"semi_{c}" for c in "xyz"[:dim]]
        self.names = tuple(axes + [f"c{c}" for c in "xyz"[:dim]])
        n_axes = len(axes)
        self.lower = np.concatenate([np.full(n_axes, 1e-3), np.full(dim, -1e6)])
        self.upper = np.concatenate([np.full(n_axes, 1e6), np.full(dim, 1e6)])
        self.max_step = np.full(n_axes + dim, 1.0)      # mm per Gauss-Newton step

    def _split(self, theta):
        theta = np.asarray(theta, float)
        k = 1 if self.isotropic else self.dim
        semi = np.repeat(theta[:1], self.dim) if self.isotropic else theta[:k]
        return semi, theta[k:k + self.dim]

    def _values(self, pts, theta):
        semi, c = self._split(theta)
        q = (pts - c) / semi
        rho = np.sqrt((q * q).sum(-1))
        # |grad rho|; at the centre itself the direction is undefined and the largest
        # semi-axis gives the (exact, for a sphere) inside distance
        grad = np.where(rho > 1e-12, np.sqrt(((q / semi) ** 2).sum(-1)) / np.maximum(rho, 1e-12),
                        1.0 / np.max(semi))
        return (1.0 - rho) / grad

    def evaluate(self, points, theta, jacobian: bool = False) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        pts = np.asarray(points, float)
        if pts.shape[-1] != self.dim:
            raise CochleaAIError(f"Points must have {self.dim} coordinates.")
        theta = np.asarray(theta, float)
        values = self._values(pts, theta)
        if not jacobian:
            return values, None
        J = np.empty(pts.shape[:-1] + (len(self.names),))
        if self.isotropic:
            diff = pts - theta[1:]
            dist = np.maximum(np.sqrt((diff * diff).sum(-1)), 1e-12)
            J[..., 0] = 1.0
            J[..., 1:] = diff / dist[..., None]
            return values, J
        for k in range(len(self.names)):
            h = 1e-6 * max(1.0, abs(theta[k]))
            tp, tm = theta.copy(), theta.copy()
            tp[k] += h
            tm[k] -= h
            J[..., k] = (self._values(pts, tp) - self._values(pts, tm)) / (2 * h)
        return values, J


def Sphere() -> Ellipsoid:
    return Ellipsoid(3, isotropic=True)


def Circle() -> Ellipsoid:
    return Ellipsoid(2, isotropic=True)
