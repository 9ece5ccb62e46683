"""Appearance model: one Student-t mixture of intensities per class (thesis section 3.3.2).

Each class k (0 background, 1 cochlea) has M_k Student-t components with weight, mean,
scale and degrees of freedom. A Student-t is a Gaussian whose precision is scaled by a
Gamma(nu/2, nu/2) latent variable, so EM has closed-form updates for weights, means and
scales and a one-dimensional root for the degrees of freedom (Peel & McLachlan, "Robust
mixture modelling using the t distribution", Statistics and Computing 2000). Voxels
enter each class's update weighted by their posterior label probability.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.special import digamma, gammaln

from cochleaai.errors import CochleaAIError

#: Component means (HU) that start the fit on calibrated CT, after thesis Table 3.7:
#: cochlea = fluid and bony partitions; background = fluid, dense bone, air, temporal bone.
HU_COCHLEA = (0.0, 500.0)
HU_BACKGROUND = (0.0, 2000.0, -1000.0, 600.0)
#: Highest mean (HU) a cochlea component may take. The cochlea holds fluid and thin bony
#: partitions; after the scanner's blur a voxel brighter than about halfway from fluid
#: (0 HU) to the otic capsule (2000 HU) is more capsule than lumen, and a free component
#: there lets the cochlea class swallow the capsule's blurred rim.
HU_COCHLEA_CEILING = 900.0
NU_MIN, NU_MAX = 0.5, 200.0


@dataclass
class StudentMixture:
    """A 1D mixture of Student-t distributions."""

    weights: np.ndarray
    means: np.ndarray
    scales: np.ndarray          # standard-deviation-like scale of each component
    dofs: np.ndarray            # degrees of freedom nu

    def __post_init__(self):
        self.weights = np.asarray(self.weights, float) / np.sum(self.weights)
        self.means = np.asarray(self.means, float)
        self.scales = np.asarray(self.scales, float)
        self.dofs = np.asarray(self.dofs, float)
        if not (len(self.weights) == len(self.means) == len(self.scales) == len(self.dofs)):
            raise CochleaAIError("A mixture needs as many weights, means, scales and dofs.")

    @property
    def n_components(self) -> int:
        return len(self.means)

    def component_logpdf(self, x: np.ndarray) -> np.ndarray:
        """log(w_m t(x; mu_m, s_m, nu_m)) for every component: (N, M)."""
        x = np.asarray(x, float)[:, None]
        nu, s = self.dofs[None, :], self.scales[None, :]
        delta = ((x - self.means[None, :]) / s) ** 2
        log_t = (gammaln((nu + 1) / 2) - gammaln(nu / 2) - 0.5 * np.log(nu * np.pi) - np.log(s)
                 - 0.5 * (nu + 1) * np.log1p(delta / nu))
        return np.log(self.weights)[None, :] + log_t

    def logpdf(self, x: np.ndarray) -> np.ndarray:
        c = self.component_logpdf(x)
        top = c.max(axis=1, keepdims=True)
        return (top + np.log(np.exp(c - top).sum(axis=1, keepdims=True)))[:, 0]

    def as_dict(self) -> dict:
        return {"weights": self.weights.tolist(), "means": self.means.tolist(),
                "scales": self.scales.tolist(), "dofs": self.dofs.tolist()}


def _update_dof(nu_old: float, mean_log_tau_minus_tau: float) -> float:
    """Root in nu of the degrees-of-freedom equation of the t-mixture EM."""
    const = 1.0 + mean_log_tau_minus_tau + digamma((nu_old + 1) / 2) - np.log((nu_old + 1) / 2)

    def f(nu):
        return -digamma(nu / 2) + np.log(nu / 2) + const

    lo, hi = f(NU_MIN), f(NU_MAX)
    if lo * hi > 0:                      # no sign change: the bound nearer the root
        return NU_MIN if abs(lo) < abs(hi) else NU_MAX
    return float(brentq(f, NU_MIN, NU_MAX, xtol=1e-4))


def em_step(mixture: StudentMixture, x: np.ndarray, w: Optional[np.ndarray] = None,
            update_dofs: bool = True, min_scale: float = 1e-3) -> StudentMixture:
    """One EM update of ``mixture`` on samples ``x`` with voxel weights ``w`` in [0, 1]."""
    x = np.asarray(x, float)
    w = np.ones_like(x) if w is None else np.asarray(w, float)
    c = mixture.component_logpdf(x)
    c -= c.max(axis=1, keepdims=True)
    r = np.exp(c)
    r /= r.sum(axis=1, keepdims=True)                       # component responsibilities
    wr = w[:, None] * r
    mass = wr.sum(axis=0) + 1e-12
    nu, mu, s = mixture.dofs, mixture.means, mixture.scales
    delta = ((x[:, None] - mu[None, :]) / s[None, :]) ** 2
    tau = (nu[None, :] + 1) / (nu[None, :] + delta)         # E[precision scale]
    wrt = wr * tau
    new_mu = (wrt * x[:, None]).sum(axis=0) / (wrt.sum(axis=0) + 1e-12)
    new_var = (wrt * (x[:, None] - new_mu[None, :]) ** 2).sum(axis=0) / mass
    new_s = np.maximum(np.sqrt(new_var), min_scale)
    new_nu = nu.copy()
    if update_dofs:
        # with log E[tau]; _update_dof adds the E[log tau] - log E[tau] correction
        stat = (wr * (np.log(tau) - tau)).sum(axis=0) / mass
        new_nu = np.array([_update_dof(n, st) for n, st in zip(nu, stat)])
    return StudentMixture(mass / mass.sum(), new_mu, new_s, new_nu)


@dataclass
class AppearanceModel:
    """Intensity likelihoods of the two classes: background (0) and object (1)."""

    background: StudentMixture
    foreground: StudentMixture
    fixed: bool = False                 # supervised: never updated
    foreground_ceiling: float = np.inf  # highest allowed foreground mean (image units)
    history: list = field(default_factory=list, repr=False)

    def log_likelihoods(self, x: np.ndarray):
        """(log p(I|Z=0), log p(I|Z=1)) per voxel."""
        return self.background.logpdf(x), self.foreground.logpdf(x)

    def update(self, x: np.ndarray, u: np.ndarray, steps: int = 1, update_dofs: bool = True) -> float:
        """MI-step: EM updates with the posterior labels ``u``; returns the relative change
        of the foreground means (the stopping criterion of the outer loop)."""
        if self.fixed:
            return 0.0
        old = self.foreground.means.copy()
        for _ in range(steps):
            self.background = em_step(self.background, x, 1.0 - u, update_dofs)
            self.foreground = em_step(self.foreground, x, u, update_dofs)
            self.foreground.means = np.minimum(self.foreground.means, self.foreground_ceiling)
        change = float(np.max(np.abs(self.foreground.means - old)) / (np.max(np.abs(old)) + 1e-6))
        self.history.append(change)
        return change

    def as_dict(self) -> dict:
        return {"background": self.background.as_dict(), "foreground": self.foreground.as_dict(),
                "fixed": self.fixed, "foreground_ceiling": float(self.foreground_ceiling)}


#: Percentiles (HU) of a cochlea region of interest of the thesis's size (12 x 10 x 10 mm
#: around the cochlea): cochlear fluid, temporal bone, otic capsule. Measured on ten roi
#: phantoms (seeds 20-29; spread 30-100 HU) at the percentiles of ROI_PERCENTILES.
ROI_PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)
ROI_PERCENTILES_HU = (283.0, 570.0, 667.0, 1719.0, 1992.0)


def intensity_calibration(values: np.ndarray):
    """(scale, offset) mapping HU to the image's own intensities.

    Calibrated CT keeps the identity (air near -1000 or fluid near 0 HU at the low end,
    dense bone at 800-4000 HU at the high end). Otherwise (cone-beam CT, other scales) the
    image's percentiles are matched to those of a typical cochlea region in HU by a least-
    squares line, so the starting components follow the image's own distribution.
    """
    values = np.asarray(values, float)
    lo, hi = np.percentile(values, [0.5, 99.5])
    if -1200.0 <= lo <= 0.0 and 800.0 <= hi <= 4000.0:
        return 1.0, 0.0
    if hi - lo <= 0:
        raise CochleaAIError("The image is constant: there is nothing to segment.")
    q = np.percentile(values, ROI_PERCENTILES)
    # percentiles rise with HU, so the fitted scale is positive
    scale, offset = np.polyfit(np.asarray(ROI_PERCENTILES_HU), q, 1)
    return float(max(scale, 1e-6)), float(offset)


def initial_appearance(values: np.ndarray, cochlea_hu: Sequence[float] = HU_COCHLEA,
                       background_hu: Sequence[float] = HU_BACKGROUND, scale_hu: float = 150.0,
                       dof: float = 5.0, calibration=None) -> AppearanceModel:
    """Starting mixtures: the thesis component means, mapped onto the image's intensities
    (by ``calibration``, the image's ``intensity_calibration``, computed when not given)."""
    a, b = calibration if calibration is not None else intensity_calibration(np.asarray(values, float))

    def mix(means):
        m = len(means)
        return StudentMixture(np.full(m, 1.0 / m), a * np.asarray(means, float) + b,
                              np.full(m, a * scale_hu), np.full(m, dof))

    return AppearanceModel(mix(background_hu), mix(cochlea_hu),
                           foreground_ceiling=a * HU_COCHLEA_CEILING + b)


#: Where the lumen and wall levels are read around a shape (mm): the lumen deeper than the
#: first inside it, the wall in the shell between the other two outside it (the starting
#: mixtures around the start, the lumen-wall label map around the fit).
START_LUMEN_DEPTH_MM = 0.2
START_WALL_SHELL_MM = (0.3, 0.9)


#: The lumen (fluid, 0 HU) and the otic capsule (2000 HU) in the HU anchors of the thesis
#: mixtures; the image's own levels of the two replace them (see appearance_around_shape).
LUMEN_HU, CAPSULE_HU = 0.0, 2000.0


def appearance_around_shape(values: np.ndarray, S: np.ndarray) -> AppearanceModel:
    """Starting mixtures read off the image around a starting shape (signed distance ``S``,
    mm, positive inside).

    The lumen level (median deeper than ``START_LUMEN_DEPTH_MM`` inside) and the wall level
    (median of the shell ``START_WALL_SHELL_MM`` outside) are measured on the image, and
    the thesis mixtures (:func:`initial_appearance`) are mapped onto the image's values by
    the line through those two points, in place of an HU calibration: fluid-filled (about
    +200 HU) and air-filled (about -750 HU) labyrinths, and grey values that are not HU,
    start alike. When the start shows no brighter wall, the image's percentile calibration
    is used instead.
    """
    values, S = np.asarray(values, float), np.asarray(S, float)
    deep = S > START_LUMEN_DEPTH_MM
    shell = (S < -START_WALL_SHELL_MM[0]) & (S > -START_WALL_SHELL_MM[1])
    if deep.sum() < 10 or shell.sum() < 10:
        raise CochleaAIError("The starting cochlea lies outside the region of interest; check the points.")
    lumen, wall = float(np.median(values[deep])), float(np.median(values[shell]))
    if wall <= lumen:
        # no brighter wall around the start (no cochlea there): let the fit move from the
        # image's own distribution, and the quality control judge the result
        return initial_appearance(values)
    scale = (wall - lumen) / (CAPSULE_HU - LUMEN_HU)
    return initial_appearance(values, calibration=(scale, lumen - scale * LUMEN_HU))
