"""Geometry of the parametric cochlea: centerline and swept elliptic cross-section.

The model frame has the modiolar axis as +z (pointing to the apex) and its origin on that
axis at the base; the basal turn starts (round window end, polar angle 0) on +x.

Centerline (thesis section 3.10.2, coefficients re-derived here from the joining
conditions and checked numerically in the tests):

* radial part ``r(theta)``: a parabola for ``theta < theta0 = 5 pi / 6`` with ``r(0) = p0 = 5 mm``,
  then the logarithmic spiral ``a exp(-b theta)``; value and slope agree at ``theta0``;
* longitudinal part ``z(theta)``: ``alpha exp(-beta theta) cos(theta + phi) + q1 theta`` with
  ``beta = 0.2 /rad`` and ``q1 = 0.225 mm/rad``, then over the last half turn a parabola with
  the same value and slope at ``theta1 = theta_max - pi`` and zero slope at ``theta_max``.

Cross-section: an ellipse in the plane through the modiolar axis (the mid-modiolar
plane, nearly normal to the centerline because the spiral rises slowly), centred on the
centerline, with fixed width/height/tilt profiles along the duct. The duct is closed by
two rounded caps: the cross-section shrinks as ``cos(omega)`` while the centerline runs on
for ``CAP_BASE`` / ``CAP_APEX`` radians. Within the cochlea, the part of the ellipse below
its major axis (basal side, -z) is the scala tympani, the part above the scala vestibuli.

Everything is written in torch so that derivatives with respect to the deformable
parameters come from automatic differentiation.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from cochleaai.threads import torch_threads

THETA0 = 5.0 * math.pi / 6.0      # junction of the radial parabola and the spiral (rad)
P0 = 5.0                          # radius of the centerline at the round window (mm)
BETA = 0.2                        # damping of the longitudinal sinusoid (1/rad)
Q1 = 0.225                        # rise of the centerline per radian (mm/rad)
TURNS = 2.625                     # cochlear turns (2.5-2.75, Erixon et al. 2009)
THETA_MAX = TURNS * 2.0 * math.pi
THETA1 = THETA_MAX - math.pi      # start of the flattened last half turn

# Cross-section profiles (mm, rad) as linear functions of u = theta / theta_max in [0, 1]:
# basal -> apical width and height of the duct, and its tilt. Width and height are the
# medians of the profiles fitted to the expert labels of six real temporal-bone CT scans
# (Wimmer et al. 2019, Data in Brief 27, 104782; procedure and per-specimen figures in
# Resources/shape-calibration.json, ``python -m cochleaai calibrate-shape``). At clinical
# CT resolution the labelled lumen is wider than the histological scalae (about 1.5 mm
# basally, Wysocki 1999), and the upper turns merge into one space, which is why the
# apical height sits at the bound of the calibration fit.
WIDTH = (2.45, 1.47)
HEIGHT = (1.83, 1.80)
#: The profile the calibration's cross-section factors multiply (the model's profile
#: before calibration), so that rerunning it reproduces the shipped table.
REFERENCE_WIDTH = (1.5, 0.8)
REFERENCE_HEIGHT = (1.6, 0.9)
TILT = (0.15, 0.0)
# The half width never exceeds this fraction of the centerline radius near the apex,
# so the duct never crosses the modiolar axis (a smooth minimum, see _cross_section).
MAX_HALF_WIDTH_OVER_RADIUS = 0.8
CAP_BASE = 0.18                   # extra polar angle of the rounded basal cap (rad)
CAP_APEX = 0.6                    # extra polar angle of the rounded apical cap (rad)

# Tube parameter tau: [-pi/2, 0] basal cap, [0, theta_max] duct, [theta_max, theta_max + pi/2] apical cap.
TAU_MIN = -math.pi / 2.0
TAU_MAX = THETA_MAX + math.pi / 2.0


def single_threaded_torch():
    """Run torch on one thread: the 1D geometry arrays are small, and a multi-threaded torch
    op waits for every worker, which costs milliseconds per op when a core is busy."""
    return torch_threads(1)


def _as_t(p):
    return p if torch.is_tensor(p) else torch.as_tensor(np.asarray(p, dtype=float), dtype=torch.float64)


def radial(theta, a, b):
    """Radial centerline component r(theta) in mm."""
    c2 = a * torch.exp(-b * THETA0)           # r(theta0)
    c1 = -b * c2                              # r'(theta0)
    p2 = (c1 * THETA0 - c2 + P0) / THETA0 ** 2
    p1 = (-c1 * THETA0 + 2.0 * c2 - 2.0 * P0) / THETA0
    poly = (p2 * theta + p1) * theta + P0
    spiral = a * torch.exp(-b * theta)
    return torch.where(theta < THETA0, poly, spiral)


def longitudinal(theta, alpha, phi):
    """Longitudinal centerline component z(theta) in mm."""
    def g(t):
        return alpha * torch.exp(-BETA * t) * torch.cos(t + phi) + Q1 * t

    th1 = torch.as_tensor(THETA1, dtype=theta.dtype)
    g1 = g(th1)
    d1 = alpha * torch.exp(-BETA * th1) * (-BETA * torch.cos(th1 + phi) - torch.sin(th1 + phi)) + Q1
    c = -d1 / (2.0 * (THETA_MAX - THETA1))    # zero slope at theta_max
    dt = theta - THETA1
    flat = g1 + d1 * dt + c * dt * dt
    return torch.where(theta < THETA1, g(theta), flat)


def tau_to_theta(tau):
    """Polar angle and cap shrink factor (1 on the duct, cos(omega) on the caps) of tau."""
    base = tau < 0
    apex = tau > THETA_MAX
    om_b = torch.clamp(tau, min=TAU_MIN, max=0.0)
    om_a = torch.clamp(tau - THETA_MAX, min=0.0, max=math.pi / 2.0)
    theta = torch.where(base, CAP_BASE * torch.sin(om_b),
                        torch.where(apex, THETA_MAX + CAP_APEX * torch.sin(om_a), tau))
    shrink = torch.where(base, torch.cos(om_b), torch.where(apex, torch.cos(om_a), torch.ones_like(tau)))
    return theta, shrink


@contextlib.contextmanager
def cross_section_profile(width, height):
    """Use another width and height profile (mm, base and apex) inside the block. Shape
    functions cache tables per shape: use a new ``ShapeFunction`` inside the block."""
    global WIDTH, HEIGHT
    saved = WIDTH, HEIGHT
    WIDTH, HEIGHT = tuple(width), tuple(height)
    try:
        yield
    finally:
        WIDTH, HEIGHT = saved


def _section_scales(section, u):
    """Width and height factors along the duct from 0, 2 or 4 scale parameters."""
    if section is None or len(section) == 0:
        return 1.0, 1.0
    if len(section) == 2:
        return section[0], section[1]
    return section[0] + (section[1] - section[0]) * u, section[2] + (section[3] - section[2]) * u


def _cross_section(theta, r, section=None):
    """2x2 matrix M(theta) mapping (cos s, sin s) to (radial, axial) offsets from the centerline."""
    u = torch.clamp(theta / THETA_MAX, 0.0, 1.0)
    width_scale, height_scale = _section_scales(section, u)
    half_w = 0.5 * width_scale * (WIDTH[0] + (WIDTH[1] - WIDTH[0]) * u)
    half_h = 0.5 * height_scale * (HEIGHT[0] + (HEIGHT[1] - HEIGHT[0]) * u)
    tilt = TILT[0] + (TILT[1] - TILT[0]) * u
    q = half_w / (MAX_HALF_WIDTH_OVER_RADIUS * r)
    soft = (1.0 + q ** 4) ** -0.25            # ~1 while the duct is wide, ~0.8 r / half_w at the apex
    ca, sa = torch.cos(tilt), torch.sin(tilt)
    return (soft * ca * half_w, -soft * sa * half_h, soft * sa * half_w, soft * ca * half_h)


def tube_functions(tau, deformable):
    """The 1D functions of tau that define the surface: (N, 7) tensor.

    ``deformable``: a, b, alpha, phi, then 0, 2 or 4 cross-section scales (see
    :mod:`.params`); or a (k, N) tensor of them, one column per tau.

    Columns: polar angle theta, centerline r, centerline z, then M11, M12, M21, M22 of the
    cross-section (cap shrink included). A surface point is
    ``(R cos theta, R sin theta, Z)`` with ``R = r + M11 cos s + M12 sin s`` and
    ``Z = z + M21 cos s + M22 sin s``.
    """
    a, b, alpha, phi = deformable[0], deformable[1], deformable[2], deformable[3]
    theta, shrink = tau_to_theta(tau)
    r = radial(theta, a, b)
    z = longitudinal(theta, alpha, phi)
    m11, m12, m21, m22 = _cross_section(theta, r, deformable[4:])
    return torch.stack([theta, r, z, shrink * m11, shrink * m12, shrink * m21, shrink * m22], dim=-1)


def surface_points(tau, s, deformable):
    """Surface points (..., 3) at tube parameters (tau, s), in the model frame."""
    f = tube_functions(tau, deformable)
    cs, sn = torch.cos(s), torch.sin(s)
    R = f[..., 1] + f[..., 3] * cs + f[..., 4] * sn
    Z = f[..., 2] + f[..., 5] * cs + f[..., 6] * sn
    return torch.stack([R * torch.cos(f[..., 0]), R * torch.sin(f[..., 0]), Z], dim=-1)


def centerline_points(theta, deformable):
    """Centerline points (..., 3) at polar angles ``theta`` (duct only, no caps)."""
    a, b, alpha, phi = (_as_t(deformable)[i] for i in range(4))
    theta = _as_t(theta)
    r = radial(theta, a, b)
    return torch.stack([r * torch.cos(theta), r * torch.sin(theta), longitudinal(theta, alpha, phi)], -1)


#: The scala tympani's centreline as a multiple of the cross-section's second column:
#: the centroid of a half ellipse lies 4/(3 pi) of the semi-axis from the centre, and the
#: lower half is the side of negative s (sin s < 0).
SCALA_TYMPANI_OFFSET = -4.0 / (3.0 * math.pi)


def scala_tympani_points(theta, deformable):
    """Points (..., 3) on the scala tympani centerline (centroid of the lower half-ellipse)."""
    f = tube_functions(_as_t(theta), _as_t(deformable))
    R = f[..., 1] + SCALA_TYMPANI_OFFSET * f[..., 4]
    Z = f[..., 2] + SCALA_TYMPANI_OFFSET * f[..., 6]
    return torch.stack([R * torch.cos(f[..., 0]), R * torch.sin(f[..., 0]), Z], dim=-1)
