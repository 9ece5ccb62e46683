"""Exact metal path lengths of the electrode array, per detector sub-ray.

Why not the voxelised metal: a contact is a platinum band about 40 um thick, far below the
0.2 mm voxel. Spread over whole voxels it becomes a blocky, low-density cube whose sharp
voxel edges alias in the projector (the diagonal hatching of the old simulation) and whose
rays never meet the long tangential paths through the band's wall that starve the detector.
Here every contact is a hollow finite cylinder and the lead a chain of short solid
cylinders (metal share ``lead_fill``); their chord lengths are computed analytically for
several sub-rays of each reading: across the channel (the detector aperture) and along z
(the slice sensitivity profile). The simulation averages the *transmitted intensities* of
the sub-rays, which is what a detector element does; taking the log of that average gives
the exponential edge-gradient effect at every metal edge.

Coordinates are the scanner frame of :mod:`cochleaai.simulation.projector`: x and y in mm in the
scanner plane, z in mm along the slices (slice ``k`` at ``k * sz``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from cochleaai.simulation.projector import FanBeamGeometry, RoiGrid


@dataclass(frozen=True)
class Cylinders:
    """Finite cylinders (N of each): centre, unit axis, half length, outer and inner radius
    (inner 0 = solid) and the metal share of their material (1 = solid metal)."""

    centre: np.ndarray      # (N, 3) mm, scanner frame
    axis: np.ndarray        # (N, 3)
    half_length: np.ndarray
    outer: np.ndarray
    inner: np.ndarray
    share: np.ndarray

    def __len__(self) -> int:
        return len(self.centre)


@dataclass(frozen=True)
class SubRays:
    """Sub-ray offsets and weights: ``channel`` offsets in channel pitches (equal weights: the
    detector aperture) and ``z`` offsets in mm with their weights (the slice profile)."""

    channel: Tuple[float, ...] = (-1.0 / 3.0, 0.0, 1.0 / 3.0)
    z_mm: Tuple[float, ...] = (0.0,)
    z_weight: Tuple[float, ...] = (1.0,)

    @property
    def n(self) -> int:
        return len(self.channel) * len(self.z_mm)

    def weights(self) -> np.ndarray:
        """(n,) weights, summing to one; sub-ray index = z index * channels + channel index."""
        wz = np.asarray(self.z_weight, float)
        wz = wz / wz.sum()
        return (wz[:, None] * np.full(len(self.channel), 1.0 / len(self.channel))[None, :]).reshape(-1)


def slice_profile(fwhm_mm: float, n: int = 3) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Offsets (mm) and weights of ``n`` samples of a Gaussian slice profile of ``fwhm_mm``,
    spaced to cover +-1 standard deviation each side (``n == 1``: the slice centre only)."""
    if n <= 1 or fwhm_mm <= 0:
        return (0.0,), (1.0,)
    sd = fwhm_mm / 2.3548
    z = np.linspace(-1.5 * sd, 1.5 * sd, n)
    w = np.exp(-0.5 * (z / sd) ** 2)
    return tuple(z.tolist()), tuple((w / w.sum()).tolist())


def _cylinder_chord(ox, oy, oz, dx, dy, c, a, h, r) -> np.ndarray:
    """Chord length of rays (origin (ox, oy, oz), unit direction (dx, dy, 0)) inside one
    finite solid cylinder (centre c, unit axis a, half length h, radius r)."""
    wx, wy, wz = ox - c[0], oy - c[1], oz - c[2]
    da = dx * a[0] + dy * a[1]
    wa = wx * a[0] + wy * a[1] + wz * a[2]
    # components perpendicular to the axis
    dpx, dpy, dpz = dx - da * a[0], dy - da * a[1], -da * a[2]
    wpx, wpy, wpz = wx - wa * a[0], wy - wa * a[1], wz - wa * a[2]
    qa = dpx * dpx + dpy * dpy + dpz * dpz
    qb = wpx * dpx + wpy * dpy + wpz * dpz
    qc = wpx * wpx + wpy * wpy + wpz * wpz - r * r
    with np.errstate(divide="ignore", invalid="ignore"):
        disc = qb * qb - qa * qc
        root = np.sqrt(np.clip(disc, 0.0, None))
        t1, t2 = (-qb - root) / qa, (-qb + root) / qa
        # a ray along the axis is inside for all t when it runs within the radius
        par = qa < 1e-12
        t1 = np.where(par, np.where(qc <= 0, -np.inf, np.inf), np.where(disc > 0, t1, np.inf))
        t2 = np.where(par, np.where(qc <= 0, np.inf, -np.inf), np.where(disc > 0, t2, -np.inf))
        s1, s2 = (-h - wa) / da, (h - wa) / da
        flat = np.abs(da) < 1e-12
        lo = np.where(flat, np.where(np.abs(wa) <= h, -np.inf, np.inf), np.minimum(s1, s2))
        hi = np.where(flat, np.where(np.abs(wa) <= h, np.inf, -np.inf), np.maximum(s1, s2))
    return np.clip(np.minimum(t2, hi) - np.maximum(t1, lo), 0.0, None)


def metal_subray_lengths(cyl: Cylinders, geometry: FanBeamGeometry, grid: RoiGrid, n_slices: int,
                         slice_mm: float, channels_of_window: np.ndarray, sub: SubRays):
    """Metal path lengths (mm of solid metal) of every sub-ray that meets the array.

    ``channels_of_window``: ``(views, W)`` absolute channel of each window position (the
    projector's in-window layout). Returns ``(flat, lengths)``: flat indices into
    ``(n_slices, views, W)`` of the readings hit, and ``(n_hit, sub.n)`` lengths.
    """
    g = geometry
    n_views, width = channels_of_window.shape
    betas = g.betas
    src = g.sid_mm * np.stack([np.cos(betas), np.sin(betas)], -1)          # (V, 2)
    off = 0.25 if g.quarter_offset else 0.0
    first = channels_of_window[:, 0]
    keys, vals = [], []
    zc = np.asarray(sub.z_mm, float)
    cc = np.asarray(sub.channel, float)
    for n in range(len(cyl)):
        c, a, h = cyl.centre[n], cyl.axis[n], float(cyl.half_length[n])
        reach = float(np.hypot(h, cyl.outer[n]))
        # slices whose sub-planes can cut the bounding sphere
        k_lo = int(np.floor((c[2] - reach - zc.max()) / slice_mm))
        k_hi = int(np.ceil((c[2] + reach - zc.min()) / slice_mm))
        ks = np.arange(max(k_lo, 0), min(k_hi, n_slices - 1) + 1)
        if ks.size == 0:
            continue
        # channels whose rays pass within the sphere, per view
        vx, vy = c[0] - src[:, 0], c[1] - src[:, 1]
        dist = np.hypot(vx, vy)
        gam = np.angle(np.exp(1j * (np.arctan2(vy, vx) - (betas + np.pi))))
        half = np.arcsin(np.clip(reach / dist, 0.0, 1.0)) / g.dgamma + 1.0
        centre_ch = gam / g.dgamma + (g.n_channels - 1) / 2.0 - off
        lo = np.floor(centre_ch - half).astype(int)
        span = int(np.ceil(2 * half.max())) + 2
        ch = lo[:, None] + np.arange(span)[None, :]                          # (V, span)
        pos = ch - first[:, None]
        ok = (pos >= 0) & (pos < width) & (ch >= 0) & (ch < g.n_channels)
        if not ok.any():
            continue
        v_idx = np.broadcast_to(np.arange(n_views)[:, None], ch.shape)[ok]
        p_idx = pos[ok]
        chf = ch[ok].astype(float)
        lengths = np.zeros((ks.size, v_idx.size, zc.size, cc.size), np.float32)
        for jc, dc in enumerate(cc):
            gamma = (chf + dc - (g.n_channels - 1) / 2.0 + off) * g.dgamma
            ang = betas[v_idx] + np.pi + gamma
            dx, dy = np.cos(ang), np.sin(ang)
            ox, oy = src[v_idx, 0], src[v_idx, 1]
            for jz, dz in enumerate(zc):
                oz = ks[:, None] * slice_mm + dz
                outer = _cylinder_chord(ox[None], oy[None], oz, dx[None], dy[None], c, a, h, cyl.outer[n])
                if cyl.inner[n] > 0:
                    outer = outer - _cylinder_chord(ox[None], oy[None], oz, dx[None], dy[None], c, a, h,
                                                    cyl.inner[n])
                lengths[:, :, jz, jc] = cyl.share[n] * outer
        lengths = lengths.reshape(ks.size, v_idx.size, -1)
        hit = lengths.max(-1) > 0
        if not hit.any():
            continue
        kk, rr = np.nonzero(hit)
        keys.append((ks[kk] * n_views + v_idx[rr]) * width + p_idx[rr])
        vals.append(lengths[kk, rr])
    if not keys:
        return np.zeros(0, np.int64), np.zeros((0, sub.n), np.float32)
    keys = np.concatenate(keys)
    vals = np.concatenate(vals)
    flat, inverse = np.unique(keys, return_inverse=True)
    out = np.zeros((flat.size, sub.n), np.float32)
    np.add.at(out, inverse, vals)
    return flat, out
