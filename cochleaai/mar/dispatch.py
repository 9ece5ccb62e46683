"""Metal artifact reduction of a post-operative CT: one entry point over MARGAN and the classic methods.

The metal is segmented by a HU threshold; an optional ROI limits the correction; an image without
metal comes back unchanged. MARGAN (:mod:`cochleaai.mar.margan`) returns the network's metal-free
estimate, its correction faded out far from the metal where it stops helping
(:mod:`cochleaai.mar.margan.reach`). The threshold segmentation holds the metal *and* its blooming (two to three
times the metal's volume, over the lumen around the array), and copying it back would restore the
worst of the artifact. The contacts come as markups instead; ``keep_metal=True`` copies the
segmented metal back, for a picture that shows the array. The sinogram methods
(:mod:`cochleaai.mar.classic`) keep the metal by default.

:func:`reduce_and_find_contacts` is the correction and the contact detection in one call
(what the Metal Artifact Reduction module runs in its worker process).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from cochleaai.contacts.detect import detect_contacts
from cochleaai.errors import CochleaAIError
from cochleaai.mar.classic import MAR_GEOMETRY, correct_sinogram
from cochleaai.mar.margan.inference import check_spacing, correct
from cochleaai.mar.margan.model_io import cached_model
from cochleaai.mar.methods import DEFAULT_METHOD, DEFAULT_THRESHOLD_HU, MAX_METAL_SHARE, METHODS
from cochleaai.markups import Markups
from cochleaai.progress import Progress
from cochleaai.simulation.ct import check_hu_volume
from cochleaai.simulation.projector import FanBeamGeometry
from cochleaai.volume import Volume


@dataclass
class MarResult:
    image: Volume                       # float32 HU
    metal_mask: np.ndarray              # bool, the threshold segmentation (before dilation)
    method: str
    messages: List[str] = field(default_factory=list)
    seconds: float = 0.0
    contacts: Optional[Markups] = None  # numbered contacts, from :func:`reduce_and_find_contacts`

    @property
    def has_metal(self) -> bool:
        return bool(self.metal_mask.any())


def _suggested_threshold(full: np.ndarray) -> float:
    """A threshold above the bone of an image in an unknown grey scale: metal is the brightest
    thing in it, so halfway between the 99th percentile (bone) and the maximum."""
    p99, top = np.percentile(full, [99.0, 100.0])
    return float(p99 + 0.5 * (top - p99))


def _scale_hint(full: np.ndarray, threshold_hu: float) -> str:
    """When the image's maximum is far from HU's metal values, say which threshold to try."""
    top = float(full.max())
    if top >= 2000.0:               # bright enough for bone or metal in HU: a plain scan without metal
        return ""
    return (f" Its brightest voxel is {top:.4g}, which is not metal in Hounsfield units; if the grey values "
            f"are not HU, set the metal threshold to the metal's grey value (for example "
            f"{_suggested_threshold(full):.4g}).")


def _check_metal_share(full: np.ndarray, mask: np.ndarray, threshold_hu: float) -> None:
    share = float(mask.mean())
    if share > MAX_METAL_SHARE:
        raise CochleaAIError(
            f"{100 * share:.1f} % of the voxels are at or above the metal threshold ({threshold_hu:.4g}); metal "
            f"never fills that much of a CT, so the grey values are probably not Hounsfield units. Set the "
            f"metal threshold above the bone, for example {_suggested_threshold(full):.4g}.")


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
    _check_metal_share(full, mask_all, threshold_hu)
    if not metal.any():
        messages.append(f"No metal found (no voxel at or above {threshold_hu:.0f} HU); the volume is "
                        "returned unchanged." + _scale_hint(full, threshold_hu))
        p(1.0, "no metal found")
        return MarResult(volume.copy(out), mask_all, key, messages, time.perf_counter() - t_start)
    if roi is None and (metal[0].any() or metal[-1].any() or metal[:, 0].any() or metal[:, -1].any()
                        or metal[:, :, 0].any() or metal[:, :, -1].any()):
        messages.append("Metal touches the border of the volume (for example the lead wire); metal "
                        "outside the volume cannot be corrected.")

    if key == "margan":
        net = cached_model(model)
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

    out[box] = correct_sinogram(img, metal, volume.spacing, key, keep_metal is None or keep_metal, geometry, p,
                                messages)
    p(1.0, "done")
    return MarResult(volume.copy(out.astype(np.float32)), mask_all, key, messages,
                     time.perf_counter() - t_start)


def reduce_and_find_contacts(volume: Volume, method: str = DEFAULT_METHOD,
                             threshold_hu: float = DEFAULT_THRESHOLD_HU, roi=None, model=None,
                             find_contacts: bool = True, max_contacts: Optional[int] = None,
                             array: Optional[str] = None, progress=None) -> MarResult:
    """:func:`reduce_metal_artifacts` (same arguments), then, when there is metal and
    ``find_contacts``, the numbered electrode contacts in ``volume`` within its metal mask
    (:func:`cochleaai.contacts.detect.detect_contacts`; ``array``: the implanted array's key
    when known, ``max_contacts``: at most this many) as ``contacts``. Plain data in and out."""
    p = Progress.wrap(progress)
    result = reduce_metal_artifacts(volume, method, threshold_hu, roi=roi, progress=p.stage(0.0, 0.9), model=model)
    if find_contacts and result.has_metal:
        p(0.9, "finding the electrode contacts")
        result.contacts = detect_contacts(volume, result.metal_mask, max_contacts=max_contacts, array=array or None)
    p(1.0, "done")
    return result
