"""Classic sinogram-domain metal artifact reduction that works from the image alone.

No raw data is needed: the post-operative image is reprojected with a virtual fan-beam
scanner (monochromatic, ``mu`` proportional to HU + 1000), and the trace of the metal (a
mask given by the caller) in the sinogram is repaired:

* ``li``: linear interpolation across the trace in every detector row (Kalender, Hebel &
  Ebersberger, Radiology 164 (1987) 576-577);
* ``nmar``: the same interpolation after dividing by the projection of a prior image in which
  air, soft tissue and bone are flattened to class values, then multiplying back (Meyer,
  Raupach, Lell, Schmidt & Kachelriess, Med. Phys. 37 (2010) 5482-5493);
* ``bhc``: a metal beam-hardening correction after Verburg & Seco (Med. Phys. 39 (2012)
  1268-1279) as in the open implementations compared by the thesis: the metal's apparent
  contribution (image minus LI) is fitted as a cubic polynomial of the metal path length,
  and its non-linear part is removed.

The corrected image is the input plus the filtered back-projection of the sinogram change, so
regions the correction does not touch keep their own resolution and noise (reconstructing
the whole reprojection would blur them); the metal voxels are put back on request. The
choice of method, the threshold segmentation of the metal, the ROI and the image without
metal are the work of :func:`cochleaai.mar.dispatch.reduce_metal_artifacts`, the entry point.
"""
from __future__ import annotations

from typing import List

import numpy as np
from scipy.ndimage import binary_dilation, gaussian_filter

from cochleaai.errors import CochleaAIError
from cochleaai.mar.methods import CLASSIC_METHODS
from cochleaai.progress import Progress
from cochleaai.simulation.projector import FanBeamGeometry, RoiGrid, roi_projector

#: A lighter virtual scanner than the simulation's: enough views for a 15-mm ROI.
MAR_GEOMETRY = FanBeamGeometry(n_views=360, fan_radius_mm=20.0)


def interpolate_trace(rows: np.ndarray, trace: np.ndarray) -> np.ndarray:
    """Linear interpolation along the last axis over the ``trace`` positions (vectorised).

    Positions before the first or after the last clean sample take the nearest clean value.
    """
    n = rows.shape[-1]
    idx = np.arange(n)
    clean = ~trace
    prev = np.maximum.accumulate(np.where(clean, idx, -1), axis=-1)
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(clean, idx, n), -1), axis=-1), -1)
    has_prev, has_next = prev >= 0, nxt < n
    p = np.clip(prev, 0, n - 1)
    q = np.clip(nxt, 0, n - 1)
    vp = np.take_along_axis(rows, p, -1)
    vq = np.take_along_axis(rows, q, -1)
    span = np.maximum(q - p, 1)
    t = (idx - p) / span
    lin = vp + t * (vq - vp)
    filled = np.where(has_prev & has_next, lin, np.where(has_prev, vp, vq))
    return np.where(trace, filled, rows).astype(rows.dtype)


def _hu_to_mu(hu: np.ndarray) -> np.ndarray:
    """The virtual scanner's attenuation: relative to water (water 1, air 0), never negative."""
    return np.clip(hu / 1000.0 + 1.0, 0.0, None)


def _prior_image(li_hu: np.ndarray, spacing) -> np.ndarray:
    """NMAR prior: smoothed LI image with air -> -1000 and soft tissue -> 0 HU, bone kept."""
    smooth = gaussian_filter(li_hu, sigma=(0, 0.5 / spacing[1], 0.5 / spacing[0]))
    prior = np.where(smooth < -500.0, -1000.0, np.where(smooth < 300.0, 0.0, smooth))
    return prior.astype(np.float32)


def correct_sinogram(img: np.ndarray, metal: np.ndarray, spacing, method: str, keep_metal: bool,
                     geometry: FanBeamGeometry, p: Progress, messages: List[str]) -> np.ndarray:
    """``img`` (float32 HU, z y x) with the metal trace of ``metal`` repaired by ``method``
    (``li``, ``nmar`` or ``bhc``), slice by slice; only slices that hold metal change.
    ``keep_metal`` puts the metal voxels back; notes go to ``messages``."""
    if method not in CLASSIC_METHODS:
        raise CochleaAIError(f"Unknown sinogram MAR method {method!r}; choose one of: {', '.join(CLASSIC_METHODS)}.")
    p(0.05, "reprojecting the image")
    grid = RoiGrid(img.shape[1], img.shape[2], float(spacing[1]), float(spacing[0]))
    proj = roi_projector(geometry, grid)
    # a one-voxel in-plane margin catches the partial-volume rim of the metal
    trace_mask = binary_dilation(metal, structure=np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool))
    slices = np.flatnonzero(trace_mask.reshape(trace_mask.shape[0], -1).any(1))
    work = img[slices]
    sino = proj.project_windows(_hu_to_mu(work))
    trace = proj.project_windows(trace_mask[slices].astype(np.float32)) > 1e-3
    p(0.3, CLASSIC_METHODS[method])
    li = interpolate_trace(sino, trace)
    if method == "li":
        corrected = li
    elif method == "nmar":
        li_img = work + 1000.0 * proj.fbp_windows(li - sino)
        prior = _prior_image(np.where(trace_mask[slices], 0.0, li_img), spacing)
        prior_sino = proj.project_windows(_hu_to_mu(prior))
        delta = np.float32(0.01 * max(float(prior_sino.max()), 1e-6))
        norm = (sino + delta) / (prior_sino + delta)
        corrected = interpolate_trace(norm, trace) * (prior_sino + delta) - delta
    else:  # bhc
        path = proj.project_windows(metal[slices].astype(np.float32))   # metal path length (mm)
        on = trace & (path > 0)
        if on.sum() < 4:
            corrected = sino
        else:
            a = path[on].astype(np.float64)
            design = np.stack([a, a ** 2, a ** 3], 1)
            coef, *_ = np.linalg.lstsq(design, (sino - li)[on].astype(np.float64), rcond=None)
            corrected = sino - (coef[1] * path ** 2 + coef[2] * path ** 3).astype(np.float32)
            messages.append("BHC polynomial of the metal path length (mm): "
                            + ", ".join(f"{c:.4g}" for c in coef))
    p(0.75, "filtered back-projection")
    change = 1000.0 * proj.fbp_windows((corrected - sino).astype(np.float32))
    result = work + change
    if keep_metal:
        result = np.where(metal[slices], work, result)
    out = img.copy()
    out[slices] = result
    return out
