"""The 10 shape parameters of the cochlea model, their order, initial values and bounds.

Vector order: ``[a, b, alpha, phi, rx, ry, rz, tx, ty, tz]``

* ``a`` (mm), ``b`` (1/rad): radial centerline, logarithmic spiral ``r = a exp(-b theta)``.
* ``alpha`` (mm), ``phi`` (rad): longitudinal centerline, damped sinusoid amplitude and phase.
* ``rx, ry, rz``: rotation vector (axis * angle, rad) of the model frame in the image frame.
* ``tx, ty, tz`` (mm): position of the model origin (on the modiolar axis, at the base)
  in image (LPS) coordinates.

A model point ``y`` maps to the image as ``x = R(r) y + t``. (Thesis section 3.10.1 writes
the inverse map; this form keeps ``t`` readable as "where the cochlea is".)
"""
from __future__ import annotations

import numpy as np

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


def default_params(rotation=(0.0, 0.0, 0.0), translation=(0.0, 0.0, 0.0)) -> np.ndarray:
    """The 10-vector at the thesis initial shape with the given pose."""
    return np.concatenate([DEFAULT_DEFORMABLE, np.asarray(rotation, float),
                           np.asarray(translation, float)])


def bounds(rotation_range: float = np.pi, translation_range: float = 1e3):
    """(lower, upper) 10-vectors; the pose is bounded only loosely."""
    lo = np.concatenate([DEFORMABLE_LOWER, -rotation_range * np.ones(3), -translation_range * np.ones(3)])
    hi = np.concatenate([DEFORMABLE_UPPER, rotation_range * np.ones(3), translation_range * np.ones(3)])
    return lo, hi


def as_dict(theta) -> dict:
    return {n: float(v) for n, v in zip(PARAM_NAMES, np.asarray(theta, float))}


def from_dict(d: dict) -> np.ndarray:
    return np.array([float(d[n]) for n in PARAM_NAMES])
