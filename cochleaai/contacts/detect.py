"""Electrode contacts found in a (post-operative or artifact-reduced) CT volume.

Contacts are the deepest spots inside the metal segmentation: local maxima, at least
``min_distance_mm`` apart, of the (lightly smoothed) distance from the segmentation's border.
Clinical CT stores at most 3071 HU, so platinum saturates and the inside of the segmentation
is one flat plateau: its brightest voxels fall anywhere on it, while its depth peaks on the
axis of each contact band, where the blooming of the contact is widest.

They are numbered along the array: the points are chained through their minimum spanning
tree's longest path, and the end nearer to the points' centroid is the apex (the array
spirals inwards), unless the metal runs on clearly further past that end (the lead leaves
from the basal end); so contact 1 is the most apical, as the manufacturers number them.
With the array known, the shallow maxima at the chain's ends (the thin lead) are dropped and
a gap of about two or three pitches gets the contacts that blooming left without a maximum
of their own. Finally each contact is moved to where the shipped sub-voxel refiner
(:mod:`cochleaai.contacts.refiner`, learned from simulated implants) puts it from the metal
around it; without that model, it is moved a little out of the array's bend instead, where
the blooming of neighbours overlaps (:func:`out_of_the_bend`).

When the implanted array is given and its pitch is fine (0.9 mm), its contacts are instead
set at that pitch along the metal (:mod:`cochleaai.contacts.comb`): blooming joins such
contacts into one plateau whose depth hardly varies from one contact to the next.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter
from scipy.sparse.csgraph import minimum_spanning_tree, shortest_path
from scipy.spatial.distance import cdist

from cochleaai.contacts.comb import contacts_along_centreline
from cochleaai.contacts.refiner import chain_geometry, load_refiner, shipped_refiner
from cochleaai.errors import CochleaAIError
from cochleaai.markups import Markups
from cochleaai.simulation.arrays import get_array
from cochleaai.volume import Volume

#: Arrays this closely spaced read as one plateau of metal: their contacts are set at the pitch
#: along its centreline. Wider ones show a peak per contact, which the deep spots find better.
COMB_MAX_PITCH_MM = 1.0


def _order_along_chain(points: np.ndarray) -> np.ndarray:
    n = len(points)
    if n < 3:
        order = np.arange(n)
    else:
        tree = minimum_spanning_tree(cdist(points, points))
        dist = shortest_path(tree, directed=False)
        a = int(np.argmax(dist[0]))
        b = int(np.argmax(dist[a]))
        _, pred = shortest_path(tree, directed=False, indices=a, return_predecessors=True)
        path = [b]
        while path[-1] != a:
            path.append(int(pred[path[-1]]))
        on_path = path[::-1]
        rest = [i for i in range(n) if i not in set(on_path)]
        # points off the main chain go next to their nearest chain point
        keys = {i: float(k) for k, i in enumerate(on_path)}
        for i in rest:
            j = on_path[int(np.argmin(np.linalg.norm(points[on_path] - points[i], axis=1)))]
            keys[i] = keys[j] + 0.5
        order = np.array(sorted(range(n), key=lambda i: keys[i]))
    centroid = points.mean(0)
    if n > 1 and np.linalg.norm(points[order[-1]] - centroid) < np.linalg.norm(points[order[0]] - centroid):
        order = order[::-1]
    return order


#: Metal beyond an end of the chain, out along its tangent (mm: from, to, and the radius
#: around the tangent), is the lead, which leaves from the basal end.
LEAD_REACH_MM = (0.5, 2.5, 0.5)


def _lead_last(points: np.ndarray, order: np.ndarray, metal: np.ndarray) -> np.ndarray:
    """``order`` reversed when the metal (LPS mm points) runs on beyond its first point, out
    along the chain, clearly more than beyond its last: the lead leaves from the basal end,
    and nothing runs on past the apex. Otherwise ``order`` as it is."""
    if len(order) < 3:
        return order
    lo, hi, radius = LEAD_REACH_MM

    def beyond(end, inner):
        t = points[end] - points[inner]
        t /= max(float(np.linalg.norm(t)), 1e-9)
        d = metal - points[end]
        along = d @ t
        across = np.linalg.norm(d - along[:, None] * t, axis=1)
        return int(np.count_nonzero((along > lo) & (along < hi) & (across < radius)))

    first, last = beyond(order[0], order[1]), beyond(order[-1], order[-2])
    return order[::-1] if first > 2 * last + 5 else order


def _refine(img: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """Sub-voxel peak positions (k, j, i): the centroid of the 3x3x3 neighbourhood above its minimum."""
    out = peaks.astype(float)
    hi = np.array(img.shape) - 1
    for n, pk in enumerate(peaks):
        lo_, up = np.maximum(pk - 1, 0), np.minimum(pk + 1, hi)
        block = img[lo_[0]:up[0] + 1, lo_[1]:up[1] + 1, lo_[2]:up[2] + 1]
        w = block - block.min()
        if w.sum() > 0:
            idx = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo_, up)], indexing="ij"), -1)
            out[n] = (idx * w[..., None]).reshape(-1, 3).sum(0) / w.sum()
    return out


#: Smoothing (voxels) of the depth map: irons out the distance transform's voxel steps.
DEPTH_SMOOTHING_VOXELS = 0.7
#: The image's brightness (relative to the brightest metal) adds up to this depth (mm).
BRIGHTNESS_MM = 0.2


def _deep_spots(volume: Volume, mask: np.ndarray, min_distance_mm: float, max_contacts,
                with_depth: bool = False):
    """Local maxima inside ``mask`` of its smoothed depth (mm from its border) plus a little
    of the image's brightness; sub-voxel, LPS mm (and, ``with_depth``, that score at each)."""
    from skimage.feature import peak_local_max  # lazy: installed on first use in Slicer

    depth = distance_transform_edt(mask, sampling=np.asarray(volume.spacing, float)[::-1])
    # where the image is not saturated its peaks part contacts that the segmentation joins
    bright = gaussian_filter(np.asarray(volume.array, dtype=np.float32), 0.6)
    top = float(bright[mask].max())
    shade = np.clip(bright / top, 0.0, 1.0) if top > 0 else np.zeros_like(bright)
    img = gaussian_filter(depth.astype(np.float32), DEPTH_SMOOTHING_VOXELS) + BRIGHTNESS_MM * shade
    dist = max(1, int(round(min_distance_mm / float(np.min(volume.spacing)))))
    peaks = peak_local_max(np.where(mask, img, img.min()), min_distance=dist, labels=mask.astype(np.int32),
                           num_peaks=np.inf if max_contacts is None else int(max_contacts), exclude_border=False)
    if len(peaks) == 0:
        peaks = np.argwhere(mask)[:1]
    points = volume.index_to_physical(_refine(img, peaks)[:, ::-1])
    return (points, img[tuple(peaks.T)].astype(float)) if with_depth else points


def detect_contacts(volume: Volume, metal_mask: np.ndarray, min_distance_mm: float = 0.5,
                    max_contacts: Optional[int] = None, array=None, refiner="shipped") -> Markups:
    """Numbered contact centres (LPS mm) found in ``volume`` within ``metal_mask``.

    ``array`` (a key of :data:`~cochleaai.simulation.arrays.ARRAYS` or an ElectrodeArray): the
    implanted array. A closely spaced one has its contacts set at its pitch along the metal's
    centreline (:mod:`cochleaai.contacts.comb`); the deep spots below are the fallback
    where no centreline can be traced, and the method for the other arrays. A known array
    also sets ``max_contacts`` to its number of contacts (or fewer, when given).
    ``refiner``: the sub-voxel refinement (:mod:`cochleaai.contacts.refiner`): "shipped"
    (the default model; where it is missing or damaged, or with None, the contacts are
    instead moved :data:`BEND_SHIFT_MM` out of the array's bend), a model file's path, or a
    ContactRefiner."""
    points = chain_of_contacts(volume, metal_mask, min_distance_mm, max_contacts, array)
    points = corrected_chain(volume, metal_mask, points, refiner)
    return Markups(points, [f"E{k + 1}" for k in range(len(points))], name="Electrode contacts")


def corrected_chain(volume: Volume, metal_mask: np.ndarray, points: np.ndarray, refiner="shipped") -> np.ndarray:
    """The sub-voxel correction of :func:`detect_contacts` applied to a chain of
    :func:`chain_of_contacts` (``refiner`` as there)."""
    if isinstance(refiner, (str, Path)):
        refiner = shipped_refiner() if str(refiner) == "shipped" else load_refiner(refiner)
    if refiner is not None and len(points) >= 3:
        return refiner.refine(volume, np.asarray(metal_mask, bool), points)
    return out_of_the_bend(points)


def chain_of_contacts(volume: Volume, metal_mask: np.ndarray, min_distance_mm: float = 0.5,
                      max_contacts: Optional[int] = None, array=None) -> np.ndarray:
    """The contacts of :func:`detect_contacts` (N, 3) before their sub-voxel correction,
    numbered from the apex."""
    if max_contacts is not None and (int(max_contacts) != max_contacts or max_contacts < 1):
        raise CochleaAIError(f"The most contacts to find must be a whole number of at least 1, got {max_contacts}.")
    mask = np.asarray(metal_mask, dtype=bool)
    if mask.shape != tuple(volume.shape):
        raise CochleaAIError(f"The metal mask's shape {mask.shape} differs from the volume's {tuple(volume.shape)}.")
    if not mask.any():
        return np.zeros((0, 3))
    arr = None
    if array is not None:
        arr = get_array(array)
        # a known array has its own number of contacts: the deepest that many maxima
        max_contacts = arr.n_contacts if max_contacts is None else min(int(max_contacts), arr.n_contacts)
    if arr is not None and arr.pitch_mm <= COMB_MAX_PITCH_MM:
        spots = _deep_spots(volume, mask, min_distance_mm, None)
        points = contacts_along_centreline(volume, mask, arr, spots)
        if points is not None and len(points):
            return np.asarray(points[:max_contacts], float)
    points, depth = _deep_spots(volume, mask, min_distance_mm, max_contacts, with_depth=True)
    order = _order_along_chain(points)
    order = _lead_last(points, order, volume.index_to_physical(np.argwhere(mask)[:, ::-1].astype(float)))
    points, depth = points[order], depth[order]
    if arr is not None:
        points = _fill_gaps(_drop_shallow_ends(points, depth), arr.pitch_mm, max_contacts)
    return np.asarray(points, float)


#: A gap of more than this many pitches between neighbours along the chain holds contacts
#: that gave no maximum of their own (blooming joined them into a ridge without a peak) ...
GAP_PITCHES = 1.6
#: ... up to this many of them.
MAX_GAP_CONTACTS = 2
#: A maximum at an end of the chain less deep than this share of the median is on the lead.
SHALLOW_END = 0.6


def _drop_shallow_ends(points: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """The chain of maxima (ordered, ``depth`` their scores) without the runs of shallow ones
    at its ends (the thin lead); at least two points stay."""
    if len(points) < 3:
        return points
    shallow = depth < SHALLOW_END * float(np.median(depth))
    first = int(np.argmin(shallow)) if not shallow.all() else len(points)
    last = len(points) - int(np.argmin(shallow[::-1])) if not shallow.all() else 0
    return points[first:last] if last - first >= 2 else points


def _fill_gaps(points: np.ndarray, pitch_mm: float, n_max: int) -> np.ndarray:
    """The chain (ordered) with the contacts missing from its gaps set evenly in them, as
    long as it holds no more than ``n_max``."""
    if len(points) < 2:
        return points
    out, added = [points[0]], 0
    for a, b in zip(points[:-1], points[1:]):
        gap = float(np.linalg.norm(b - a))
        missing = int(round(gap / pitch_mm)) - 1
        if gap > GAP_PITCHES * pitch_mm and 1 <= missing <= MAX_GAP_CONTACTS \
                and len(points) + added + missing <= n_max:
            out.extend(a + (b - a) * j / (missing + 1) for j in range(1, missing + 1))
            added += missing
        out.append(b)
    return np.asarray(out, float)


#: The blooming of neighbouring contacts overlaps on the inner side of a bent array, so the
#: deepest point of the metal lies inside the bend: contacts are moved this far (mm) out of
#: it. Measured on simulated pairs the benchmark does not use (bench mar seeds 5 and 6: the
#: deep spots sat 0.07-0.13 mm inside the bend on average, by array).
BEND_SHIFT_MM = 0.06
#: Neighbours on each side in the local fit of the chain's bend.
BEND_NEIGHBOURS = 3
#: Where the chain bends less than this (1/mm: a radius above 7 mm) it counts as straight.
MIN_CURVATURE = 0.15


def out_of_the_bend(points: np.ndarray, shift_mm: float = None) -> np.ndarray:
    """Ordered contact points moved ``shift_mm`` (default :data:`BEND_SHIFT_MM`) away from
    the centre of curvature of a quadratic fitted to each point and its neighbours."""
    shift_mm = BEND_SHIFT_MM if shift_mm is None else float(shift_mm)
    pts = np.asarray(points, float)
    if len(pts) < 3 or shift_mm == 0.0:
        return pts
    _, bends = chain_geometry(pts, BEND_NEIGHBOURS)
    kappa = np.linalg.norm(bends, axis=1)
    bent = kappa >= MIN_CURVATURE
    out = pts.copy()
    out[bent] -= shift_mm * bends[bent] / kappa[bent, None]
    return out
