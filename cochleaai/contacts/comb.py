"""Contacts of a known, closely spaced array placed at its pitch along its metal.

Platinum saturates the CT scale, so an array of 0.9 mm pitch reads as one flat plateau and
its brightest voxels say little about where each contact is. The array's geometry does: its
contacts sit one pitch apart along its axis, the first one a known distance from the apical
end of the metal. So the metal's skeleton is chained from end to end (bridging the gaps
between the thin apical contacts), smoothed into a curve, moved across itself onto the
deep spots near it, extended to the metal's apical end, and the contacts are walked off
along it one pitch at a time, each taking a deep spot close by where there is one.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.ndimage import gaussian_filter1d, label
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, shortest_path
from scipy.spatial import cKDTree

#: Apical end of the threshold segmentation to the centre of contact 1 (mm), per array: half
#: a contact length and the tip's blooming. Chosen on simulated pairs of a seed the benchmark
#: does not use; arrays not listed use half their contact length.
TIP_SHIFT_MM = {"slim22": 0.3}
#: Sampling of the centreline (mm).
STEP_MM = 0.1
#: Gaussian smoothing of the centreline (mm): irons out the skeleton's voxel steps.
SMOOTH_MM = 0.2
#: Skeleton points up to this many pitches apart are linked.
BRIDGE_PITCHES = 1.4
#: Pieces of the segmentation smaller than this are noise or streaks, not metal of the array.
MIN_PIECE_VOXELS = 8
#: The apical end is sought among metal voxels this close to the curve's end (mm).
END_RADIUS_MM = 1.0
#: A contact takes a deep spot up to this share of the pitch away.
SNAP_PITCHES = 0.5
#: The most a deep spot moves the rest of the comb, as a share of the pitch.
CARRY_PITCHES = 0.1


def _longest_skeleton_path(mask: np.ndarray, spacing, bridge_mm: float) -> Optional[np.ndarray]:
    """Voxel indices (k, j, i) of the longest geodesic path through the mask's skeleton.
    Skeleton points up to ``bridge_mm`` apart are linked, so the gaps between the thin apical
    contacts, which the threshold segmentation may leave apart, do not cut the array."""
    from skimage.morphology import skeletonize  # lazy: installed on first use in Slicer

    lab, _ = label(mask, np.ones((3, 3, 3), bool))
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    # without specks the bridges cannot wander off the array
    sk = np.argwhere(skeletonize(sizes[lab] >= MIN_PIECE_VOXELS))
    if len(sk) < 3:
        return None
    xyz = sk * np.asarray(spacing, float)[::-1]
    pairs = cKDTree(xyz).query_pairs(bridge_mm, output_type="ndarray")
    if not len(pairs):
        return None
    # squared lengths: neighbours are chained one by one, long links only bridge gaps
    w = np.sum((xyz[pairs[:, 0]] - xyz[pairs[:, 1]]) ** 2, axis=1)
    g = coo_matrix((w, (pairs[:, 0], pairs[:, 1])), shape=(len(sk), len(sk))).tocsr()
    _, lab = connected_components(g, directed=False)
    big = np.flatnonzero(lab == np.bincount(lab).argmax())

    def farthest(i):
        d, pred = shortest_path(g, directed=False, indices=i, return_predecessors=True)
        return big[int(np.argmax(np.where(np.isfinite(d[big]), d[big], -1)))], pred

    a, _ = farthest(big[0])
    b, pred = farthest(a)
    path = [b]
    while path[-1] != a:
        path.append(int(pred[path[-1]]))
    return sk[path[::-1]]


def _resample(points: np.ndarray, step: float, smooth_mm: float) -> np.ndarray:
    """Points every ``step`` mm along a polyline smoothed with a Gaussian of ``smooth_mm``."""
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    u = np.arange(0.0, s[-1] + 1e-9, step)
    pts = np.stack([np.interp(u, s, points[:, a]) for a in range(3)], 1)
    if len(pts) <= 3:
        return pts
    # twice the smoothed curve less its smoothing: irons out the voxel steps without the
    # shrinkage a plain Gaussian gives a spiral
    g = gaussian_filter1d(pts, smooth_mm / step, axis=0, mode="nearest")
    return 2.0 * g - gaussian_filter1d(g, smooth_mm / step, axis=0, mode="nearest")


def _towards_spots(curve, spots, radius_mm=0.6, along_mm=1.0):
    """The curve moved across itself onto the deep spots near it: the skeleton of a bloomed
    plateau wanders within it, its deepest spots keep closer to the array's axis."""
    tang = np.gradient(curve, axis=0)
    tang /= np.maximum(np.linalg.norm(tang, axis=1, keepdims=True), 1e-9)
    shift = np.zeros_like(curve)
    weight = np.zeros(len(curve))
    idx, d = cKDTree(curve).query(spots)[::-1]
    for j, (i, dist) in enumerate(zip(idx, d)):
        if dist <= radius_mm:
            off = spots[j] - curve[i]
            shift[i] += off - (off @ tang[i]) * tang[i]
            weight[i] += 1.0
    sigma = along_mm / STEP_MM
    w = gaussian_filter1d(weight, sigma, mode="nearest")
    sm = gaussian_filter1d(shift, sigma, axis=0, mode="nearest")
    return curve + np.where(w[:, None] > 1e-3, sm / np.maximum(w[:, None], 1e-3), 0.0)


def contacts_along_centreline(volume, mask: np.ndarray, array, spots=None) -> Optional[np.ndarray]:
    """Contact centres (LPS mm, contact 1 first) of ``array`` (an ElectrodeArray) in the
    metal ``mask`` of ``volume``; ``spots``: deep spots inside the metal (LPS mm). None
    where no centreline can be traced."""
    ske = _longest_skeleton_path(mask, volume.spacing, BRIDGE_PITCHES * array.pitch_mm)
    if ske is None:
        return None
    pts = volume.index_to_physical(ske[:, ::-1].astype(float))
    coords = volume.index_to_physical(np.argwhere(mask)[:, ::-1].astype(float))
    curve = _resample(pts, STEP_MM, SMOOTH_MM)
    if len(curve) < 5:
        return None
    # the apical end: the end nearer the metal's centroid, unless the other one leaves the
    # field of view (the lead runs out towards the middle ear)
    centroid = coords.mean(0)
    near_edge = [not volume.contains(c[None], margin_voxels=-2.0)[0] for c in (curve[0], curve[-1])]
    first_is_apex = np.linalg.norm(curve[0] - centroid) < np.linalg.norm(curve[-1] - centroid)
    if near_edge[0] != near_edge[1]:
        first_is_apex = near_edge[1]
    if not first_is_apex:
        curve = curve[::-1]
    spots = np.zeros((0, 3)) if spots is None else np.asarray(spots, float)
    if len(spots):
        curve = _towards_spots(curve, spots)
    # the skeleton stops short of the metal's apical end by about its radius: the end is the
    # metal voxel farthest out along the end tangent, near the curve's end
    t = curve[0] - curve[min(int(round(1.0 / STEP_MM)), len(curve) - 1)]
    t /= max(np.linalg.norm(t), 1e-9)
    near = np.linalg.norm(coords - curve[0], axis=1) <= END_RADIUS_MM
    reach = max(float(((coords[near] - curve[0]) @ t).max()), 0.0) + 0.5 * float(np.min(volume.spacing))
    ext = curve[0] + np.arange(reach, 0.0, -STEP_MM)[:, None] * t
    line = np.concatenate([ext, curve])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=1))])
    s_tip = s[len(ext)] - reach
    return _walk(line, s, s_tip + TIP_SHIFT_MM.get(array.key, array.contact_length_mm / 2), array, spots)


def _walk(line, s, u0, array, spots):
    """Contacts from arc length ``u0`` on, one pitch apart along ``line`` (arc length ``s``).
    Each takes the nearest unused deep spot within SNAP_PITCHES of a pitch, and part of
    that spot's offset along the curve carries on to the next contacts, so that a local
    correction does not drift; bounded, so that a spot between two contacts cannot make
    the comb skip one."""
    snap = SNAP_PITCHES * array.pitch_mm
    carry = CARRY_PITCHES * array.pitch_mm
    tree = cKDTree(spots) if len(spots) else None
    used, out, u = set(), [], u0
    for _ in range(array.n_contacts):
        if u > s[-1]:
            break
        p = np.array([np.interp(u, s, line[:, a]) for a in range(3)])
        if tree is not None:
            dist, idx = tree.query(p, k=min(6, len(spots)), distance_upper_bound=snap)
            for dj, j in zip(np.atleast_1d(dist), np.atleast_1d(idx)):
                if np.isfinite(dj) and int(j) not in used:
                    used.add(int(j))
                    p = spots[j]
                    win = np.flatnonzero(np.abs(s - u) <= snap)
                    du = float(s[win[np.argmin(np.linalg.norm(line[win] - p, axis=1))]]) - u
                    u += float(np.clip(du, -carry, carry))
                    break
        out.append(p)
        u += array.pitch_mm
    return np.array(out) if out else None
