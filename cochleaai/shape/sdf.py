"""Fast signed distance to the cochlea surface and its Jacobian (the shape function).

Positive inside, in mm. All the geometry along the duct depends on one variable, tau, so
it is tabulated once per shape (about 5000 rows: the 1D functions of
:func:`geometry.tube_functions` with their first and second tau-derivatives and, on first
use, their derivatives with respect to a, b, alpha, phi, all by central differences of the
closed-form functions). The compiled kernel of :mod:`._closest` then finds each point's
closest surface point by Newton's method on the surface parameters (tau, s), started from
the turns of the spiral that lie in the point's polar direction (and the end caps).

Derivatives at a point x with closest surface point S and outward normal n:

* deformable parameters p (envelope theorem): d sdf / dp = n . dS/dp, with dS/dp from the
  tabulated parameter derivatives;
* translation: d sdf / dt = n (in the image frame);
* rotation vector: closed form through dR/dr (Gallego & Yezzi 2015), as in thesis 3.10.1.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch

from cochleaai.errors import CochleaAIError
from cochleaai.shape import geometry as G
from cochleaai.shape._closest import closest_points, within_reach
from cochleaai.shape.params import ROTATION, TRANSLATION, deformable_of
from cochleaai.shape.rotation import rotation_matrix, rotation_matrix_derivatives

TABLE_STEP = 0.004  # rad of tau between table rows (second-order Taylor steps in between)
TAU_STEP = 1e-4     # central-difference step in tau (truncation and round-off both ~1e-8)
PARAM_STEP = 1e-6   # relative central-difference step in the deformable parameters
ROWS_PER_BALL = 40  # table rows covered by one bounding ball of the surface (about 0.8 mm of duct)


@dataclass
class TubeTable:
    """Tabulated 1D geometry of one deformable shape."""

    deformable: Tuple[float, ...]   # a, b, alpha, phi and 0, 2 or 4 cross-section scales
    tau0: float
    step: float
    values_np: np.ndarray       # (rows, 21): F, dF/dtau, d2F/dtau2 (7 columns each)
    orientation: float          # +1 if dS/dtau x dS/ds points outward
    _param_derivs: Optional[np.ndarray] = None
    _section_derivs: Optional[np.ndarray] = None
    _balls: Optional[Tuple[np.ndarray, np.ndarray]] = None

    @property
    def taus(self) -> torch.Tensor:
        n = self.values_np.shape[0]
        return torch.linspace(self.tau0, self.tau0 + (n - 1) * self.step, n, dtype=torch.float64)

    def _derivs(self, params) -> np.ndarray:
        """(rows, 7, len(params)): dF_i/dp_q by central differences of the closed form."""
        d = np.asarray(self.deformable, dtype=float)
        params = list(params)
        tau = self.taus
        n = len(tau)
        # every shifted shape in one call: a column of parameters per tau
        shifted, steps = [], []
        for q in params:
            h = PARAM_STEP * max(1.0, abs(d[q]))
            for sign in (1.0, -1.0):
                e = d.copy()
                e[q] += sign * h
                shifted.append(np.repeat(e[:, None], n, axis=1))
            steps.append(h)
        if not params:
            return np.zeros((n, 7, 0))
        with G.single_threaded_torch():
            F = G.tube_functions(tau.repeat(2 * len(params)), torch.as_tensor(np.concatenate(shifted, axis=1)))
        F = F.reshape(len(params), 2, n, 7)
        cols = (F[:, 0] - F[:, 1]) / (2.0 * torch.as_tensor(steps, dtype=torch.float64)[:, None, None])
        return cols.permute(1, 2, 0).numpy()

    @property
    def param_derivs_np(self) -> np.ndarray:
        """(rows, 28): dF_i/dp_q of a, b, alpha, phi in column 4 i + q (built on first use)."""
        if self._param_derivs is None:
            self._param_derivs = np.ascontiguousarray(self._derivs(range(4)).reshape(-1, 28))
        return self._param_derivs

    @property
    def balls(self) -> Tuple[np.ndarray, np.ndarray]:
        """Centres (K, 3) and radii (K,) of balls that together hold the whole surface
        (built on first use). A surface point lies within ``|M|_F`` (the cross-section
        matrix's Frobenius norm, at least its largest singular value) of its centreline
        point; the kernel's points between two rows lie within half a row's step of a row's."""
        if self._balls is None:
            v = self.values_np
            th, r, z, M = v[:, 0], v[:, 1], v[:, 2], v[:, 3:7]
            centre = np.stack([r * np.cos(th), r * np.sin(th), z], axis=1)
            dth, dr, dz, dM = v[:, 7], v[:, 8], v[:, 9], v[:, 10:14]
            speed = np.sqrt(dr ** 2 + (r * dth) ** 2 + dz ** 2) + np.linalg.norm(dM, axis=1)
            between = 0.5 * self.step * float(np.max(np.abs(speed))) + 1e-6
            size = np.linalg.norm(M, axis=1)
            n = v.shape[0]
            centres, radii = [], []
            for start in range(0, n, ROWS_PER_BALL):
                rows = slice(max(start - 1, 0), min(start + ROWS_PER_BALL + 1, n))
                c = centre[min(start + ROWS_PER_BALL // 2, n - 1)]
                centres.append(c)
                radii.append(float(np.max(np.linalg.norm(centre[rows] - c, axis=1) + size[rows])) + between)
            self._balls = (np.ascontiguousarray(centres), np.asarray(radii))
        return self._balls

    @property
    def section_derivs_np(self) -> np.ndarray:
        """(rows, 7, k): dF_i/ds_q of the k cross-section scales (built on first use)."""
        if self._section_derivs is None:
            self._section_derivs = self._derivs(range(4, len(self.deformable)))
        return self._section_derivs


def _tau_derivatives(d: torch.Tensor, tau: torch.Tensor, h: float = TAU_STEP):
    """F, dF/dtau, d2F/dtau2 by central differences (one-sided at the two end rows, where
    the caps clamp tau). Plain evaluations of the closed-form functions are cheap, where
    automatic forward-mode derivatives of the same expressions cost about 100 times more;
    all of them go through one call (the functions' fixed cost is most of a small call)."""
    n = len(tau)
    ends = torch.stack([tau[0] + h, tau[0] + 2 * h, tau[-1] - h, tau[-1] - 2 * h])
    every = G.tube_functions(torch.cat([tau, tau + h, tau - h, ends]), d)
    F, Fp, Fm, E = every[:n], every[n:2 * n], every[2 * n:3 * n], every[3 * n:]
    F1 = (Fp - Fm) / (2 * h)
    F2 = (Fp - 2 * F + Fm) / (h * h)
    for row, sign, f1, f2 in ((0, 1.0, E[0], E[1]), (n - 1, -1.0, E[2], E[3])):
        f0 = F[row]
        F1[row] = sign * (-3 * f0 + 4 * f1 - f2) / (2 * h)
        F2[row] = (f0 - 2 * f1 + f2) / (h * h)
    return F, F1, F2


def build_table(deformable, step: float = TABLE_STEP) -> TubeTable:
    with G.single_threaded_torch():
        return _build_table(deformable, step)


def _orientation(values: np.ndarray, tau0: float, step: float, tau: float = 5.0, s: float = 0.3) -> float:
    """+1 if dS/dtau x dS/ds points outward (away from the centreline) at the table row
    nearest ``tau`` (mid-duct), else -1."""
    F = values[int(round((tau - tau0) / step))]
    th, r, z, m11, m12, m21, m22 = F[:7]
    th_t, r_t, z_t, m11_t, m12_t, m21_t, m22_t = F[7:14]
    cs, sn = math.cos(s), math.sin(s)
    ct, st = math.cos(th), math.sin(th)
    off_r, off_z = m11 * cs + m12 * sn, m21 * cs + m22 * sn
    R, R_t = r + off_r, r_t + m11_t * cs + m12_t * sn
    Z_t = z_t + m21_t * cs + m22_t * sn
    R_s, Z_s = -m11 * sn + m12 * cs, -m21 * sn + m22 * cs
    along = np.array([R_t * ct - R * st * th_t, R_t * st + R * ct * th_t, Z_t])
    around = np.array([R_s * ct, R_s * st, Z_s])
    outward = np.array([off_r * ct, off_r * st, off_z])
    return 1.0 if float(np.cross(along, around) @ outward) > 0 else -1.0


def _build_table(deformable, step: float) -> TubeTable:
    d = torch.as_tensor(np.asarray(deformable, dtype=float), dtype=torch.float64)
    n = int(math.ceil((G.TAU_MAX - G.TAU_MIN) / step)) + 1
    tau = torch.linspace(G.TAU_MIN, G.TAU_MIN + (n - 1) * step, n, dtype=torch.float64)
    F, F1, F2 = _tau_derivatives(d, tau)
    values = np.ascontiguousarray(torch.cat([F, F1, F2], dim=1).numpy())
    return TubeTable(tuple(float(v) for v in d), G.TAU_MIN, step, values,
                     _orientation(values, G.TAU_MIN, step))


def _section_jacobian(tab: TubeTable, normal: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """(N, k) d sdf / d (cross-section scales) = n . dS/ds at each point's foot (tau, s)
    (envelope theorem, as for a, b, alpha, phi in the compiled kernel; normal in the model
    frame). The scales change only the cross-section matrix M, not theta, r or z."""
    x = (ts[:, 0] - tab.tau0) / tab.step
    j = np.clip(np.floor(x).astype(int), 0, tab.values_np.shape[0] - 2)
    w = (x - j)[:, None, None]
    dF = (1 - w) * tab.section_derivs_np[j] + w * tab.section_derivs_np[j + 1]      # (N, 7, k)
    th = (1 - w[:, :, 0]) * tab.values_np[j, 0:1] + w[:, :, 0] * tab.values_np[j + 1, 0:1]
    cs, sn = np.cos(ts[:, 1:2]), np.sin(ts[:, 1:2])
    dR = dF[:, 3] * cs + dF[:, 4] * sn
    dZ = dF[:, 5] * cs + dF[:, 6] * sn
    return normal[:, 0:1] * dR * np.cos(th) + normal[:, 1:2] * dR * np.sin(th) + normal[:, 2:3] * dZ


def _spread(values: np.ndarray, where: np.ndarray, fill: float) -> np.ndarray:
    """An array over all points with ``values`` where ``where`` is true and ``fill`` elsewhere."""
    out = np.full((where.size,) + values.shape[1:], fill, dtype=values.dtype)
    out[where] = values
    return out


class ShapeFunction:
    """Signed distance (mm, positive inside) of image points to the posed cochlea model.

    ``theta`` is the 10-vector of :mod:`cochleaai.shape.params`, or 12 / 14 entries with
    cross-section scales (their Jacobian columns follow the first 10). Tables of recent
    deformable shapes are cached, so changing only the pose costs no rebuild (the
    segmentation's start search cycles through about ten shapes: the cache holds 32).
    """

    def __init__(self, newton_steps: int = 30, second_turn_margin: float = 0.4,
                 axis_radius: float = 1.5, cache_size: int = 32):
        self.axis_radius = axis_radius
        self.newton_steps = newton_steps
        self.second_turn_margin = second_turn_margin
        self._cache: "OrderedDict[tuple, TubeTable]" = OrderedDict()
        self._cache_size = cache_size

    # ------------------------------------------------------------------ tables
    def table(self, deformable) -> TubeTable:
        key = tuple(np.round(np.asarray(deformable, dtype=float), 12))
        tab = self._cache.get(key)
        if tab is None:
            tab = build_table(key)
            self._cache[key] = tab
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return tab

    # ------------------------------------------------------------------ public
    def __call__(self, points, theta) -> np.ndarray:
        return self.evaluate(points, theta)[0]

    def _to_local(self, points, theta):
        theta = np.asarray(theta, dtype=float).reshape(-1)
        if theta.size not in (10, 12, 14) or not np.all(np.isfinite(theta)):
            raise CochleaAIError("Shape parameters must be 10 finite numbers (a, b, alpha, phi, rx, ry, rz, tx, ty, tz), "
                                 "optionally followed by 2 or 4 cross-section scales.")
        pts = np.asarray(points, dtype=float)
        if pts.shape[-1:] != (3,):
            raise CochleaAIError(f"Points must have shape (..., 3), got {pts.shape}.")
        if not np.all(np.isfinite(pts)):
            raise CochleaAIError("Points contain NaN or infinite coordinates.")
        shape = pts.shape[:-1]
        pts = pts.reshape(-1, 3)
        R = rotation_matrix(theta[ROTATION])
        local = (pts - theta[TRANSLATION]) @ R          # R^T (x - t), row-wise
        return theta, pts, shape, R, local

    def evaluate(self, points, theta, jacobian: bool = False,
                 reach: Optional[float] = None) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Signed distances (...,) and, if asked, the Jacobian (..., theta.size) w.r.t. theta.

        With ``reach`` (mm), the distance is truncated: points that bounding balls of the
        surface place farther than ``reach`` outside get ``-reach`` (and a zero Jacobian)
        without the search for their closest point; every value above ``-reach`` is exact.
        """
        theta, pts, shape, R, local = self._to_local(points, theta)
        tab = self.table(deformable_of(theta))
        if reach is None:
            sdf, normal, jac, ts = self._local(local, tab, jacobian, R, theta[ROTATION])
        else:
            if not reach > 0:
                raise CochleaAIError(f"The reach of a truncated distance must be positive, got {reach}.")
            near = within_reach(local, *tab.balls, reach)
            sdf, normal, jac, ts = self._local(local[near], tab, jacobian, R, theta[ROTATION])
            sdf = _spread(sdf, near, -reach)
            if jacobian:      # the normals and feet serve the cross-section scales' Jacobian only
                jac, normal, ts = (_spread(a, near, 0.0) for a in (jac, normal, ts))
        if not jacobian:
            return sdf.reshape(shape), None
        if theta.size > 10:
            jac = np.concatenate([jac, _section_jacobian(tab, normal, ts)], axis=1)
        return sdf.reshape(shape), jac.reshape(shape + (theta.size,))

    def closest(self, points, theta):
        """Signed distance (...,), model-frame points (..., 3) and closest surface
        parameters (..., 2) = (tau, s) of the foot on the model surface."""
        theta, pts, shape, R, local = self._to_local(points, theta)
        sdf, _, _, ts = self._local(local, self.table(deformable_of(theta)), False)
        return sdf.reshape(shape), local.reshape(shape + (3,)), ts.reshape(shape + (2,))

    def jacobian(self, points, theta) -> np.ndarray:
        return self.evaluate(points, theta, jacobian=True)[1]

    # ------------------------------------------------------------------ core
    def _local(self, y: np.ndarray, tab: TubeTable, want_jacobian: bool, R=None, rotvec=None):
        n = y.shape[0]
        sdf = np.empty(n)
        normal = np.empty((n, 3))
        jac = np.empty((n, 10) if want_jacobian else (1, 10))
        ptab = tab.param_derivs_np if want_jacobian else np.zeros((1, 28))
        rot = np.eye(3) if R is None else np.ascontiguousarray(R)
        dR = rotation_matrix_derivatives(np.zeros(3) if rotvec is None else rotvec)
        rot_derivs = np.ascontiguousarray(np.stack([d.T @ rot for d in dR]))
        ts = np.empty((n, 2))
        closest_points(np.ascontiguousarray(y, dtype=np.float64), tab.values_np, tab.tau0, tab.step,
                       G.TAU_MIN + 1e-4, G.TAU_MAX - 1e-4, G.THETA_MAX, G.CAP_BASE, G.CAP_APEX,
                       tab.orientation, self.newton_steps, self.second_turn_margin, self.axis_radius,
                       ptab, rot, rot_derivs, sdf, normal, jac, ts)
        return sdf, normal, jac, ts
