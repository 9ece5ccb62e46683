"""Logistic shape model fitted by EM with a Gauss-Newton shape step (thesis section 3.2).

Prior label probability ``mu_n = sigmoid(S(theta, x_n) / l_ref)`` from any shape function
(:mod:`.shapes`); appearance ``p(I | Z = k)`` from Student-t mixtures (:mod:`.appearance`).

* E-step: posterior labels ``u_n = sigmoid(S / l_ref + log p(I|1) - log p(I|0))``.
* MS-step (Algorithm 1): with ``d_n = dS/dtheta / l_ref``, gradient ``d (u - mu) - P (theta - theta0)``
  and Gauss-Newton Hessian ``d Diag(mu (1 - mu)) d^T + P`` (P: precision of the Gaussian prior
  on the parameter change); Newton steps are truncated to the parameter bounds and to a
  per-parameter trust region (``shape.max_step``); the inner loop keeps ``d`` and moves ``S``
  linearly, the outer loop re-evaluates the shape function and keeps the step only if the
  exact shape objective did not decrease (halving it otherwise).
* Alternative MS-step (``shape_step="bfgs"``, for comparison): scipy's L-BFGS-B on the same
  objective and bounds, one exact shape-function evaluation with Jacobian per call.
* MI-step: EM updates of the mixtures weighted by ``u`` (skipped for a fixed appearance).
* Laplace approximation of the posterior: ``N(theta*, H^-1)``.

Points far from the surface weigh almost nothing in the shape step: at ``|S| = 8 l_ref``
the prior is saturated (``mu (1 - mu) < 4e-4``), and most of a cochlea's region lies
farther out than that. Between full evaluations, the shape step therefore evaluates only the points
near the surface (:class:`NearSurface`) and keeps the last values of the others; the
start, every re-check after the surface moved, and the Laplace step use every point.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

from cochleaai.errors import CochleaAIError
from cochleaai.progress import Progress
from cochleaai.segmentation.appearance import AppearanceModel, initial_appearance


#: Points within this many reference lengths of the surface carry the shape step.
NEAR_BAND_LREF = 8.0
#: Extra reach of the near set (reference lengths): the surface may move this far between
#: full evaluations before a point outside the set could enter the band.
NEAR_MARGIN_LREF = 4.0


class NearSurface:
    """A shape's values at all ``points``, with the shape function evaluated only where
    the last full evaluation found them within ``band + margin`` of the surface (the
    indices ``near``).

    Values elsewhere are kept from that evaluation; their Jacobian rows would be zero, so
    the Jacobian is returned for the ``near`` points only. When an evaluation finds that
    the surface moved by more than ``margin`` at any near point, every point is
    evaluated again and the near set is renewed.
    """

    def __init__(self, shape, points, band: float, margin: float):
        self.shape, self.points = shape, points
        self.band, self.margin = band, margin
        self.full_evaluations = 0

    def refresh(self, theta, jacobian: bool = False):
        S, J = self.shape.evaluate(self.points, theta, jacobian=jacobian)
        self.reference = S
        self.near = np.flatnonzero(np.abs(S) < self.band + self.margin)
        self.near_points = self.points[self.near]
        self.full_evaluations += 1
        return S, (J[self.near] if jacobian else None)

    def evaluate(self, theta, jacobian: bool = False):
        """Values at all points and, if asked, the Jacobian at the ``near`` points."""
        S_near, J_near = self.shape.evaluate(self.near_points, theta, jacobian=jacobian)
        if self.near.size and np.max(np.abs(S_near - self.reference[self.near])) > self.margin:
            return self.refresh(theta, jacobian)
        S = self.reference.copy()
        S[self.near] = S_near
        return S, J_near


@dataclass
class FitConfig:
    l_ref: float = 0.2                 # mm, reference length of the logistic prior while fitting
    outer_iterations: int = 20          # EM rounds (MS step then MI steps)
    gradient_updates: int = 3           # shape function re-evaluations per MS step
    newton_steps: int = 5               # Gauss-Newton steps per re-evaluation
    appearance_steps: int = 2           # EM updates of the mixtures per MI step
    tolerance: float = 1e-3             # relative change of the foreground means to stop
    prior_sd: Optional[np.ndarray] = None  # sd of a Gaussian prior on theta (inf: none)
    prior_mean: Optional[np.ndarray] = None  # its mean (default: the start)
    shape_step: str = "gauss-newton"    # or "bfgs": scipy L-BFGS-B on the same objective
    bfgs_iterations: int = 30           # L-BFGS-B iterations per MS step
    near_surface: bool = True           # shape steps on the points near the surface (NearSurface)


@dataclass
class FitResult:
    theta: np.ndarray                  # theta*
    covariance: np.ndarray             # Laplace posterior covariance (H^-1)
    posterior: np.ndarray              # u_n = p(Z_n = 1 | I, theta*, appearance)
    prior: np.ndarray                  # mu_n = sigmoid(S(theta*, x_n) / l_ref)
    shape_values: np.ndarray           # S(theta*, x_n)
    appearance: AppearanceModel
    log_likelihood: float
    iterations: int
    history: list = field(default_factory=list)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))


def _shape_objective(S, u, l_ref, theta, theta0, P):
    """L_S: expected log shape prior of the labels plus the Gaussian prior on theta."""
    z = S / l_ref
    ll = np.sum(-u * np.logaddexp(0.0, -z) - (1.0 - u) * np.logaddexp(0.0, z))
    dt = theta - theta0
    return float(ll - 0.5 * dt @ P @ dt)


def log_joint(S, l_ref, log_p0, log_p1):
    """sum_n log(p(I|1) mu + p(I|0) (1 - mu)), computed stably."""
    a = log_p1 + np.log(expit(S / l_ref) + 1e-300)
    b = log_p0 + np.log(expit(-S / l_ref) + 1e-300)
    return float(np.logaddexp(a, b).sum())


def _ms_step_bfgs(shape, points, theta, u, l_ref, theta0, P, lo, hi, iterations):
    """MS-step by L-BFGS-B: maximise the shape objective with exact evaluations."""
    def negative(t):
        S, J = shape.evaluate(points, t, jacobian=True)
        mu = expit(S / l_ref)
        g = (J / l_ref).T @ (u - mu) - P @ (t - theta0)
        return -_shape_objective(S, u, l_ref, t, theta0, P), -g

    res = minimize(negative, theta, jac=True, method="L-BFGS-B", bounds=list(zip(lo, hi)),
                   options={"maxiter": iterations})
    return np.clip(res.x, lo, hi)


def fit_logistic_shape(values, points, shape, theta0, settings: FitConfig = None,
                       appearance: Optional[AppearanceModel] = None, progress=None) -> FitResult:
    """Fit the logistic shape model to intensities ``values`` (N,) at ``points`` (N, d)."""
    settings = settings or FitConfig()
    p = Progress.wrap(progress)
    values = np.asarray(values, float).reshape(-1)
    points = np.asarray(points, float)
    if points.shape[0] != values.shape[0]:
        raise CochleaAIError("There must be one point per intensity value.")
    if not np.all(np.isfinite(values)):
        raise CochleaAIError("The image contains NaN or infinite values; fill or mask them first.")
    if settings.l_ref <= 0:
        raise CochleaAIError("The reference length l_ref must be positive (mm).")
    if settings.shape_step not in ("gauss-newton", "bfgs"):
        raise CochleaAIError(f"Unknown shape step {settings.shape_step!r}; use 'gauss-newton' or 'bfgs'.")
    start = np.asarray(theta0, float).copy()
    # theta0 below is the prior mean; the fit starts at ``start``
    theta0 = start if settings.prior_mean is None else np.asarray(settings.prior_mean, float)
    lo, hi = np.asarray(shape.lower, float), np.asarray(shape.upper, float)
    theta = np.clip(start, lo, hi)
    P = np.zeros((theta.size, theta.size))
    if settings.prior_sd is not None:
        P = np.diag(1.0 / np.asarray(settings.prior_sd, float) ** 2)      # inf sd -> 0
    app = appearance if appearance is not None else initial_appearance(values)
    l_ref = settings.l_ref
    max_step = np.asarray(getattr(shape, "max_step", np.full(theta.size, np.inf)), float)

    # Gauss-Newton steps see the points near the surface; L-BFGS-B always sees all of them
    near = NearSurface(shape, points, NEAR_BAND_LREF * l_ref, NEAR_MARGIN_LREF * l_ref)
    if not settings.near_surface or settings.shape_step == "bfgs":
        near.band = np.inf
    S, _ = near.refresh(theta)
    log_p0, log_p1 = app.log_likelihoods(values)
    u = expit(S / l_ref + log_p1 - log_p0)
    H = np.eye(theta.size)
    history = []
    it = 0
    for it in range(1, settings.outer_iterations + 1):
        # ---- MS-step: Gauss-Newton on the shape parameters (thesis Algorithm 1)
        if settings.shape_step == "bfgs":
            theta = _ms_step_bfgs(shape, points, theta, u, l_ref, theta0, P, lo, hi,
                                  settings.bfgs_iterations)
            S, _ = near.refresh(theta)
            u = expit(S / l_ref + log_p1 - log_p0)
        for _ in range(settings.gradient_updates if settings.shape_step != "bfgs" else 0):
            S, J = near.evaluate(theta, jacobian=True)
            # the Gauss-Newton model over the near points (the others' Jacobian rows are 0)
            d, u_near = J / l_ref, u[near.near]
            theta_start = theta.copy()
            objective_start = _shape_objective(S, u, l_ref, theta, theta0, P)
            S_start, S_lin = S, S[near.near]
            for _ in range(settings.newton_steps):
                mu = expit(S_lin / l_ref)
                g = d.T @ (u_near - mu) - P @ (theta - theta0)
                H = (d * (mu * (1.0 - mu))[:, None]).T @ d + P
                H += 1e-9 * np.trace(H) / theta.size * np.eye(theta.size)
                step = np.linalg.solve(H, g)
                # trust region: no parameter moves more than its max step at once
                scale = np.max(np.abs(step) / max_step)
                if scale > 1.0:
                    step /= scale
                new = np.clip(theta + step, lo, hi)        # truncated to the bounds
                S_lin = S_lin + J @ (new - theta)
                theta = new
                if np.max(np.abs(step) / max_step) < 1e-4:
                    break
            # keep the step only if the exact objective improved; otherwise shorten it
            for _ in range(4):
                S, _ = near.evaluate(theta)
                if _shape_objective(S, u, l_ref, theta, theta0, P) >= objective_start - 1e-9:
                    break
                theta = theta_start + 0.5 * (theta - theta_start)
            else:
                theta, S = theta_start, S_start
            u = expit(S / l_ref + log_p1 - log_p0)          # E-step inside the MS step
            if np.array_equal(theta, theta_start):
                break       # converged for these labels: another update would repeat this one
        # ---- MI-step: appearance
        change = 0.0
        for _ in range(settings.appearance_steps):
            change = max(change, app.update(values, u))
            log_p0, log_p1 = app.log_likelihoods(values)
            u = expit(S / l_ref + log_p1 - log_p0)
        ll = log_joint(S, l_ref, log_p0, log_p1)
        history.append({"iteration": it, "log_likelihood": ll, "appearance_change": change,
                        "theta": theta.tolist()})
        p(it / settings.outer_iterations, f"EM iteration {it}: log-likelihood {ll:.1f}")
        if it > 1 and change < settings.tolerance and \
                np.max(np.abs(np.asarray(history[-2]["theta"]) - theta)) < 1e-3:
            break
    # Laplace approximation at the optimum
    S, J = shape.evaluate(points, theta, jacobian=True)
    d = J / l_ref
    mu = expit(S / l_ref)
    H = (d * (mu * (1.0 - mu))[:, None]).T @ d + P
    cov = np.linalg.pinv(H)
    log_p0, log_p1 = app.log_likelihoods(values)
    u = expit(S / l_ref + log_p1 - log_p0)
    p(1.0, "done")
    return FitResult(theta, cov, u, mu, S, app, log_joint(S, l_ref, log_p0, log_p1), it, history)
