"""Atlas registration, the approach of SlicerCochlea: an atlas CT with its cochlea label is
registered to the patient's scan with elastix from the user's click, and the label is
carried over.

An atlas is a CT with expert points and label (here a development specimen and the cochlear
part of its label, :func:`cochleaai.realct.cochlear_part`), mirrored when its side is not the
target's. elastix registers the target (fixed) to the atlas (moving) on crops around the
cochlea: rigid, affine, then B-spline (final grid spacing 2 mm), Mattes mutual information,
3 resolutions each, measured in a sphere around the target's centre point. It starts from
the similarity that takes the target's three points onto the atlas's (``"3 points"``), or
from the centre alone and the best of a coarse rotation search (``"centre + rotation
search"``). The label is warped with nearest neighbour onto the target's grid.

itk-elastix is an optional extra (``pip install 'cochleaai[peers]'``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from cochleaai import realct
from cochleaai.errors import CochleaAIError
from cochleaai.progress import Progress
from cochleaai.segmentation.orientation import sphere_rotations
from cochleaai.volume import Volume

#: The expert points of an atlas, and those the "3 points" start takes from the user.
ROLES = ("center", "apex", "round window")
STARTS = ("3 points", "centre + rotation search")
#: Cube (mm) of the target around its centre point, and of the atlas (larger: room for the
#: turn and scale of the start).
FIXED_CROP_MM = 20.0
MOVING_CROP_MM = 26.0
#: The fixed-image mask: a sphere of this radius (mm) around the target's centre point.
MASK_RADIUS_MM = 8.0
STAGES = ("rigid", "affine", "bspline")
RESOLUTIONS = 3
GRID_SPACING_MM = 2.0
#: A smoke test's schedule (``fast``): one resolution and few iterations per stage; its
#: masks mean nothing.
FAST_RESOLUTIONS = 1
FAST_ITERATIONS = 25
#: ... and every this-many-th rotation of the rotation search.
FAST_ROTATION_STRIDE = 10
#: The rotation search: voxel size (mm) of the crops it compares, and Mattes histogram bins.
SEARCH_SPACING_MM = 0.5
SEARCH_BINS = 32
INSTALL = "pip install 'cochleaai[peers]'"


def load_itk():
    """The ``itk`` package with elastix, or a clear error saying how to install it."""
    try:
        import itk  # lazy: itk-elastix is the optional extra 'peers'
        itk.ElastixRegistrationMethod  # noqa: B018 -- itk without elastix fails here
    except (ImportError, AttributeError) as exc:
        raise CochleaAIError(f"The atlas-registration peer needs itk-elastix, which is not installed: "
                             f"{INSTALL}") from exc
    return itk


@dataclass
class Atlas:
    """A CT, the label to carry over (uint8 on the CT's grid), expert points (LPS) and side."""

    id: str
    ct: Volume
    label: Volume
    points: Dict[str, np.ndarray]
    side: str

    @classmethod
    def from_specimen(cls, specimen: realct.Specimen) -> "Atlas":
        """A development specimen with the cochlear part of its label."""
        ct, labels = specimen.ct(), specimen.labels()
        label = labels.copy(realct.cochlear_part(labels, specimen).astype(np.uint8))
        if not label.same_geometry(ct):
            label = label.resample_like(ct, "nearest")
        return cls(specimen.id, ct, label, specimen.points(ROLES), specimen.side)

    def facing(self, side: str) -> "Atlas":
        """This atlas, mirrored left-right about its centre point when ``side`` is the other."""
        if side == self.side:
            return self
        centre = self.points["center"]
        return Atlas(self.id, mirror(self.ct, centre), mirror(self.label, centre),
                     {k: mirror_points(v, centre) for k, v in self.points.items()}, side)


#: Left-right reflection of LPS coordinates.
FLIP_X = np.diag([-1.0, 1.0, 1.0])


def mirror_points(points, centre) -> np.ndarray:
    """Points reflected left-right (LPS x) in the plane through ``centre``."""
    centre = np.asarray(centre, float)
    return (np.asarray(points, float) - centre) @ FLIP_X + centre


def mirror(volume: Volume, centre) -> Volume:
    """The volume reflected left-right (LPS x) in the plane through ``centre``, without
    resampling: the voxels are reversed along i so that the direction keeps its handedness."""
    last = volume.index_to_physical([volume.size[0] - 1, 0, 0])
    direction = FLIP_X @ volume.direction @ FLIP_X
    return Volume(volume.array[:, :, ::-1].copy(), volume.spacing.copy(), mirror_points(last, centre), direction)


def similarity(source, target) -> Tuple[np.ndarray, np.ndarray]:
    """``(A, b)``: the similarity ``x -> A x + b`` (a proper rotation and a scale) taking
    ``source`` points onto ``target`` points at least squares (Umeyama)."""
    source, target = np.asarray(source, float), np.asarray(target, float)
    ms, mt = source.mean(0), target.mean(0)
    x, y = source - ms, target - mt
    u, s, vt = np.linalg.svd(y.T @ x)
    d = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    scale = float(np.trace(np.diag(s) @ d) / (x ** 2).sum())
    a = scale * u @ d @ vt
    return a, mt - a @ ms


def grid_crop(volume: Volume, centre, size_mm: float) -> Tuple[Volume, np.ndarray]:
    """A cube of about ``size_mm`` around ``centre`` cut from the grid (no resampling; cut
    at the borders), and the (i, j, k) index of its first voxel."""
    ijk = np.round(volume.physical_to_index(centre)).astype(int)
    half = np.ceil(size_mm / 2.0 / volume.spacing).astype(int)
    lo = np.clip(ijk - half, 0, np.array(volume.size) - 1)
    hi = np.clip(ijk + half + 1, lo + 1, volume.size)
    array = volume.array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
    return Volume(array, volume.spacing.copy(), volume.index_to_physical(lo), volume.direction.copy()), lo


def sphere_mask(grid: Volume, centre, radius_mm: float = MASK_RADIUS_MM) -> Volume:
    """The voxels of ``grid`` within ``radius_mm`` of ``centre`` (uint8)."""
    return grid.copy((np.linalg.norm(grid.physical_grid() - centre, axis=-1) <= radius_mm).astype(np.uint8))


def search_image(volume: Volume, centre, size_mm: float):
    """A float cube of ``size_mm`` around ``centre``, smoothed and resampled to the search's
    voxel size (SimpleITK image)."""
    smooth = sitk.SmoothingRecursiveGaussian(sitk.Cast(volume.to_sitk(), sitk.sitkFloat32), SEARCH_SPACING_MM / 2)
    return Volume.from_sitk(smooth).crop_mm(centre, [size_mm] * 3, spacing=SEARCH_SPACING_MM).to_sitk()


def rotation_search(fixed: Volume, moving: Volume, centre, atlas_centre,
                    fast: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """``(R, b)``: the rotation about the centre points (``x -> R x + b``) among the coarse
    set of :func:`cochleaai.segmentation.orientation.sphere_rotations` whose mutual
    information between the crops (in the mask sphere) is highest (``fast``: a tenth of them)."""
    fixed_image = search_image(fixed, centre, 2 * MASK_RADIUS_MM)
    moving_image = search_image(moving, atlas_centre, MOVING_CROP_MM)
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(SEARCH_BINS)
    method.SetMetricFixedMask(sphere_mask(Volume.from_sitk(fixed_image), centre).to_sitk())
    method.SetMetricSamplingStrategy(method.NONE)
    method.SetInterpolator(sitk.sitkLinear)
    best = (np.inf, np.eye(3))
    for r in sphere_rotations()[::FAST_ROTATION_STRIDE if fast else 1]:
        method.SetInitialTransform(sitk.AffineTransform(r.ravel().tolist(), (atlas_centre - r @ centre).tolist()))
        value = method.MetricEvaluate(fixed_image, moving_image)        # minus the mutual information
        if value < best[0]:
            best = (value, r)
    return best[1], atlas_centre - best[1] @ centre


def _words(values) -> List[str]:
    return [f"{float(v):.12g}" for v in np.ravel(values)]


def to_itk(itk, volume: Volume, dtype=np.float32):
    image = itk.image_from_array(np.ascontiguousarray(volume.array, dtype=dtype))
    image.SetSpacing([float(v) for v in volume.spacing])
    image.SetOrigin([float(v) for v in volume.origin])
    image.SetDirection(itk.matrix_from_array(np.ascontiguousarray(volume.direction, dtype=float)))
    return image


def initial_transform(itk, a: np.ndarray, b: np.ndarray, centre):
    """elastix's parameter map of ``x -> a x + b`` (fixed to moving points), as an affine
    transform about ``centre``."""
    start = itk.ParameterObject.New()
    start.AddParameterMap({
        "Transform": ["AffineTransform"], "NumberOfParameters": ["12"],
        "TransformParameters": _words(np.concatenate([np.ravel(a), a @ centre + b - centre])),
        "CenterOfRotationPoint": _words(centre), "InitialTransformParameterFileName": ["NoInitialTransform"],
        "HowToCombineTransforms": ["Compose"], "FixedImageDimension": ["3"], "MovingImageDimension": ["3"]})
    return start


def parameter_maps(itk, fast: bool = False):
    """Rigid, affine and B-spline stages, Mattes mutual information, 3 resolutions each
    (``fast``: the smoke test's schedule)."""
    maps = itk.ParameterObject.New()
    for stage in STAGES:
        m = maps.GetDefaultParameterMap(stage, FAST_RESOLUTIONS if fast else RESOLUTIONS, GRID_SPACING_MM)
        m["Metric"] = ["AdvancedMattesMutualInformation"] + list(m["Metric"][1:])
        m["WriteResultImage"] = ["false"]
        if fast:
            m["MaximumNumberOfIterations"] = [str(FAST_ITERATIONS)]
        maps.AddParameterMap(m)
    return maps


def register(itk, fixed: Volume, moving: Volume, mask: Volume, start, threads: int = 1, fast: bool = False):
    """elastix's transform (fixed to moving points) of the stages from the ``start`` map."""
    method = itk.ElastixRegistrationMethod.New(to_itk(itk, fixed), to_itk(itk, moving))
    method.SetParameterObject(parameter_maps(itk, fast))
    method.SetFixedMask(to_itk(itk, mask, np.uint8))
    method.SetInitialTransformParameterObject(start)
    method.SetLogToConsole(False)
    method.SetNumberOfThreads(int(threads))
    method.UpdateLargestPossibleRegion()
    return method.GetTransformParameterObject()


def warp_label(itk, label: Volume, transform) -> np.ndarray:
    """The label carried onto the fixed grid of ``transform`` with nearest neighbour (bool)."""
    for n in range(transform.GetNumberOfParameterMaps()):
        transform.SetParameter(n, "FinalBSplineInterpolationOrder", "0")
    warp = itk.TransformixFilter.New(to_itk(itk, label))
    warp.SetTransformParameterObject(transform)
    warp.SetLogToConsole(False)
    warp.UpdateLargestPossibleRegion()
    return itk.array_from_image(warp.GetOutput()) > 0.5


def segment_with_atlas(target_ct: Volume, target_points: Mapping[str, np.ndarray], side: str, atlas: Atlas,
                       start: str = "3 points", progress=None, threads: int = 1,
                       fast: bool = False) -> Tuple[Volume, float]:
    """The atlas's label registered onto the target CT: ``(uint8 mask on the target's grid,
    seconds)``. ``start``: ``"3 points"`` (the target's centre, apex and round-window
    points) or ``"centre + rotation search"`` (its centre point only). ``fast``: the smoke
    test's short schedule (:func:`parameter_maps`)."""
    if start not in STARTS:
        raise CochleaAIError(f"Unknown start {start!r} for the atlas peer; use one of {', '.join(STARTS)}.")
    given = [r for r in (ROLES if start == "3 points" else ROLES[:1]) if r not in target_points]
    if given:
        raise CochleaAIError(f"The '{start}' start needs the target's {', '.join(given)} point(s).")
    itk = load_itk()
    p = Progress.wrap(progress)
    t0 = time.perf_counter()
    atlas = atlas.facing(side)
    centre = np.asarray(target_points["center"], float)
    fixed, lo = grid_crop(target_ct, centre, FIXED_CROP_MM)
    moving = grid_crop(atlas.ct, atlas.points["center"], MOVING_CROP_MM)[0]
    label = grid_crop(atlas.label, atlas.points["center"], MOVING_CROP_MM)[0]
    if start == "3 points":
        a, b = similarity([target_points[r] for r in ROLES], [atlas.points[r] for r in ROLES])
    else:
        p(0.0, f"atlas {atlas.id}: rotation search")
        a, b = rotation_search(fixed, moving, centre, atlas.points["center"], fast)
    p(0.1, f"atlas {atlas.id}: elastix")
    transform = register(itk, fixed, moving, sphere_mask(fixed, centre), initial_transform(itk, a, b, centre),
                         threads, fast)
    p(0.9, f"atlas {atlas.id}: warping the label")
    warped = warp_label(itk, label, transform)
    out = np.zeros(target_ct.shape, np.uint8)
    out[lo[2]:lo[2] + warped.shape[0], lo[1]:lo[1] + warped.shape[1], lo[0]:lo[0] + warped.shape[2]] = warped
    p(1.0, f"atlas {atlas.id}: done")
    return target_ct.copy(out), time.perf_counter() - t0


def vote(masks: Sequence[Volume]) -> Volume:
    """Majority vote of masks on one grid (a voxel is in when more than half say so)."""
    if not masks:
        raise CochleaAIError("A vote needs at least one mask.")
    count = sum((m.array > 0).astype(np.int32) for m in masks)
    return masks[0].copy((2 * count > len(masks)).astype(np.uint8))


def rank_atlases(dice: Mapping[Tuple[str, str], float], candidates: Sequence[str]) -> List[Tuple[str, float]]:
    """Candidates by their mean Dice when registered to each other candidate (``dice[(atlas,
    target)]``), best first, with that mean."""
    means = [(a, float(np.mean([dice[(a, b)] for b in candidates if b != a]))) for a in candidates]
    return sorted(means, key=lambda x: -x[1])
