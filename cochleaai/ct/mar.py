"""Classic sinogram-domain metal artifact reduction that works from the image alone.

No raw data is needed: the post-operative image is reprojected with a virtual fan-beam
scanner (monochromatic, ``mu`` proportional to HU + 1000), metal is segmented by a HU
threshold, and its trace in the sinogram is repaired:

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
the whole reprojection would blur them); the metal voxels are put back at the end. An
image without metal comes back unchanged.

MARGAN returns the network's metal-free estimate everywhere: the threshold segmentation
holds the metal *and* its blooming (two to three times the metal's volume, over the lumen
around the array), and copying it back would restore the worst of the artifact. The
contacts come as markups instead; ``keep_metal=True`` copies the segmented metal back, for
a picture that shows the array.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from ..errors import CochleaAIError
from ..progress import Progress
from ..volume import Volume
from .projector import FanBeamGeometry, RoiGrid, roi_projector

METHODS = {"margan": "MARGAN, 3D GAN trained on simulated pairs (Wang et al. 2021)",
           "nmar": "Normalized MAR (Meyer 2010)", "li": "Linear interpolation (Kalender 1987)",
           "bhc": "Metal beam-hardening correction (after Verburg & Seco 2012)"}
#: The classic default, used when no MARGAN model is installed.
CLASSIC_DEFAULT = "nmar"


def default_method() -> str:
    """``margan`` when its shipped model is present, else NMAR."""
    from ..margan.model_io import default_model_available

    return "margan" if default_model_available() else CLASSIC_DEFAULT


DEFAULT_METHOD = CLASSIC_DEFAULT
DEFAULT_THRESHOLD_HU = 3000.0
#: A lighter virtual scanner than the simulation's: enough views for a 15-mm ROI.
MAR_GEOMETRY = FanBeamGeometry(n_views=360, fan_radius_mm=20.0)


@dataclass
class MarResult:
    image: Volume                       # float32 HU
    metal_mask: np.ndarray              # bool, the threshold segmentation (before dilation)
    method: str
    messages: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def has_metal(self) -> bool:
        return bool(self.metal_mask.any())


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
    from scipy.ndimage import gaussian_filter

    smooth = gaussian_filter(li_hu, sigma=(0, 0.5 / spacing[1], 0.5 / spacing[0]))
    prior = np.where(smooth < -500.0, -1000.0, np.where(smooth < 300.0, 0.0, smooth))
    return prior.astype(np.float32)


def _check_roi_border(mask: np.ndarray, roi) -> None:
    if roi is None:
        return
    (k0, k1), (j0, j1), (i0, i1) = roi
    inner = mask[k0:k1, j0:j1, i0:i1]
    grown = np.zeros_like(mask)
    grown[max(k0 - 1, 0):k1 + 1, max(j0 - 1, 0):j1 + 1, max(i0 - 1, 0):i1 + 1] = True
    ring = grown.copy()
    ring[k0:k1, j0:j1, i0:i1] = False
    if inner.any() and (mask & ring).any():
        raise CochleaAIError("Metal crosses the border of the chosen ROI; enlarge the ROI so that it "
                             "contains the whole electrode array, or use no ROI.")


_LOADED = {}


def _margan_model(model):
    """A loaded MARGAN model: ``model`` itself, or read (once) from its path or the default."""
    from ..margan.model_io import MarganModel, default_model_path, load_model

    if isinstance(model, MarganModel):
        return model
    from pathlib import Path

    key = str(Path(model if model is not None else default_model_path()).absolute())
    from ..model_files import model_paths

    pt = model_paths(key)[0]
    stamp = (key, pt.stat().st_mtime_ns if pt.is_file() else None)
    if stamp not in _LOADED:
        _LOADED.clear()
        _LOADED[stamp] = load_model(key)
    return _LOADED[stamp]


def reduce_metal_artifacts(volume: Volume, method: str = DEFAULT_METHOD,
                           threshold_hu: float = DEFAULT_THRESHOLD_HU, roi=None,
                           geometry: FanBeamGeometry = MAR_GEOMETRY, progress=None,
                           model=None, keep_metal: Optional[bool] = None) -> MarResult:
    """Reduce metal artifacts in a post-operative CT volume (HU).

    ``roi``: optional ``((k0, k1), (j0, j1), (i0, i1))`` index box; only it is corrected and
    the rest of the volume is copied. ``model``: for ``margan``, a loaded model or a model
    path (default: the shipped one). ``keep_metal``: copy the segmented metal back into the
    output (default: yes for the sinogram methods, no for MARGAN, see above). The input is
    never modified.
    """
    from .simulation import check_hu_volume

    t_start = time.perf_counter()
    p = Progress.wrap(progress)
    key = str(method).strip().lower()
    if key not in METHODS:
        raise CochleaAIError(f"Unknown MAR method {method!r}; choose one of: {', '.join(METHODS)}.")
    if not np.isfinite(threshold_hu):
        raise CochleaAIError("The metal threshold must be a finite HU value.")
    messages = check_hu_volume(volume, "post-operative volume")
    full = np.asarray(volume.numeric_array(), dtype=np.float32)
    mask_all = full >= float(threshold_hu)
    if roi is not None:
        roi = tuple((max(0, int(a)), min(n, int(b))) for (a, b), n in zip(roi, full.shape))
        if any(b - a < 4 for a, b in roi):
            raise CochleaAIError("The ROI must span at least 4 voxels along each axis inside the volume.")
        _check_roi_border(mask_all, roi)
    box = tuple(slice(a, b) for a, b in roi) if roi is not None else (slice(None),) * 3
    img = full[box]
    metal = mask_all[box]
    out = full.copy()
    if not metal.any():
        messages.append(f"No metal found (no voxel at or above {threshold_hu:.0f} HU); the volume is "
                        "returned unchanged.")
        p(1.0, "no metal found")
        return MarResult(volume.copy(out), mask_all, key, messages, time.perf_counter() - t_start)
    if roi is None and (metal[0].any() or metal[-1].any() or metal[:, 0].any() or metal[:, -1].any()
                        or metal[:, :, 0].any() or metal[:, :, -1].any()):
        messages.append("Metal touches the border of the volume (for example the lead wire); metal "
                        "outside the volume cannot be corrected.")

    if key == "margan":
        from ..margan.inference import check_spacing, correct

        net = _margan_model(model)
        note = check_spacing(net, volume.spacing)
        if note:
            messages.append(note)
        result = correct(net, img, metal, volume.spacing, progress=p.stage(0.05, 0.95))
        if keep_metal:
            result = np.where(metal, img, result)
        out[box] = result
        p(1.0, "done")
        return MarResult(volume.copy(out.astype(np.float32)), mask_all, key, messages,
                         time.perf_counter() - t_start)

    from scipy.ndimage import binary_dilation

    p(0.05, "reprojecting the image")
    spacing = volume.spacing
    grid = RoiGrid(img.shape[1], img.shape[2], float(spacing[1]), float(spacing[0]))
    proj = roi_projector(geometry, grid)
    # a one-voxel in-plane margin catches the partial-volume rim of the metal
    trace_mask = binary_dilation(metal, structure=np.array([[[0, 1, 0], [1, 1, 1], [0, 1, 0]]], bool))
    slices = np.flatnonzero(trace_mask.reshape(trace_mask.shape[0], -1).any(1))
    work = img[slices]
    sino = proj.project_windows(_hu_to_mu(work))
    trace = proj.project_windows(trace_mask[slices].astype(np.float32)) > 1e-3
    p(0.3, f"{METHODS[key]}")
    li = interpolate_trace(sino, trace)
    if key == "li":
        corrected = li
    elif key == "nmar":
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
    if keep_metal is None or keep_metal:
        result = np.where(metal[slices], work, result)
    sub = out[box]
    sub[slices] = result
    out[box] = sub
    p(1.0, "done")
    return MarResult(volume.copy(out.astype(np.float32)), mask_all, key, messages,
                     time.perf_counter() - t_start)
