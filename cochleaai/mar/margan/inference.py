"""MARGAN inference: a whole training-size volume at once, larger ones in overlapping tiles
around the metal (the rest is copied), so memory stays bounded whatever the volume's size.

Tiles have the model's training size, overlap by a third, and are blended with weights that
fall linearly towards each tile's border, so their seams do not show.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from cochleaai.mar.margan.network import from_unit, pad_to_multiple, to_unit
from cochleaai.mar.margan.reach import reach_weight
from cochleaai.progress import Progress

#: Metal farther than this (mm) from every tile is not expected: tiles cover the metal's
#: bounding box grown by this margin.
MARGIN_MM = 2.0


def _run(model, block: np.ndarray) -> np.ndarray:
    import torch  # lazy: installed on first use in Slicer

    x, crop = pad_to_multiple(to_unit(block.astype(np.float32)), model.config.multiple, 0.0)
    with torch.no_grad():
        y = model.generator(torch.from_numpy(np.ascontiguousarray(x))[None, None])[0, 0].numpy()
    return from_unit(y[crop])


def _starts(lo: int, hi: int, size: int, n: int):
    """Tile starts covering [lo, hi) with tiles of ``size`` inside [0, n), overlapping."""
    if n <= size:
        return [0]
    lo, hi = max(0, lo), min(n, hi)
    step = max(1, (2 * size) // 3)
    first = min(max(0, lo), n - size)
    starts = list(range(first, max(first, hi - size) + 1, step))
    if starts[-1] + size < hi:
        starts.append(min(n - size, hi - size))
    return sorted(set(starts))


def _ramp(size: int) -> np.ndarray:
    r = np.minimum(np.arange(size) + 1, size - np.arange(size)).astype(np.float32)
    return np.minimum(r / max(1.0, size / 6.0), 1.0)


def correct(model, image: np.ndarray, metal: np.ndarray, spacing, progress=None) -> np.ndarray:
    """Corrected HU array (float32) of ``image`` (z, y, x); ``metal`` is its metal mask. The
    correction fades out beyond the model's reach (:mod:`cochleaai.mar.margan.reach`)."""
    out = _network_estimate(model, image, metal, spacing, Progress.wrap(progress))
    gains = model.card.get("gain_by_distance_mm")
    if gains:
        w = reach_weight(metal, spacing, gains)
        out = image + w * (out - image)
    return out.astype(np.float32)


def _network_estimate(model, image, metal, spacing, p) -> np.ndarray:
    tile = np.array(model.grid_zyx, int)
    shape = np.array(image.shape)
    if np.all(shape <= tile + tile // 2):
        p(0.1, "MARGAN on the whole volume")
        out = _run(model, image)
        p(1.0, "done")
        return out.astype(np.float32)
    idx = np.argwhere(metal)
    margin = np.ceil(MARGIN_MM / np.asarray(spacing, float)[::-1]).astype(int)
    lo, hi = idx.min(0) - margin, idx.max(0) + margin + 1
    grids = [_starts(int(lo[a]), int(hi[a]), int(min(tile[a], shape[a])), int(shape[a])) for a in range(3)]
    acc = np.zeros(image.shape, np.float32)
    wsum = np.zeros(image.shape, np.float32)
    boxes = [(z, y, x) for z in grids[0] for y in grids[1] for x in grids[2]]
    size = np.minimum(tile, shape)
    w = _ramp(size[0])[:, None, None] * _ramp(size[1])[None, :, None] * _ramp(size[2])[None, None, :]
    for n, (z, y, x) in enumerate(boxes):
        p(n / len(boxes), f"MARGAN tile {n + 1}/{len(boxes)}")
        sl = (slice(z, z + size[0]), slice(y, y + size[1]), slice(x, x + size[2]))
        acc[sl] += w * _run(model, image[sl])
        wsum[sl] += w
    covered = wsum > 0
    out = image.astype(np.float32).copy()
    out[covered] = acc[covered] / wsum[covered]
    p(1.0, "done")
    return out


def check_spacing(model, spacing) -> Optional[str]:
    s = np.asarray(spacing, float)
    if np.any(np.abs(s - model.spacing_mm) > 0.35 * model.spacing_mm):
        return (f"The voxels ({', '.join(f'{v:.3g}' for v in s)} mm) differ from the {model.spacing_mm} mm "
                "the MARGAN model was trained on; resample the volume to that spacing for best results.")
    return None
