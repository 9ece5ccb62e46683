"""Patch registration (thesis section 5.2.4): rigid, then diffeomorphic demons.

The reference patch is the *fixed* image and the target the *moving* one. SimpleITK
transforms map fixed points to moving points, so the composed transform carries the
reference landmarks straight into the target's physical space:

    x_target = rigid(x_ref + d(x_ref))

where ``d`` is the demons displacement field on the reference patch grid. (The thesis
registers the other way and inverts the field; with the roles swapped no inversion is
needed, and no accuracy is lost to an approximate inverse.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from cochleaai.landmarks.align import ncc
from cochleaai.landmarks.patches import normalise, sample_patch
from cochleaai.progress import Progress


@dataclass
class RegistrationResult:
    rigid: object            # sitk.Euler3DTransform, reference -> target
    field: object            # sitk.DisplacementFieldTransform on the reference patch, or None
    rigid_metric: float
    ncc_before: float        # masked NCC after the rigid stage
    ncc_after: float         # masked NCC after demons
    start: int = 0           # which of the starts given won
    start_name: str = ""     # what that start was (set by the caller)
    admissible: bool = True  # the winning rigid pose passed the caller's test (see register_patch)

    def map_points(self, points: np.ndarray) -> np.ndarray:
        out = []
        for x in np.asarray(points, float):
            y = np.array(self.field.TransformPoint([float(v) for v in x])) if self.field is not None else x
            out.append(self.rigid.TransformPoint([float(v) for v in y]))
        return np.asarray(out, float)


def region_mask(mask: np.ndarray, spacing: float, margin_mm: float = 3.0) -> np.ndarray:
    """The structure mask grown by ``margin_mm``: where the registration is measured."""
    dist = ndimage.distance_transform_edt(~mask, sampling=spacing)
    return dist <= margin_mm


def model_region(model) -> np.ndarray:
    """:func:`region_mask` of a model's reference patch: where alignment and registration
    compare the patches (compute it once per detection and pass it on)."""
    return region_mask(model.patch_mask, model.patch_spacing)


def sitk_seed(seed: int) -> int:
    """A seed for SimpleITK's random generators: any int, 0 included, as a fixed non-zero
    32-bit one. SimpleITK reads 0 as ``sitkWallClock``, a new sample every run."""
    return int(seed) % (2 ** 32 - 1) + 1


def rigid_register(fixed, fixed_region, moving, initial, iterations: int = 120, seed: int = 0,
                   shrink=(2, 1), smoothing_mm=(0.6, 0.0)):
    """Multi-resolution rigid (Euler 3D) registration, correlation metric in the region,
    on a random sample of its voxels drawn from ``seed`` (the same sample every run).
    ``shrink``/``smoothing_mm``: the pyramid (a coarse one screens many starts cheaply)."""
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsCorrelation()
    reg.SetMetricFixedMask(fixed_region)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.3, sitk_seed(seed))
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-3,
                                                 numberOfIterations=iterations,
                                                 relaxationFactor=0.6, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([int(v) for v in shrink])
    reg.SetSmoothingSigmasPerLevel([float(v) for v in smoothing_mm])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(sitk.Euler3DTransform(initial), inPlace=False)
    out = reg.Execute(fixed, moving)
    if isinstance(out, sitk.CompositeTransform):
        out = out.GetNthTransform(0)
    return sitk.Euler3DTransform(out), float(reg.GetMetricValue())


#: Translation search before each rigid start: +- this many mm along each reference axis,
#: on a grid of :data:`SEARCH_SPACING_MM`. The centres of mass of the structure in the
#: reference and the target disagree when either scan cuts part of it off at its border
#: (a cropped field of view), by more than the rigid optimiser recovers from.
SEARCH_MM = 6.0
SEARCH_SPACING_MM = 0.6


def coarse_template(fixed, spacing: float = SEARCH_SPACING_MM) -> np.ndarray:
    """The normalised reference patch ``fixed`` (a Volume) smoothed and resampled on the
    translation search's grid (same centre and axes)."""
    n = np.maximum(4, np.round(np.array(fixed.size) * float(fixed.spacing[0]) / spacing)).astype(int)
    smooth = sitk.SmoothingRecursiveGaussian(fixed.to_sitk(), 0.5 * spacing)
    return sample_patch(smooth, fixed.center, fixed.direction, n, spacing, -1.0).array


def search_translation(fixed, moving, pose, search_mm: float = SEARCH_MM,
                       spacing: float = SEARCH_SPACING_MM, template=None):
    """``pose`` (reference -> target, ``sitk.Euler3DTransform``) shifted by the translation
    of the reference patch ``fixed`` (a normalised patch Volume) that best matches the
    target ``moving`` (normalised SimpleITK image) within +-``search_mm``, and that best
    normalised cross-correlation. All shifts are scored at once by FFT
    (``skimage.feature.match_template``) on a coarse grid; the rigid registration refines.
    ``template``: :func:`coarse_template` of ``fixed`` when the caller searches many poses."""
    from skimage.feature import match_template  # lazy: scikit-image is installed on first use in Slicer

    template = coarse_template(fixed, spacing) if template is None else template
    if float(template.std()) == 0.0:
        return sitk.Euler3DTransform(pose), 0.0
    m = int(np.ceil(search_mm / spacing))
    size = np.array(template.shape[::-1]) + 2 * m
    search = sample_patch(moving, fixed.center, fixed.direction, size, spacing, -1.0, transform=pose).array
    score = match_template(search, template)                        # (z, y, x) shifts 0..2m
    k = np.unravel_index(int(np.argmax(score)), score.shape)
    shift_xyz = (np.array(k[::-1], float) - m) * spacing
    rot = np.array(pose.GetMatrix(), float).reshape(3, 3)
    out = sitk.Euler3DTransform(pose)
    out.SetTranslation([float(v) for v in np.array(pose.GetTranslation()) + rot @ fixed.direction @ shift_xyz])
    return out, float(score[k])


#: Iterations of the coarse pass that screens many starts (see register_patch).
SCREEN_ITERATIONS = 40


def demons_register(fixed, moving, iterations=(30, 20), smoothing: float = 1.5):
    """Two-level diffeomorphic demons; returns the displacement field on ``fixed``'s grid."""
    field = None
    levels = [2, 1]
    for shrink, its in zip(levels, iterations):
        f = sitk.Shrink(sitk.SmoothingRecursiveGaussian(fixed, 0.3 * shrink), [shrink] * 3) if shrink > 1 else fixed
        m = sitk.Shrink(sitk.SmoothingRecursiveGaussian(moving, 0.3 * shrink), [shrink] * 3) if shrink > 1 else moving
        demons = sitk.DiffeomorphicDemonsRegistrationFilter()
        demons.SetNumberOfIterations(int(its))
        demons.SetStandardDeviations(float(smoothing))
        demons.SetMaximumUpdateStepLength(1.0)
        if field is None:
            field = demons.Execute(f, m)
        else:
            init = sitk.Resample(field, f, sitk.Transform(), sitk.sitkLinear, 0.0, field.GetPixelID())
            field = demons.Execute(f, m, init)
    if field.GetSize() != fixed.GetSize():
        field = sitk.Resample(field, fixed, sitk.Transform(), sitk.sitkLinear, 0.0, field.GetPixelID())
    return field


def normalised_target(model, target_image):
    """The target on the network's [-1, 1] scale (the model's window, clipped)."""
    moving = sitk.Cast(target_image, sitk.sitkFloat32)
    lo, hi = model.window
    return sitk.ShiftScale(sitk.Clamp(moving, sitk.sitkFloat32, lo, hi), -lo - (hi - lo) / 2.0, 2.0 / (hi - lo))


def register_patch(model, target_image, initial, deformable: bool = True, progress=None,
                   region=None, rigid: bool = True, admissible=None, screen: int = 0) -> RegistrationResult:
    """Rigid then demons registration of the model's reference patch to the target.

    ``target_image``: SimpleITK float image of the target (HU). ``initial``:
    ``sitk.Euler3DTransform`` reference -> target from the localisation and alignment, or
    a list of them: each start is registered rigidly and the best masked NCC is kept
    (a start a quarter turn off converges to a wrong pose that another start avoids).
    ``region``: :func:`model_region` when the caller has it already. ``rigid=False`` takes
    ``initial`` as the finished rigid pose (demons only). ``admissible``: a test of a rigid
    pose (``pose -> bool``); a pose that fails it loses to every pose that passes, whatever
    their correlations (a pose that carries landmarks out of the image is wrong however well
    the part of the patch left inside matches). ``screen``: with more starts than this, each
    start first gets a coarse, short registration and only this many of the best go on to
    the full one.
    """
    p = Progress.wrap(progress)
    region = model_region(model) if region is None else region
    fixed = model.patch_volume(normalise(model.patch, model.window)).to_sitk()
    fixed_region = model.patch_volume(region).to_sitk()          # bool -> uint8 mask image
    moving = normalised_target(model, target_image)
    f_arr = sitk.GetArrayFromImage(fixed)
    starts = list(initial) if isinstance(initial, (list, tuple)) else [initial]

    def judge(pose):
        warped = sitk.Resample(moving, fixed, pose, sitk.sitkLinear, -1.0, sitk.sitkFloat32)
        score = ncc(f_arr, sitk.GetArrayFromImage(warped), region)
        return (bool(admissible(pose)) if admissible is not None else True, score), warped

    order = list(range(len(starts)))
    if rigid and screen and len(starts) > screen:
        # a coarse pass over every start, the full registration from the best few of them
        coarse = []
        for n, k in enumerate(order):
            p(0.25 * n / len(order), f"Screening start {n + 1}/{len(order)}")
            pose, _ = rigid_register(fixed, fixed_region, moving, starts[k], iterations=SCREEN_ITERATIONS,
                                     shrink=(2,), smoothing_mm=(0.6,))
            coarse.append((judge(pose)[0], k, pose))
        coarse.sort(key=lambda c: c[0], reverse=True)
        order = [k for _, k, _ in coarse[:screen]]
        for _, k, pose in coarse[:screen]:
            starts[k] = pose
    best, best_key = None, None
    for n, k in enumerate(order):
        start = starts[k]
        p(0.5 * n / len(order), "Rigid registration" + (f" (start {n + 1}/{len(order)})" if len(order) > 1 else ""))
        if rigid:
            pose, metric = rigid_register(fixed, fixed_region, moving, start)
        else:
            pose, metric = sitk.Euler3DTransform(start), float("nan")
        key, warped = judge(pose)
        if best is None or key > best_key:
            best, best_key = (pose, metric, key[1], warped, k), key
    pose, metric, ncc_rigid, warped, best_start = best
    field_tf, ncc_final = None, ncc_rigid
    if deformable:
        p(0.5, "Diffeomorphic demons registration")
        field = demons_register(fixed, warped)
        field_tf = sitk.DisplacementFieldTransform(sitk.Cast(field, sitk.sitkVectorFloat64))
        final = sitk.Resample(moving, fixed, sitk.CompositeTransform([pose, field_tf]),
                              sitk.sitkLinear, -1.0, sitk.sitkFloat32)
        ncc_final = ncc(f_arr, sitk.GetArrayFromImage(final), region)
    p(1.0, "Registered")
    return RegistrationResult(pose, field_tf, metric, ncc_rigid, ncc_final, best_start,
                              admissible=best_key[0])
