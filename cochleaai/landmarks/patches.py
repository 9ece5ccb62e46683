"""Cubic patches (and boxes) in any orientation, and the intensity scaling the network sees.

A patch is a ``Volume`` of ``n`` x ``n`` x ``n`` voxels (or any box of ``(nx, ny, nz)``) of
``spacing`` mm whose axes are the columns of a rotation ``axes`` (LPS) and whose grid centre
is ``centre`` (LPS).
Resampling goes through SimpleITK; the source image is converted once
(:func:`as_sitk`) because the training loop samples it hundreds of times.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from cochleaai.volume import Volume

#: CT window mapped to [-1, 1] for the network: air -> -1, dense otic-capsule bone -> +1
#: (the window of models made before :data:`BONE_WINDOW`, still read from their cards).
DEFAULT_WINDOW = (-1000.0, 3000.0)
#: Bone window (HU) of new models. Air, soft tissue and the labyrinth's lumen all lie
#: below it (a drained labyrinth at about -750 HU and a fluid-filled one at about +200 HU
#: both map to -1), while the otic capsule (1500-2500 HU) spans it: the network and the
#: registration then see the bony walls only, whatever fills them.
BONE_WINDOW = (400.0, 2400.0)
#: Percentiles that anchor the grey scale of a scan that is not in HU (cone-beam CT).
ANCHOR_PERCENTILES = (0.5, 99.5)


def as_sitk(volume: Volume, what: str = "volume"):
    """The volume as a float32 SimpleITK image (check user input first with
    :func:`~cochleaai.landmarks.inputs.check_volume`: this only converts)."""
    return volume.copy(volume.numeric_array(what).astype(np.float32, copy=False)).to_sitk()


def _size_xyz(size) -> np.ndarray:
    """``n`` (a cube) or ``(nx, ny, nz)`` as three ints."""
    return np.broadcast_to(np.asarray(size, dtype=int), (3,)).copy()


def patch_grid(centre, axes, size, spacing: float) -> Volume:
    """An empty box of ``size`` voxels (``n`` for a cube, or ``(nx, ny, nz)``) of ``spacing``
    mm, centred on ``centre`` with the given axes."""
    n = _size_xyz(size)
    axes = np.asarray(axes, dtype=float)
    origin = np.asarray(centre, dtype=float) - axes @ (spacing * (n - 1) / 2.0)
    return Volume.empty(n[::-1], spacing, origin, axes)


def sample_patch(image, centre, axes, size, spacing: float, default: float,
                 interpolation: str = "linear", transform=None) -> Volume:
    """Resample ``image`` (SimpleITK) on the box :func:`patch_grid` describes; with
    ``transform`` (SimpleITK, box points -> image points), through it."""
    grid = patch_grid(centre, axes, size, spacing)
    # a uint8 image carries the geometry: no float copy of the (unused) grid voxels
    ref = sitk.Image([int(v) for v in grid.size], sitk.sitkUInt8)
    ref.SetSpacing([float(v) for v in grid.spacing])
    ref.SetOrigin([float(v) for v in grid.origin])
    ref.SetDirection([float(v) for v in grid.direction.reshape(-1)])
    interp = sitk.sitkNearestNeighbor if interpolation == "nearest" else sitk.sitkLinear
    out = sitk.Resample(image, ref, transform if transform is not None else sitk.Transform(), interp,
                        float(default), sitk.sitkFloat32)
    return grid.copy(sitk.GetArrayFromImage(out))


def normalise(array: np.ndarray, window=DEFAULT_WINDOW) -> np.ndarray:
    """Map the intensity window linearly to [-1, 1] (clipped), as float32."""
    lo, hi = float(window[0]), float(window[1])
    out = (np.asarray(array, dtype=np.float32) - lo) * np.float32(2.0 / (hi - lo)) - np.float32(1.0)
    return np.clip(out, -1.0, 1.0, out=out)


def intensity_anchors(array: np.ndarray) -> list:
    """The :data:`ANCHOR_PERCENTILES` of an image's voxels (from at most ~2 million)."""
    a = np.asarray(array).reshape(-1)
    step = max(1, a.size // 2_000_000)
    return [float(v) for v in np.percentile(a[::step], ANCHOR_PERCENTILES)]


def looks_like_hu(anchors) -> bool:
    """Whether an image's anchors read as CT in Hounsfield units: its darkest voxels are air
    (about -1000 HU) and its brightest are bone, not metal-free values of another scale."""
    low, high = anchors
    return -1150.0 <= low <= -850.0 and 600.0 <= high <= 4000.0


def hu_mapping(anchors, reference_anchors):
    """``(gain, offset)`` turning an image's grey values into the reference's scale: the
    identity for CT in HU (a physical scale, kept as it is); otherwise the linear map that
    sends the image's anchor percentiles onto the reference's."""
    if looks_like_hu(anchors) or reference_anchors is None:
        return 1.0, 0.0
    (lo, hi), (rlo, rhi) = anchors, reference_anchors
    if not hi > lo:
        return 1.0, 0.0
    gain = (rhi - rlo) / (hi - lo)
    return float(gain), float(rlo - gain * lo)


def orthogonal_stacks(cube: np.ndarray) -> list:
    """The three slice stacks of a cube ``(z, y, x)``: axial ``(z, y, x)``, coronal
    ``(y, z, x)``, sagittal ``(x, z, y)``; each slice is ``cube`` cut across one axis."""
    return [cube, np.transpose(cube, (1, 0, 2)), np.transpose(cube, (2, 0, 1))]


def from_stacks(maps: list) -> list:
    """Undo :func:`orthogonal_stacks` for three probability stacks (back to ``(z, y, x)``)."""
    return [maps[0], np.transpose(maps[1], (1, 0, 2)), np.transpose(maps[2], (1, 2, 0))]


def random_rotation(rng: np.random.Generator, max_deg: float) -> np.ndarray:
    """Rotation about x, then y, then z by angles drawn uniformly in +-``max_deg``."""
    ax, ay, az = np.radians(rng.uniform(-max_deg, max_deg, 3))
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx
