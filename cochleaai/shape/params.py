"""The 10 shape parameters of the cochlea model, their order, initial values and bounds.

Vector order: ``[a, b, alpha, phi, rx, ry, rz, tx, ty, tz]``

* ``a`` (mm), ``b`` (1/rad): radial centerline, logarithmic spiral ``r = a exp(-b theta)``.
* ``alpha`` (mm), ``phi`` (rad): longitudinal centerline, damped sinusoid amplitude and phase.
* ``rx, ry, rz``: rotation vector (axis * angle, rad) of the model frame in the image frame.
* ``tx, ty, tz`` (mm): position of the model origin (on the modiolar axis, at the base)
  in image (LPS) coordinates.

A model point ``y`` maps to the image as ``x = R(r) y + t``. (Thesis section 3.10.1 writes
the inverse map; this form keeps ``t`` readable as "where the cochlea is".)

Optional cross-section scales follow the 10 parameters (so indices 0-9 keep their
meaning): 2 more (``width_scale``, ``height_scale``: the 12-parameter variant, one factor
on the whole duct for each) or 4 more (the width and height factors at the base and at the
apex, linear along the duct in between: used to calibrate the profile on expert labels).
They multiply the default cross-section profile of :mod:`.geometry`.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cochleaai.errors import CochleaAIError

PARAM_NAMES = ("a", "b", "alpha", "phi", "rx", "ry", "rz", "tx", "ty", "tz")
DEFORMABLE = slice(0, 4)
ROTATION = slice(4, 7)
TRANSLATION = slice(7, 10)

#: Initial deformable values used in the thesis (section 3.4.3): a=4, b=0.15, alpha=0.6, phi=0.2.
DEFAULT_DEFORMABLE = np.array([4.0, 0.15, 0.6, 0.2])

#: Bounds of the deformable parameters: wide enough for the variability reported for
#: clinical CT (thesis Fig. 3.8), narrow enough that turns never touch each other.
DEFORMABLE_LOWER = np.array([3.2, 0.11, -0.2, -0.8])
DEFORMABLE_UPPER = np.array([4.8, 0.19, 1.3, 1.2])


#: Names of the optional cross-section scale parameters, by their number.
SECTION_NAMES = {0: (), 2: ("width_scale", "height_scale"),
                 4: ("width_scale_base", "width_scale_apex", "height_scale_base", "height_scale_apex")}
SECTION_LOWER, SECTION_UPPER = 0.5, 2.0


def n_section(theta) -> int:
    """Number of cross-section scale parameters in a parameter vector (0, 2 or 4)."""
    n = int(np.size(theta)) - 10
    if n not in SECTION_NAMES:
        raise CochleaAIError(f"A cochlea parameter vector has 10, 12 or 14 entries, got {np.size(theta)}: "
                             + ", ".join(PARAM_NAMES) + " (then optional cross-section scales).")
    return n


def deformable_of(theta) -> np.ndarray:
    """The parameters that change the shape (not the pose): a, b, alpha, phi and the scales."""
    theta = np.asarray(theta, float).reshape(-1)
    return np.concatenate([theta[DEFORMABLE], theta[10:]])


def with_pose(theta, pose) -> np.ndarray:
    """``theta`` with its 6 pose entries (rotation vector, translation) replaced."""
    out = np.asarray(theta, float).reshape(-1).copy()
    out[4:10] = np.asarray(pose, float).reshape(6)
    return out


def param_names(n: int = 10) -> tuple:
    return PARAM_NAMES + SECTION_NAMES[n - 10]


def default_params(rotation=(0.0, 0.0, 0.0), translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    """The 10-vector at the thesis initial shape with the given pose."""
    return np.concatenate([DEFAULT_DEFORMABLE, np.asarray(rotation, float),
                           np.asarray(translation, float)])


def bounds(rotation_range: float = np.pi, translation_range: float = 1e3, n_params: int = 10):
    """(lower, upper) vectors of ``n_params`` entries; the pose is bounded only loosely."""
    k = n_params - 10
    lo = np.concatenate([DEFORMABLE_LOWER, -rotation_range * np.ones(3), -translation_range * np.ones(3),
                         np.full(k, SECTION_LOWER)])
    hi = np.concatenate([DEFORMABLE_UPPER, rotation_range * np.ones(3), translation_range * np.ones(3),
                         np.full(k, SECTION_UPPER)])
    return lo, hi


def as_dict(theta) -> dict:
    theta = np.asarray(theta, float).reshape(-1)
    return {n: float(v) for n, v in zip(param_names(10 + n_section(theta)), theta)}


def from_dict(d: dict) -> np.ndarray:
    n = next((10 + k for k in (4, 2) if all(name in d for name in SECTION_NAMES[k])), 10)
    return np.array([float(d[name]) for name in param_names(n)])


def theta_from_record(record, source: str, advice: str) -> list:
    """The 10 shape parameters (floats, in :data:`PARAM_NAMES` order) of a record: a mapping
    ``{name: value}`` holding every name (other keys are ignored) or a sequence of exactly 10
    numbers. ``source`` starts the error message (what the record came from: "The table 'x'",
    a file name) and ``advice`` ends it (what to give instead)."""
    if isinstance(record, Mapping):
        missing = [k for k in PARAM_NAMES if k not in record]
        if missing:
            raise CochleaAIError(f"{source} lacks the shape parameters {', '.join(missing)}; {advice}")
        record = [record[k] for k in PARAM_NAMES]
    try:
        theta = [float(v) for v in record]
    except (TypeError, ValueError):
        theta = []
    if len(theta) != 10:
        raise CochleaAIError(f"{source} holds no 10 cochlea shape parameters; {advice}")
    return theta


def posterior_thetas(theta, covariance, samples: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    """``samples`` draws of all the fit's parameters (pose included) from its Laplace
    posterior with its standard deviations times ``scale`` (:mod:`cochleaai.planning.interval_scale`), the
    shape kept inside the model's bounds; row 0 is the fit itself."""
    theta = np.asarray(theta, float).reshape(-1)
    covariance = np.asarray(covariance, float)
    if covariance.shape != (theta.size, theta.size) or not np.all(np.isfinite(covariance)):
        raise CochleaAIError("The fit has no usable posterior covariance (wrong shape or not finite); segment again.")
    draws = np.random.default_rng(seed).multivariate_normal(theta, covariance * float(scale) ** 2,
                                                            size=int(samples), method="eigh")
    out = np.vstack([theta[None], draws])
    out[:, :4] = np.clip(out[:, :4], DEFORMABLE_LOWER, DEFORMABLE_UPPER)
    return out
