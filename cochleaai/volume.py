"""`Volume`: a voxel array with its physical geometry.

Conventions (the one place they are defined):

* ``array`` is indexed ``(k, j, i)`` = ``(z, y, x)``, as SimpleITK's ``GetArrayFromImage``.
* ``spacing``, ``origin`` and ``direction`` follow ITK: ``spacing = (sx, sy, sz)`` in mm,
  ``origin`` is the physical position of voxel (i, j, k) = (0, 0, 0), ``direction`` is the
  3x3 matrix whose columns are the i, j, k axes.
* Physical coordinates are **LPS** millimetres (the ITK/DICOM convention). MRML uses RAS;
  :func:`lps_to_ras` / :func:`ras_to_lps` and ``cochleaai.slicer.mrml`` convert.
* Points are ``(..., 3)`` arrays in ``(x, y, z)`` order; continuous indices are ``(i, j, k)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

from cochleaai.errors import CochleaAIError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
#: Voxels kept around the target grid's footprint before a B-spline resampling: the cubic
#: B-spline's prefilter runs over the whole source (seconds and a double-precision copy for a
#: full clinical CT), and its reach falls by a factor of about 0.27 per voxel, so 8 voxels
#: leave the values within 1e-4 of the image contrast of a whole-image resampling.
BSPLINE_MARGIN_VOXELS = 8


def lps_to_ras(points) -> np.ndarray:
    """Flip the first two axes (LPS <-> RAS is its own inverse)."""
    p = np.array(points, dtype=float, copy=True)
    p[..., :2] *= -1.0
    return p


ras_to_lps = lps_to_ras


def _as_triplet(value, name: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.size != 3 or not np.all(np.isfinite(arr)):
        raise CochleaAIError(f"{name} must be three finite numbers, got {value!r}.")
    return arr


@dataclass
class Volume:
    """A 3D image: ``array[k, j, i]`` plus ITK geometry in LPS millimetres."""

    array: np.ndarray
    spacing: np.ndarray = field(default_factory=lambda: np.ones(3))
    origin: np.ndarray = field(default_factory=lambda: np.zeros(3))
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self):
        self.array = np.asarray(self.array)
        if self.array.ndim != 3:
            raise CochleaAIError(
                f"A volume must be 3D, got an array of shape {self.array.shape}. "
                "Select a scalar 3D volume (not a 2D image or a vector volume).")
        self.spacing = _as_triplet(self.spacing, "spacing")
        if np.any(self.spacing <= 0):
            raise CochleaAIError(f"Voxel spacing must be positive, got {self.spacing}.")
        self.origin = _as_triplet(self.origin, "origin")
        d = np.asarray(self.direction, dtype=float)
        if d.shape != (3, 3) or not np.all(np.isfinite(d)):
            raise CochleaAIError("direction must be a finite 3x3 matrix.")
        if abs(abs(np.linalg.det(d)) - 1.0) > 1e-3:
            raise CochleaAIError("direction must be orthonormal (|det| = 1).")
        self.direction = d

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple:
        """Array shape ``(nz, ny, nx)``."""
        return self.array.shape

    @property
    def size(self) -> tuple:
        """ITK size ``(nx, ny, nz)``."""
        return tuple(int(n) for n in self.array.shape[::-1])

    @property
    def index_to_physical_matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix mapping (i, j, k, 1) to LPS (x, y, z, 1)."""
        m = np.eye(4)
        m[:3, :3] = self.direction @ np.diag(self.spacing)
        m[:3, 3] = self.origin
        return m

    def copy(self, array: Optional[np.ndarray] = None) -> "Volume":
        """A deep copy, optionally with another array of the same shape."""
        if array is None:
            array = self.array.copy()
        elif np.shape(array) != self.shape:
            raise CochleaAIError(f"array shape {np.shape(array)} does not match {self.shape}.")
        return Volume(np.asarray(array), self.spacing.copy(), self.origin.copy(), self.direction.copy())

    def same_geometry(self, other: "Volume", tol: float = 1e-5) -> bool:
        return (self.shape == other.shape
                and np.allclose(self.spacing, other.spacing, atol=tol)
                and np.allclose(self.origin, other.origin, atol=tol)
                and np.allclose(self.direction, other.direction, atol=tol))

    def numeric_array(self, what: str = "volume") -> np.ndarray:
        """The voxels in a numeric type every writer accepts (bool -> uint8, float16 ->
        float32); other types (strings, objects, complex) raise a clear error."""
        arr = self.array
        if arr.dtype == np.bool_:
            return arr.astype(np.uint8)
        if arr.dtype == np.float16:
            return arr.astype(np.float32)
        if arr.dtype.kind not in "iuf":
            raise CochleaAIError(f"The {what} has voxels of type {arr.dtype}; convert it to a "
                                 "numeric type first.")
        return arr

    def check_finite(self, what: str = "volume") -> None:
        """Raise a clear error for NaN/inf voxels or an empty array."""
        if self.array.size == 0:
            raise CochleaAIError(f"The {what} is empty.")
        if np.issubdtype(self.array.dtype, np.floating) and not np.all(np.isfinite(self.array)):
            raise CochleaAIError(f"The {what} contains NaN or infinite voxels; fill or mask them first.")

    def checked_array(self, what: str = "volume", min_per_axis: int = 2,
                      max_voxels: Optional[int] = None, image: bool = False) -> np.ndarray:
        """The numeric voxels of a usable 3D image, or a clear error: wrong voxel type, NaN,
        too small along an axis (a 2D image or a single slice), or too many voxels; with
        ``image``, also a constant volume (an image to analyse has some contrast)."""
        arr = self.numeric_array(what)
        self.check_finite(what)
        if min(self.shape) < min_per_axis:
            raise CochleaAIError(f"The {what} is too small ({self.shape} voxels); a 3D image of at least "
                                 f"{min_per_axis} voxels per axis is needed (a 2D image will not do).")
        if max_voxels is not None and arr.size > max_voxels:
            raise CochleaAIError(f"The {what} has {arr.size:,} voxels; crop it to a region around the ear "
                                 f"first (at most {max_voxels:,}).")
        if image and arr.min() == arr.max():
            raise CochleaAIError(f"The {what} is constant (every voxel {arr.flat[0]:g}): it holds no image; check "
                                 "that the right file was chosen and that its export did not fail.")
        return arr

    # ------------------------------------------------------- index <-> physical
    def index_to_physical(self, ijk) -> np.ndarray:
        """Continuous index ``(..., 3)`` in (i, j, k) order -> LPS points."""
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ (self.direction @ np.diag(self.spacing)).T + self.origin

    def physical_to_index(self, points) -> np.ndarray:
        """LPS points ``(..., 3)`` -> continuous (i, j, k) indices."""
        points = np.asarray(points, dtype=float)
        inv = np.linalg.inv(self.direction @ np.diag(self.spacing))
        return (points - self.origin) @ inv.T

    def contains(self, points, margin_voxels: float = 0.0) -> np.ndarray:
        """Whether each LPS point lies inside the voxel grid (voxel centres +- 0.5)."""
        ijk = self.physical_to_index(points)
        lo = -0.5 - margin_voxels
        hi = np.asarray(self.size, dtype=float) - 0.5 + margin_voxels
        return np.all((ijk >= lo) & (ijk <= hi), axis=-1)

    def physical_grid(self) -> np.ndarray:
        """LPS coordinates of every voxel centre, shape ``(nz, ny, nx, 3)``."""
        nz, ny, nx = self.shape
        k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
        return self.index_to_physical(np.stack([i, j, k], axis=-1))

    @property
    def center(self) -> np.ndarray:
        """LPS position of the geometric centre of the grid."""
        return self.index_to_physical((np.asarray(self.size, dtype=float) - 1.0) / 2.0)

    # ------------------------------------------------------------- SimpleITK
    @classmethod
    def from_sitk(cls, image) -> "Volume":
        if image.GetDimension() != 3:
            raise CochleaAIError(f"Expected a 3D image, got {image.GetDimension()}D.")
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise CochleaAIError("Expected a scalar image, got a vector/multi-component image.")
        return cls(sitk.GetArrayFromImage(image),
                   np.array(image.GetSpacing()), np.array(image.GetOrigin()),
                   np.array(image.GetDirection()).reshape(3, 3))

    def to_sitk(self):
        image = sitk.GetImageFromArray(np.ascontiguousarray(self.numeric_array()))
        image.SetSpacing([float(s) for s in self.spacing])
        image.SetOrigin([float(o) for o in self.origin])
        image.SetDirection([float(d) for d in self.direction.reshape(-1)])
        return image

    # ------------------------------------------------------------- resampling
    def resample_like(self, reference: "Volume", interpolation: str = "linear",
                      default_value: float = 0.0, transform=None) -> "Volume":
        """Resample onto ``reference``'s grid.

        ``interpolation``: ``"linear"``, ``"nearest"`` (labels), ``"bspline"``.
        ``transform``: optional SimpleITK transform mapping reference points into this volume.
        """
        interp = {"linear": sitk.sitkLinear, "nearest": sitk.sitkNearestNeighbor,
                  "bspline": sitk.sitkBSpline, "label": sitk.sitkLabelGaussian}
        if interpolation not in interp:
            raise CochleaAIError(f"Unknown interpolation {interpolation!r}; use one of {sorted(interp)}.")
        source = self.around(reference, BSPLINE_MARGIN_VOXELS) \
            if interpolation == "bspline" and transform is None else self
        out = sitk.Resample(source.to_sitk(), reference.to_sitk(),
                            transform if transform is not None else sitk.Transform(),
                            interp[interpolation], float(default_value))
        return Volume.from_sitk(out)

    def around(self, reference: "Volume", margin_voxels: int = 0) -> "Volume":
        """The part of this volume within ``margin_voxels`` of ``reference``'s footprint (a view
        of the same voxels; the whole volume where the footprint covers it or misses it)."""
        nz, ny, nx = reference.shape
        corners = np.array([[i, j, k] for i in (-0.5, nx - 0.5) for j in (-0.5, ny - 0.5)
                            for k in (-0.5, nz - 0.5)])
        ijk = self.physical_to_index(reference.index_to_physical(corners))
        size = np.asarray(self.size)
        lo = np.clip(np.floor(ijk.min(axis=0)) - margin_voxels, 0, size).astype(int)
        hi = np.clip(np.ceil(ijk.max(axis=0)) + margin_voxels + 1, 0, size).astype(int)
        if np.any(hi <= lo) or (np.all(lo == 0) and np.all(hi == size)):
            return self
        return Volume(self.array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]], self.spacing,
                      self.index_to_physical(lo.astype(float)), self.direction)

    def resample_isotropic(self, spacing: Optional[float] = None,
                           interpolation: str = "linear", default_value: float = 0.0) -> "Volume":
        """Resample to cubic voxels (default: the finest current spacing), same extent."""
        spacing = float(np.min(self.spacing) if spacing is None else spacing)
        if spacing <= 0:
            raise CochleaAIError("Isotropic spacing must be positive.")
        extent = np.asarray(self.size) * self.spacing
        size = np.maximum(1, np.round(extent / spacing)).astype(int)
        # keep the physical footprint centred: first voxel centre moves by half the change
        first = self.index_to_physical(-0.5 + 0.5 * spacing / self.spacing)
        return self.resample_like(
            Volume.empty(size[::-1], spacing, first, self.direction),
            interpolation, default_value)

    def crop_mm(self, center, size_mm, spacing: Optional[float] = None,
                interpolation: str = "linear", default_value: float = 0.0,
                direction=None) -> "Volume":
        """Extract a box of ``size_mm`` (x, y, z) centred on an LPS point.

        The box keeps this volume's orientation (or ``direction``) and uses ``spacing``
        (default: this volume's spacing). Parts outside the image get ``default_value``.
        """
        center = _as_triplet(center, "center")
        size_mm = _as_triplet(size_mm, "size_mm")
        sp = self.spacing if spacing is None else _as_triplet(spacing, "spacing")
        direction = self.direction if direction is None else np.asarray(direction, dtype=float)
        n = np.maximum(1, np.round(size_mm / sp)).astype(int)
        origin = center - direction @ (sp * (n - 1) / 2.0)
        return self.resample_like(Volume.empty(n[::-1], sp, origin, direction),
                                  interpolation, default_value)

    @classmethod
    def empty(cls, shape_zyx: Sequence[int], spacing, origin=(0, 0, 0), direction=None,
              dtype=np.float32) -> "Volume":
        """A zero volume of array shape ``(nz, ny, nx)``."""
        shape_zyx = tuple(int(s) for s in shape_zyx)
        if len(shape_zyx) != 3 or min(shape_zyx) < 1:
            raise CochleaAIError(f"Invalid volume shape {shape_zyx}.")
        return cls(np.zeros(shape_zyx, dtype=dtype), spacing, origin,
                   np.eye(3) if direction is None else direction)

    def __repr__(self) -> str:
        return (f"Volume(shape={self.shape}, dtype={self.array.dtype}, "
                f"spacing={np.round(self.spacing, 4).tolist()}, origin={np.round(self.origin, 3).tolist()})")

    def rounded_int16(self) -> "Volume":
        """A copy with the voxels rounded to the nearest integer and stored as int16, the type
        of CT in Hounsfield units (values beyond the int16 range saturate instead of wrapping)."""
        return self.copy(np.clip(np.rint(self.array), -32768, 32767).astype(np.int16))
