"""Evaluation measures: overlap, surface distance, image fidelity and landmark error.

All functions are pure: they read their inputs, never write to them, and return plain
Python floats, numpy arrays or dicts.

Inputs
------
Masks and images may be numpy arrays or :class:`cochleaai.volume.Volume` objects (a
mix of both is allowed). When two ``Volume`` objects are compared they must share the
same grid (shape, spacing, origin, direction); resample one onto the other first with
``Volume.resample_like`` (``"nearest"`` for labelmaps). Arrays are indexed
``(z, y, x)`` like ``Volume.array``.

Masks: without ``label`` every non-zero voxel is foreground (for a multi-label map
that is the union of all labels); with ``label=v`` only voxels equal to ``v`` are.

Spacing
-------
``spacing`` is given in ITK order ``(sx, sy, sz)`` millimetres, the same order as
``Volume.spacing``, although the array axes are ``(z, y, x)``; a single number means
isotropic voxels. For ``Volume`` inputs it is taken from the volume. Surface
distances are therefore physical millimetres, correct for anisotropic voxels. (The
direction matrix is orthonormal, so it does not change distances.)

Surface distances
-----------------
The surface of a mask is the set of its voxels that have at least one face neighbour
outside the mask (voxels on the edge of the array count as surface). For every
surface voxel of ``a`` the distance to the nearest surface voxel of ``b`` is taken
from an exact Euclidean distance transform (``scipy.ndimage.distance_transform_edt``
with ``sampling=``), and vice versa. Distances are between voxel centres, so a result
is accurate to about one voxel.

* ``hausdorff(percentile=q)`` is the larger of the two directed ``q``-th percentiles
  (``q = 100``: the classic Hausdorff distance; ``q = 95``: the robust HD95).
* ``mean_surface_distance`` is the average symmetric surface distance: the mean over
  the surface voxels of both masks together.
* Both masks empty: the distance is ``0.0``. One empty and the other not: ``inf``,
  with a :class:`RuntimeWarning` (there is no surface to measure against).

Image fidelity
--------------
``psnr``, ``ssim`` and ``rmse`` compare a test image with a reference image of the same
shape. ``data_range`` (the dynamic range, for PSNR's peak and SSIM's constants)
defaults to ``ref.max() - ref.min()`` of the *reference*. For CT in Hounsfield units
that is the span from the darkest to the brightest voxel (about 4000 HU for air to
dense bone, much more when metal is present), so figures computed on different images
are only comparable when you pass one fixed ``data_range`` (for example ``4096.0``, or
the width of a clipping window you applied to both images).
"""
from __future__ import annotations

import warnings
from typing import Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from scipy import ndimage

from cochleaai.errors import CochleaAIError
from cochleaai.volume import Volume

__all__ = [
    "dice",
    "surface_distances",
    "hausdorff",
    "hausdorff95",
    "mean_surface_distance",
    "psnr",
    "ssim",
    "rmse",
    "landmark_errors",
    "landmark_summary",
]

ArrayOrVolume = Union[np.ndarray, Volume]
Points = Union[np.ndarray, Sequence[Sequence[float]], Mapping[str, Sequence[float]]]


# ----------------------------------------------------------------------------- helpers
def _array_of(x, name: str) -> np.ndarray:
    """The array behind ``x`` (a Volume or array-like), checked for NaN/inf and size."""
    arr = x.array if isinstance(x, Volume) else np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise CochleaAIError(f"The {name} must be a numeric array, got dtype {arr.dtype}.")
    if np.iscomplexobj(arr):
        raise CochleaAIError(f"The {name} must be real-valued, got a complex array.")
    if arr.size == 0:
        raise CochleaAIError(f"The {name} is empty (shape {arr.shape}); pass an image with voxels.")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise CochleaAIError(
            f"The {name} contains NaN or infinite values; fill or mask them before computing metrics.")
    return arr


def _pair(a, b, names: Tuple[str, str]) -> Tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Arrays of ``a`` and ``b`` with a common shape, and the spacing of a Volume among them."""
    if isinstance(a, Volume) and isinstance(b, Volume) and not a.same_geometry(b):
        raise CochleaAIError(
            f"The {names[0]} and {names[1]} volumes lie on different grids ({a!r} vs {b!r}); "
            "resample one onto the other first (Volume.resample_like, 'nearest' for labels).")
    arr_a = _array_of(a, names[0])
    arr_b = _array_of(b, names[1])
    if arr_a.shape != arr_b.shape:
        raise CochleaAIError(
            f"The {names[0]} has shape {arr_a.shape} but the {names[1]} has shape {arr_b.shape}; "
            "they must cover the same voxel grid (resample one onto the other first).")
    spacing = None
    for v in (a, b):
        if isinstance(v, Volume):
            spacing = np.asarray(v.spacing, dtype=float)
            break
    return arr_a, arr_b, spacing


def _mask(arr: np.ndarray, label) -> np.ndarray:
    """A new boolean foreground mask (the input array is only read)."""
    if label is None:
        return arr != 0
    return arr == label


def _resolve_spacing(spacing, volume_spacing: Optional[np.ndarray], ndim: int) -> np.ndarray:
    """Per-array-axis sampling (array order) from an ITK-order spacing."""
    if spacing is None:
        sp = volume_spacing if volume_spacing is not None else np.ones(ndim)
    else:
        sp = np.asarray(spacing, dtype=float).reshape(-1)
        if sp.size == 1:
            sp = np.repeat(sp, ndim)
        if volume_spacing is not None and (
                sp.size != volume_spacing.size or not np.allclose(sp, volume_spacing, rtol=1e-6, atol=1e-9)):
            raise CochleaAIError(
                f"spacing={spacing!r} disagrees with the volume's own spacing "
                f"{volume_spacing.tolist()}; leave spacing out when passing Volume objects.")
    if sp.size != ndim:
        raise CochleaAIError(
            f"spacing must have one value per axis ({ndim} for a {ndim}D mask), got {spacing!r}.")
    if not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise CochleaAIError(f"spacing must be positive finite millimetres, got {spacing!r}.")
    return sp[::-1].copy()  # ITK (x, y, z) -> array (z, y, x)


def _check_percentile(percentile) -> float:
    q = float(percentile)
    if not np.isfinite(q) or not 0.0 <= q <= 100.0:
        raise CochleaAIError(f"percentile must lie in [0, 100], got {percentile!r}.")
    return q


# ----------------------------------------------------------------------------- overlap
def distance_from_mask(mask: np.ndarray, spacing) -> np.ndarray:
    """Distance (mm) of every voxel from the nearest voxel of ``mask`` (z, y, x; 0 inside it);
    ``spacing`` is x, y, z as everywhere in the library."""
    return ndimage.distance_transform_edt(~np.asarray(mask, bool), sampling=np.asarray(spacing, float)[::-1])


def dice(a: ArrayOrVolume, b: ArrayOrVolume, label=None) -> float:
    """Dice similarity coefficient ``2|A & B| / (|A| + |B|)`` of two masks.

    ``a`` and ``b`` are boolean masks or labelmaps (arrays or Volumes) of equal shape.
    Without ``label`` every non-zero voxel is foreground; with ``label=v`` only voxels
    equal to ``v`` are compared. Two empty masks agree perfectly: the result is ``1.0``.
    """
    arr_a, arr_b, _ = _pair(a, b, ("first mask", "second mask"))
    ma, mb = _mask(arr_a, label), _mask(arr_b, label)
    total = int(np.count_nonzero(ma)) + int(np.count_nonzero(mb))
    if total == 0:
        return 1.0
    overlap = int(np.count_nonzero(ma & mb))
    return 2.0 * overlap / total


# ---------------------------------------------------------------------- surface distance
def _surface(mask: np.ndarray) -> np.ndarray:
    """Foreground voxels with at least one face neighbour in the background."""
    if not mask.any():
        return mask.copy()
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    eroded = ndimage.binary_erosion(mask, structure=structure, border_value=0)
    return mask & ~eroded


def surface_distances(a: ArrayOrVolume, b: ArrayOrVolume, spacing=None,
                      label=None) -> Tuple[np.ndarray, np.ndarray]:
    """Directed surface distances between two masks, in millimetres.

    Returns ``(a_to_b, b_to_a)``: for every surface voxel of ``a`` the distance to the
    nearest surface voxel of ``b``, and the other way round (1D float arrays, in the
    order of the voxels in the array). ``spacing`` is ``(sx, sy, sz)`` mm (ITK order,
    like ``Volume.spacing``); it is taken from Volume inputs and defaults to 1 mm.

    Both masks empty: two empty arrays. One empty: the other's distances are all
    ``inf`` and a RuntimeWarning is issued.
    """
    return _surface_distances(a, b, spacing, label, stacklevel=3)


def _surface_distances(a, b, spacing, label, stacklevel: int):
    arr_a, arr_b, vol_spacing = _pair(a, b, ("first mask", "second mask"))
    sampling = _resolve_spacing(spacing, vol_spacing, arr_a.ndim)
    ma, mb = _mask(arr_a, label), _mask(arr_b, label)
    has_a, has_b = bool(ma.any()), bool(mb.any())
    if not has_a and not has_b:
        return np.zeros(0), np.zeros(0)
    if has_a != has_b:
        warnings.warn(
            f"The {'second' if has_a else 'first'} mask is empty, so surface distances are "
            "infinite; check the label value or the segmentation.",
            RuntimeWarning, stacklevel=stacklevel)
        n = int(np.count_nonzero(_surface(ma if has_a else mb)))
        inf, none = np.full(n, np.inf), np.zeros(0)
        return (inf, none) if has_a else (none, inf)

    # Work inside the bounding box of both masks plus one voxel: exact (every surface
    # voxel lies inside it, and the margin keeps the erosion right) and much cheaper.
    where = np.nonzero(ma | mb)
    lo = [max(int(idx.min()) - 1, 0) for idx in where]
    hi = [min(int(idx.max()) + 2, n) for idx, n in zip(where, ma.shape)]
    box = tuple(slice(l, h) for l, h in zip(lo, hi))
    sa, sb = _surface(ma[box]), _surface(mb[box])

    dist_to_b = ndimage.distance_transform_edt(~sb, sampling=sampling)
    dist_to_a = ndimage.distance_transform_edt(~sa, sampling=sampling)
    return dist_to_b[sa].astype(float), dist_to_a[sb].astype(float)


def hausdorff(a: ArrayOrVolume, b: ArrayOrVolume, spacing=None, percentile: float = 100.0,
              label=None) -> float:
    """Symmetric (percentile) Hausdorff distance in mm.

    The larger of the two directed ``percentile``-th surface distances (see
    :func:`surface_distances`); ``percentile=100`` is the classic maximum. Both masks
    empty: ``0.0``; one empty: ``inf`` with a RuntimeWarning.
    """
    return _hausdorff(a, b, spacing, percentile, label, stacklevel=4)


def _hausdorff(a, b, spacing, percentile, label, stacklevel: int) -> float:
    q = _check_percentile(percentile)
    d_ab, d_ba = _surface_distances(a, b, spacing, label, stacklevel=stacklevel)
    if np.isinf(d_ab).any() or np.isinf(d_ba).any():
        return float("inf")  # one mask is empty (already warned)
    values = [float(np.percentile(d, q)) for d in (d_ab, d_ba) if d.size]
    return max(values) if values else 0.0


def hausdorff95(a: ArrayOrVolume, b: ArrayOrVolume, spacing=None, label=None) -> float:
    """Robust Hausdorff distance (95th percentile) in mm; see :func:`hausdorff`."""
    return _hausdorff(a, b, spacing, 95.0, label, stacklevel=4)


def mean_surface_distance(a: ArrayOrVolume, b: ArrayOrVolume, spacing=None,
                          label=None) -> float:
    """Average symmetric surface distance in mm.

    The mean of all directed distances from the surface of ``a`` to ``b`` and from the
    surface of ``b`` to ``a`` taken together. Both masks empty: ``0.0``; one empty:
    ``inf`` with a RuntimeWarning.
    """
    d_ab, d_ba = _surface_distances(a, b, spacing, label, stacklevel=3)
    both = np.concatenate([d_ab, d_ba])
    return float(both.mean()) if both.size else 0.0


# ----------------------------------------------------------------------- image fidelity
def _images(ref, test) -> Tuple[np.ndarray, np.ndarray]:
    r, t, _ = _pair(ref, test, ("reference image", "test image"))
    return r.astype(np.float64), t.astype(np.float64)


def _data_range(ref: np.ndarray, data_range) -> float:
    if data_range is None:
        dr = float(ref.max() - ref.min())
        if dr <= 0:
            raise CochleaAIError(
                "The reference image is constant, so its range cannot set data_range; "
                "pass data_range explicitly (for CT, e.g. 4096 HU).")
        return dr
    dr = float(data_range)
    if not np.isfinite(dr) or dr <= 0:
        raise CochleaAIError(f"data_range must be a positive finite number, got {data_range!r}.")
    return dr


def psnr(ref: ArrayOrVolume, test: ArrayOrVolume, data_range: Optional[float] = None) -> float:
    """Peak signal-to-noise ratio in dB: ``10 log10(data_range**2 / MSE)``.

    ``data_range`` defaults to the reference's ``max - min`` (for HU images pass a
    fixed value to compare across images; see the module notes). Identical images
    give ``inf``.
    """
    r, t = _images(ref, test)
    dr = _data_range(r, data_range)
    mse = float(np.mean((r - t) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(dr * dr / mse))


def ssim(ref: ArrayOrVolume, test: ArrayOrVolume, data_range: Optional[float] = None,
         win_size: int = 7) -> float:
    """Mean structural similarity index over the 3D (or 2D) image.

    Computed by ``skimage.metrics.structural_similarity`` with a uniform cubic window
    of ``win_size`` voxels (odd; reduced to the largest odd size that fits a small
    image, at least 3). The window counts voxels, not millimetres. ``data_range``
    defaults to the reference's ``max - min``; see the module notes for HU images.
    Identical images give ``1.0``.
    """
    from skimage.metrics import structural_similarity  # lazy: installed on first use in Slicer

    r, t = _images(ref, test)
    dr = _data_range(r, data_range)
    win = int(win_size)
    if win < 3 or win % 2 == 0:
        raise CochleaAIError(f"win_size must be an odd integer >= 3, got {win_size!r}.")
    smallest = min(r.shape)
    if smallest < 3:
        raise CochleaAIError(
            f"SSIM needs at least 3 voxels along every axis, got shape {r.shape}.")
    if win > smallest:
        win = smallest if smallest % 2 else smallest - 1
    return float(structural_similarity(r, t, data_range=dr, win_size=win))


def rmse(ref: ArrayOrVolume, test: ArrayOrVolume, mask: Optional[ArrayOrVolume] = None) -> float:
    """Root-mean-square difference, in the images' units (e.g. HU).

    ``mask`` (boolean or labelmap, non-zero = included, same shape) restricts the
    average to a region, e.g. the bone around an implant; it must not be empty.
    """
    r, t = _images(ref, test)
    diff2 = (r - t) ** 2
    if mask is not None:
        if isinstance(ref, Volume) and isinstance(mask, Volume) and not ref.same_geometry(mask):
            raise CochleaAIError("The mask lies on a different grid from the images; resample it first.")
        m = _array_of(mask, "mask")
        if m.shape != r.shape:
            raise CochleaAIError(
                f"The mask has shape {m.shape} but the images have shape {r.shape}.")
        m = m != 0
        if not m.any():
            raise CochleaAIError("The RMSE mask is empty; select a region with at least one voxel.")
        diff2 = diff2[m]
    return float(np.sqrt(np.mean(diff2)))


# ------------------------------------------------------------------ resolution and noise
#: sd of the 6-neighbour Laplacian's response to white noise of sd 1: sqrt(6^2 + 6 * 1^2)
_LAPLACE_GAIN = float(np.sqrt(42.0))
#: median |x| / sd of a zero-mean Gaussian
_MAD_GAUSS = 0.6744897501960817


def _region(image, mask) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    arr = _array_of(image, "image").astype(np.float64)
    if arr.ndim != 3 or min(arr.shape) < 3:
        raise CochleaAIError(f"A 3D image of at least 3 voxels per axis is needed, got shape {arr.shape}.")
    if mask is None:
        return arr, None
    m = _array_of(mask, "mask") != 0
    if m.shape != arr.shape:
        raise CochleaAIError(f"The mask has shape {m.shape} but the image has shape {arr.shape}.")
    if not m.any():
        raise CochleaAIError("The mask is empty; select a region with at least one voxel.")
    return arr, m


def fine_noise_sd(image: ArrayOrVolume, mask: Optional[ArrayOrVolume] = None) -> float:
    """The voxel-scale noise of an image (its units, e.g. HU): the median absolute response
    of the 3D Laplacian, which cancels smooth structure, scaled to the standard deviation of
    white Gaussian noise (the idea of Immerkaer 1996, with a robust median so that edges do
    not count). Smoothed or correlated noise reads lower: this measures the fine texture a
    scanner leaves, which is what a simulated scan must match."""
    arr, m = _region(image, mask)
    response = np.abs(ndimage.laplace(arr, mode="nearest"))
    values = response[m] if m is not None else response
    return float(np.median(values) / _MAD_GAUSS / _LAPLACE_GAIN)


def edge_sharpness(image: ArrayOrVolume, spacing=None, mask: Optional[ArrayOrVolume] = None,
                   percentile: float = 99.0) -> float:
    """The steepest edges of an image: the ``percentile`` of its gradient magnitude (units per
    mm; ``spacing`` in ITK order, taken from a Volume). Bone walls in CT are edges of about
    2000 HU; a blurrier scanner spreads them over more millimetres and this figure falls."""
    arr, m = _region(image, mask)
    sp = _resolve_spacing(spacing, image.spacing if isinstance(image, Volume) else None, 3)
    grads = np.gradient(arr, *sp)
    magnitude = np.sqrt(sum(g * g for g in grads))
    values = magnitude[m] if m is not None else magnitude
    return float(np.percentile(values, _check_percentile(percentile)))


# ---------------------------------------------------------------------------- landmarks
def _points(x, name: str) -> np.ndarray:
    try:
        p = np.array(x, dtype=float)  # a copy: the caller's points are never touched
    except (TypeError, ValueError) as exc:
        raise CochleaAIError(f"The {name} landmarks must be numbers, an (N, 3) array: {exc}") from None
    if p.ndim != 2 or p.shape[1] != 3:
        raise CochleaAIError(
            f"The {name} landmarks must be an (N, 3) array of (x, y, z) mm, got shape {p.shape}.")
    if not np.all(np.isfinite(p)):
        raise CochleaAIError(f"The {name} landmarks contain NaN or infinite coordinates.")
    return p


def landmark_errors(pred: Points, truth: Points) -> Union[np.ndarray, Dict[str, float]]:
    """Euclidean distance (mm) between each predicted landmark and its true position.

    * ``(N, 3)`` arrays (row ``n`` of ``pred`` matches row ``n`` of ``truth``):
      returns an ``(N,)`` array.
    * dicts ``{name: (x, y, z)}``: the names must be the same in both (an error lists
      any missing on either side); returns ``{name: error}`` in ``truth``'s order.

    Both sets must be in the same coordinate system (LPS or RAS millimetres).
    """
    pred_is_map, truth_is_map = isinstance(pred, Mapping), isinstance(truth, Mapping)
    if pred_is_map != truth_is_map:
        raise CochleaAIError(
            "Pass the predicted and true landmarks the same way: both as (N, 3) arrays "
            "or both as dicts keyed by landmark name.")
    if pred_is_map:
        missing_pred = [k for k in truth if k not in pred]
        missing_truth = [k for k in pred if k not in truth]
        if missing_pred or missing_truth:
            parts = []
            if missing_pred:
                parts.append(f"not predicted: {missing_pred}")
            if missing_truth:
                parts.append(f"no ground truth for: {missing_truth}")
            raise CochleaAIError(
                "Landmark names do not match (" + "; ".join(parts) + "). "
                "Rename or drop landmarks so both sets have the same names.")
        names = list(truth)
        if not names:
            return {}
        p = _points([pred[k] for k in names], "predicted")
        t = _points([truth[k] for k in names], "true")
        d = np.linalg.norm(p - t, axis=1)
        return {k: float(v) for k, v in zip(names, d)}
    p = _points(pred, "predicted")
    t = _points(truth, "true")
    if p.shape != t.shape:
        raise CochleaAIError(
            f"{p.shape[0]} predicted landmarks but {t.shape[0]} true ones; the rows must match.")
    return np.linalg.norm(p - t, axis=1)


def landmark_summary(errors: Union[np.ndarray, Sequence[float], Mapping[str, float]],
                     success_mm: float = 2.0) -> Dict[str, float]:
    """Summary of landmark errors (mm): mean, median, p95, max and success rate.

    ``errors`` is the output of :func:`landmark_errors` (array or dict). The success
    rate is the fraction of landmarks with an error of at most ``success_mm``.
    """
    values = list(errors.values()) if isinstance(errors, Mapping) else errors
    e = np.array(values, dtype=float).reshape(-1)
    if e.size == 0:
        raise CochleaAIError("No landmark errors to summarise; pass at least one landmark.")
    if np.any(np.isnan(e)) or np.any(e < 0):
        raise CochleaAIError("Landmark errors must be non-negative distances without NaN.")
    thr = float(success_mm)
    if not np.isfinite(thr) or thr <= 0:
        raise CochleaAIError(f"success_mm must be a positive distance, got {success_mm!r}.")
    return {
        "mean": float(np.mean(e)),
        "median": float(np.median(e)),
        "p95": float(np.percentile(e, 95)),
        "max": float(np.max(e)),
        "success_rate": float(np.mean(e <= thr)),
    }
