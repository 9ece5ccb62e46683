"""Random draws of the phantom: cochlea shape, pose and imaging parameters.

Shape prior (the project's choice, shaped after the parameter histograms of thesis
Fig. 3.8, where the radial scale ``a`` and the longitudinal amplitude ``alpha`` are both
bimodal; the thesis relates the lower mode to flat centreline profiles and the upper mode
to "roller-coaster" profiles). We model this with a latent *profile class* shared by ``a``
and ``alpha``, so each marginal is a mixture of two Gaussians:

=================  ===============  =====================
                   flat class       roller-coaster class
=================  ===============  =====================
class weight       0.6              0.4
``a`` (mm)         N(3.75, 0.14)    N(4.35, 0.14)
``alpha`` (mm)     N(0.30, 0.12)    N(0.95, 0.12)
=================  ===============  =====================

and, independently of the class, ``b ~ N(0.150, 0.010)`` 1/rad (the thesis finds ``b``
well determined, with a small spread) and ``phi ~ N(0.2, 0.3)`` rad (the phase, widely
spread). Every parameter is truncated to the model bounds of
:mod:`cochleaai.shape.params` by redrawing (then clipping, after 100 tries).

Pose draws:

* ``roi``: rotation vector with each component ``N(0, 2 deg)`` clipped to +-5 deg;
  translation noise ``N(0, 0.2 mm)`` per axis clipped to +-0.5 mm.
* ``temporal``: rotation from the reference orientation by Euler angles (x, y, z of the
  head frame, extrinsic) each uniform in [-30, 30] deg; the position is uniform among
  the places that keep the inner ear (with its capsule) 2 mm inside the field of view.

Imaging draws: Gaussian point-spread function with FWHM uniform in [0.4, 0.7] mm
(clinical temporal-bone CT), white Gaussian noise with sigma uniform in [10, 40] HU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
from scipy.spatial.transform import Rotation

from cochleaai.shape.params import DEFORMABLE_LOWER, DEFORMABLE_UPPER, PARAM_NAMES


@dataclass(frozen=True)
class ProfileClass:
    """One component of the shape prior: its weight and the Gaussians of a and alpha."""

    name: str
    weight: float
    a: Tuple[float, float]          # (mean, sd) in mm
    alpha: Tuple[float, float]      # (mean, sd) in mm


#: The two profile classes (the bimodal a and alpha).
PROFILE_CLASSES: Tuple[ProfileClass, ...] = (
    ProfileClass("flat", 0.6, (3.75, 0.14), (0.30, 0.12)),
    ProfileClass("roller-coaster", 0.4, (4.35, 0.14), (0.95, 0.12)),
)
#: (mean, sd) of the unimodal parameters.
B_PRIOR = (0.150, 0.010)
PHI_PRIOR = (0.2, 0.3)

ROI_ROTATION_SD_DEG = 2.0
ROI_ROTATION_MAX_DEG = 5.0
ROI_TRANSLATION_SD_MM = 0.2
ROI_TRANSLATION_MAX_MM = 0.5
TEMPORAL_ROTATION_MAX_DEG = 30.0

PSF_FWHM_RANGE_MM = (0.4, 0.7)
NOISE_SIGMA_RANGE_HU = (10.0, 40.0)

_TRIES = 100


def _truncated_normal(rng: np.random.Generator, mean: float, sd: float, lo: float, hi: float) -> float:
    for _ in range(_TRIES):
        v = rng.normal(mean, sd)
        if lo <= v <= hi:
            return float(v)
    return float(np.clip(v, lo, hi))


def sample_shape(rng=None, return_class: bool = False):
    """Draw the deformable parameters ``[a, b, alpha, phi]`` from the phantom's shape prior.

    ``rng``: a ``numpy.random.Generator`` (or an int seed, or None for a fresh generator).
    With ``return_class`` the name of the drawn profile class is returned as well.
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    lo, hi = DEFORMABLE_LOWER, DEFORMABLE_UPPER
    weights = np.array([c.weight for c in PROFILE_CLASSES])
    cls = PROFILE_CLASSES[int(rng.choice(len(PROFILE_CLASSES), p=weights / weights.sum()))]
    a = _truncated_normal(rng, *cls.a, lo[0], hi[0])
    b = _truncated_normal(rng, *B_PRIOR, lo[1], hi[1])
    alpha = _truncated_normal(rng, *cls.alpha, lo[2], hi[2])
    phi = _truncated_normal(rng, *PHI_PRIOR, lo[3], hi[3])
    out = np.array([a, b, alpha, phi])
    return (out, cls.name) if return_class else out


def prior_description() -> dict:
    """The prior's numbers as a JSON-serialisable dict (stored in every phantom's truth)."""
    return {
        "profile_classes": [{"name": c.name, "weight": c.weight, "a_mean_sd": list(c.a),
                             "alpha_mean_sd": list(c.alpha)} for c in PROFILE_CLASSES],
        "b_mean_sd": list(B_PRIOR), "phi_mean_sd": list(PHI_PRIOR),
        "truncation": {n: [float(l), float(h)] for n, l, h in
                       zip(PARAM_NAMES[:4], DEFORMABLE_LOWER, DEFORMABLE_UPPER)},
    }


def sample_roi_pose_noise(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Small pose noise of the ROI template: (rotation vector in rad, translation in mm)."""
    rot = np.clip(rng.normal(0.0, ROI_ROTATION_SD_DEG, 3), -ROI_ROTATION_MAX_DEG, ROI_ROTATION_MAX_DEG)
    shift = np.clip(rng.normal(0.0, ROI_TRANSLATION_SD_MM, 3), -ROI_TRANSLATION_MAX_MM, ROI_TRANSLATION_MAX_MM)
    return np.radians(rot), shift


def sample_temporal_rotation(rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """A random rotation about the head axes: (3x3 matrix, the Euler angles x, y, z in degrees)."""
    angles = rng.uniform(-TEMPORAL_ROTATION_MAX_DEG, TEMPORAL_ROTATION_MAX_DEG, 3)
    return Rotation.from_euler("xyz", angles, degrees=True).as_matrix(), angles


def sample_imaging(rng: np.random.Generator) -> Tuple[float, float]:
    """(PSF FWHM in mm, noise sigma in HU)."""
    return float(rng.uniform(*PSF_FWHM_RANGE_MM)), float(rng.uniform(*NOISE_SIGMA_RANGE_HU))
