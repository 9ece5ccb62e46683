"""How much of MARGAN's correction to apply at each distance from the metal: its *reach*.

Far from a cochlear-implant electrode the artifact is a few tens of HU of faint streaks and
noise, no larger than what the network gets wrong there, so a correction applied in full
everywhere would change anatomy that has no artifact. After training, the network's output
``o`` is compared with the input ``x`` and the target ``t`` on the validation pairs in
distance bands from the metal (:func:`error_by_distance`). In each band the gain ``w`` that
makes ``x + w (o - x)`` closest to ``t`` in the least-squares sense is
``<t - x, o - x> / |o - x|^2``, clipped to [0, 1] (:func:`band_gains`): about 1 near the
metal, where the correction is right, and small far from it, where what the network would
change is mostly its own error. With ``w`` = 0 allowed, a band never ends up farther from the
target than the input. The gains go on the model's card (``gain_by_distance_mm``, pairs of
band centre and gain); inference interpolates them linearly over the distance and applies
the correction in full inside the metal (:func:`reach_weight`). A card without them corrects
everywhere in full.

Distances are taken from the threshold segmentation of the metal, as at inference, so the
blooming around the contacts counts as metal in both.
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np
from scipy.ndimage import binary_dilation

from cochleaai.metrics import distance_from_mask

#: Band edges (mm from the metal) of the error table
BAND_EDGES_MM = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 8.0, 1e9)
#: A band with fewer voxels gives no gain of its own (its neighbours' hold there)
MIN_VOXELS = 10_000


def error_by_distance(cases: Sequence, spacing, edges: Sequence[float] = BAND_EDGES_MM) -> List[Dict]:
    """Per distance band, pooled over ``cases`` of ``(input, output, target, metal)`` HU
    arrays (the metal grown by one voxel left out): the RMS error (HU) of the input and of
    the output, the least-squares gain of the correction (see the module) and the RMS error
    with that gain. One row per band: ``lo``, ``hi``, ``input``, ``output``, ``gain``,
    ``with_gain``, ``voxels``."""
    sums = np.zeros((len(edges) - 1, 5))
    for image, output, target, metal in cases:
        x, o, t = (np.asarray(a, np.float64) for a in (image, output, target))
        d = distance_from_mask(metal, spacing)
        keep = ~binary_dilation(metal)
        r_x, delta = t - x, o - x
        for b in range(len(edges) - 1):
            r = keep & (d > edges[b]) & (d <= edges[b + 1])
            sums[b] += (np.sum(r_x[r] ** 2), np.sum((t - o)[r] ** 2), np.sum(r_x[r] * delta[r]),
                        np.sum(delta[r] ** 2), r.sum())
    rows = []
    for b, (e_in, e_out, cross, sq, n) in enumerate(sums):
        gain = float(np.clip(cross / sq, 0.0, 1.0)) if sq > 0 else 0.0
        rows.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "voxels": int(n),
                     "input": round(float(np.sqrt(e_in / n)), 1) if n else None,
                     "output": round(float(np.sqrt(e_out / n)), 1) if n else None,
                     "gain": round(gain, 3),
                     # |r_x - w delta|^2 = e_in - 2 w cross + w^2 sq
                     "with_gain": round(float(np.sqrt(max(e_in - 2 * gain * cross + gain ** 2 * sq, 0.0) / n)), 1)
                     if n else None})
    return rows


def band_gains(table: List[Dict]) -> List[List[float]]:
    """``[[distance_mm, gain], ...]`` at the centres of the bands with at least
    ``MIN_VOXELS`` voxels (the last, open band at its start)."""
    out = []
    for row in table:
        if row["voxels"] >= MIN_VOXELS:
            centre = row["lo"] if row["hi"] > 1e6 else 0.5 * (row["lo"] + row["hi"])
            out.append([round(centre, 3), row["gain"]])
    return out


def reach_weight(metal: np.ndarray, spacing, gains) -> np.ndarray:
    """The correction's weight per voxel: ``gains`` (``[[mm, gain], ...]``) interpolated over
    the distance from the metal (constant beyond the ends), and 1 inside the metal."""
    mm, w = (np.asarray(v, float) for v in zip(*gains))
    d = distance_from_mask(metal, spacing)
    weight = np.interp(d, mm, np.clip(w, 0.0, 1.0)).astype(np.float32)
    weight[np.asarray(metal, bool)] = 1.0
    return weight
