"""`make_phantom` and the `Phantom` it returns (see the package docstring for the numbers)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from scipy import ndimage

from cochleaai.errors import CochleaAIError
from cochleaai.io import write_markups_json, write_seg_nrrd, write_volume
from cochleaai.io.outputs import write_text_whole
from cochleaai.markups import Markups
from cochleaai.phantom import prior
from cochleaai.phantom.anatomy import MEDIAL, R_REF, InnerEar, build_surroundings, cochlea_outline
from cochleaai.phantom.options import FOVS, check_field_of_view, check_seed
from cochleaai.phantom.render import Box, Grid, blur, coverage, paint, smooth_noise, subvoxel_offsets, to_int16
from cochleaai.progress import Progress
from cochleaai.segments import (COCHLEA, INTERNAL_AUDITORY_CANAL, OTIC_CAPSULE, PHANTOM_SEGMENTS, SCALA_TYMPANI,
                                SCALA_VESTIBULI, VESTIBULE_CANALS, Segment)
from cochleaai.shape import CochleaModel
from cochleaai.shape.geometry import single_threaded_torch
from cochleaai.shape.params import DEFORMABLE_LOWER, DEFORMABLE_UPPER, PARAM_NAMES, as_dict
from cochleaai.shape.rotation import rotation_matrix, rotation_vector
from cochleaai.volume import Volume

PHANTOM_VERSION = "1.0"

#: Nominal intensities (HU) and the half-width of their uniform per-phantom jitter.
INTENSITIES: Dict[str, Tuple[float, float]] = {
    "air": (-1000.0, 0.0),
    "soft_tissue": (40.0, 10.0),
    "brain": (35.0, 5.0),
    "temporal_bone": (600.0, 50.0),
    "otic_capsule": (2000.0, 100.0),
    "cochlear_fluid": (0.0, 10.0),
    "bony_partition": (500.0, 50.0),
    "vestibular_fluid": (0.0, 10.0),
    "iac_content": (30.0, 10.0),
}
#: The drained (air-filled) labyrinth of cadaver specimens: median HU inside the expert
#: labels of the three air-filled specimens of Wimmer et al. (2019, Data in Brief 27,
#: 104782): -719, -741 and -792 HU.
AIR_FILLED_FLUID: Tuple[float, float] = (-750.0, 40.0)
LABYRINTHS = ("fluid", "air")
#: Standard deviation (HU) and feature size (mm) of the smooth texture of the temporal bone.
BONE_TEXTURE_SD_HU = 60.0
BONE_TEXTURE_MM = 2.0
#: Thickness (mm) of the bony sheet rendered between scala tympani and scala vestibuli.
PARTITION_THICKNESS_MM = 0.12
#: Margin (mm) kept between the inner ear (with its capsule) and the temporal field's border.
TEMPORAL_MARGIN_MM = 2.0

_LABEL_ORDER = (OTIC_CAPSULE, INTERNAL_AUDITORY_CANAL, VESTIBULE_CANALS, COCHLEA, SCALA_TYMPANI, SCALA_VESTIBULI)


# ============================================================================ result

@dataclass
class Phantom:
    """A synthetic temporal-bone CT with its ground truth.

    ``ct``: int16 HU volume (LPS). ``segments``: ``(Segment, bool mask)`` pairs of
    :data:`cochleaai.segments.PHANTOM_SEGMENTS` (masks may overlap: Cochlea = scala
    tympani + scala vestibuli). ``landmarks``: apex, center, round_window (LPS mm).
    ``truth``: JSON-serialisable description (seed, parameters, pose, imaging, intensities).
    ``model``: the posed :class:`CochleaModel`.
    """

    ct: Volume
    segments: List[Tuple[Segment, np.ndarray]]
    landmarks: Markups
    truth: dict
    model: CochleaModel
    inner_ear: Optional[InnerEar] = field(default=None, repr=False)

    def mask(self, name: str) -> np.ndarray:
        """The bool mask of the segment called ``name`` (case-insensitive)."""
        for seg, m in self.segments:
            if seg.name.lower() == str(name).lower():
                return m
        raise CochleaAIError(f"The phantom has no segment '{name}'; segments are "
                             f"{', '.join(s.name for s, _ in self.segments)}.")

    def labelmap(self) -> Volume:
        """One uint8 label per voxel: capsule 5, IAC 6, vestibule/canals 4, cochlea 1, then the
        scala values 2 (tympani) and 3 (vestibuli) overriding 1."""
        out = np.zeros(self.ct.shape, dtype=np.uint8)
        masks = {s.value: m for s, m in self.segments}
        for seg in _LABEL_ORDER:
            if seg.value in masks:
                out[masks[seg.value]] = seg.value
        return self.ct.copy(out)

    #: The files :meth:`save` writes.
    FILES = ("ct.nrrd", "labels.seg.nrrd", "landmarks.mrk.json", "truth.json")

    def save(self, folder) -> Dict[str, Path]:
        """Write ``ct.nrrd``, ``labels.seg.nrrd``, ``landmarks.mrk.json`` and ``truth.json``."""
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CochleaAIError(f"Cannot create the folder '{folder}' ({exc}); choose a writable location.") from exc
        paths = {
            "ct": write_volume(self.ct, folder / "ct.nrrd"),
            "labels": write_seg_nrrd(folder / "labels.seg.nrrd", self.segments, self.ct),
            "landmarks": write_markups_json(folder / "landmarks.mrk.json", self.landmarks),
        }
        truth_path = folder / "truth.json"
        try:
            write_text_whole(truth_path, json.dumps(self.truth, indent=2))
        except OSError as exc:
            raise CochleaAIError(f"Cannot write '{truth_path}' ({exc}); check that the folder is writable.") from exc
        paths["truth"] = truth_path
        return paths


# ============================================================================ inputs

def _check_theta(theta) -> Optional[np.ndarray]:
    if theta is None:
        return None
    try:
        t = np.asarray(theta, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        raise CochleaAIError("theta must be 4 deformable or 10 shape parameters (numbers).") from None
    if t.size not in (4, 10) or not np.all(np.isfinite(t)):
        raise CochleaAIError(f"theta must be 4 deformable parameters (a, b, alpha, phi) or all 10 "
                             f"({', '.join(PARAM_NAMES)}), finite; got {t.size} values.")
    d = t[:4]
    if np.any(d < DEFORMABLE_LOWER - 1e-9) or np.any(d > DEFORMABLE_UPPER + 1e-9):
        raise CochleaAIError(f"Deformable parameters {np.round(d, 4).tolist()} are outside the model "
                             f"bounds {DEFORMABLE_LOWER.tolist()} .. {DEFORMABLE_UPPER.tolist()}.")
    return t


def _check_nonnegative(value, name: str) -> Optional[float]:
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise CochleaAIError(f"{name} must be a number, got {value!r}.") from None
    if not math.isfinite(v) or v < 0:
        raise CochleaAIError(f"{name} must be a finite number >= 0, got {value!r}.")
    return v


# ============================================================================ generation

def _grid(fov: str) -> Grid:
    spec = FOVS[fov]
    size = np.array(spec["size"])
    spacing = np.full(3, float(spec["spacing"]))
    origin = -0.5 * (size - 1) * spacing              # grid centre at the LPS origin
    return Grid(tuple(size[::-1]), spacing, origin)


def _pose(fov: str, grid: Grid, deformable: np.ndarray, rng: np.random.Generator):
    """Rotation (model -> image), translation, head axes in the image, and a pose record."""
    outline = cochlea_outline(deformable)
    centre_grid = grid.origin + grid.matrix @ ((np.array(grid.shape[::-1]) - 1) / 2.0)
    if fov == "roi":
        rotvec, shift = prior.sample_roi_pose_noise(rng)
        R = rotation_matrix(rotvec)
        bbox_centre = 0.5 * (outline.min(0) + outline.max(0))
        t = centre_grid - R @ bbox_centre + shift
        head_axes = R @ R_REF.T
        record = {"template": "model axes along the image axes, cochlea bounding box centred",
                  "noise_rotation_deg": np.degrees(rotvec).tolist(), "noise_translation_mm": shift.tolist()}
        return R, t, head_axes, record
    R_rand, angles = prior.sample_temporal_rotation(rng)
    R = R_rand @ R_REF
    record = {"reference_rotation": R_REF.tolist(), "euler_xyz_deg": angles.tolist()}
    return R, None, np.eye(3), record


def _place_in_temporal(ear_points_model: np.ndarray, R: np.ndarray, grid: Grid, margin: float,
                       rng: np.random.Generator) -> np.ndarray:
    """A random translation: the bounding-box centre of the rotated points goes to the grid
    centre shifted 2 mm medially (room for the middle ear and ear canal laterally) plus a
    uniform +-4 mm per axis, then moved (if needed) to keep the points ``margin`` inside."""
    q = ear_points_model @ R.T
    lo_grid = grid.origin - 0.5 * grid.spacing
    hi_grid = grid.origin + grid.matrix @ (np.array(grid.shape[::-1]) - 0.5)
    target = 0.5 * (lo_grid + hi_grid) + 2.0 * MEDIAL + rng.uniform(-4.0, 4.0, 3)
    t = target - 0.5 * (q.min(0) + q.max(0))
    lo = lo_grid + margin - q.min(0)
    hi = hi_grid - margin - q.max(0)
    return np.where(lo <= hi, np.clip(t, lo, hi), 0.5 * (lo + hi))


def make_phantom(seed: int = 0, fov: str = "roi", progress=None, theta=None, noise_hu=None,
                 psf_fwhm_mm=None, labyrinth: str = "fluid") -> Phantom:
    """Generate a synthetic temporal-bone CT with ground truth.

    ``seed``: non-negative int; the same seed gives the identical phantom.
    ``fov``: ``"roi"`` (60 x 50 x 50 voxels of 0.2 mm around a cochlea at the template pose)
    or ``"temporal"`` (140 x 140 x 100 voxels of 0.3 mm, the inner ear at a random pose
    among temporal bone, air cells, middle ear and soft tissue).
    ``progress``: callable(fraction, message) or :class:`cochleaai.progress.Progress`.
    ``theta``: 4 deformable parameters (the pose is drawn) or all 10 (used as given)
    instead of a draw from the shape prior. ``noise_hu`` / ``psf_fwhm_mm``: override the
    drawn noise sigma / point-spread FWHM (0 disables them). ``labyrinth``: ``"fluid"``
    (as in patients) or ``"air"`` (a drained cadaver labyrinth, about -750 HU); everything
    else is the same phantom.
    """
    seed = check_seed(seed)
    if labyrinth not in LABYRINTHS:
        raise CochleaAIError(f"The labyrinth is 'fluid' or 'air', got {labyrinth!r}.")
    fov = check_field_of_view(fov)
    theta = _check_theta(theta)
    noise_override = _check_nonnegative(noise_hu, "noise_hu")
    psf_override = _check_nonnegative(psf_fwhm_mm, "psf_fwhm_mm")
    report = Progress.wrap(progress)
    report(0.0, "Drawing the phantom's parameters")

    # independent streams derived from the seed (SeedSequence(seed) is what default_rng(seed) uses)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7)]
    r_shape, r_pose, r_anatomy, r_scene, r_intensity, r_imaging, r_noise = streams

    with single_threaded_torch():
        deformable, profile_class, grid, R, t, head_axes, pose_record, ear = _draw_placement(
            fov, theta, r_shape, r_pose, r_anatomy)
        full_theta = np.concatenate([deformable, rotation_vector(R), t])
        model = CochleaModel(full_theta)
        ear.model = model
        report(0.05, "Placing the surrounding anatomy")
        sur = build_surroundings(ear, head_axes, r_scene)
        levels = dict(INTENSITIES)
        if labyrinth == "air":
            levels.update(cochlear_fluid=AIR_FILLED_FLUID, vestibular_fluid=AIR_FILLED_FLUID)
        values = {k: float(v + (r_intensity.uniform(-j, j) if j > 0 else 0.0)) for k, (v, j) in levels.items()}
        psf, noise = prior.sample_imaging(r_imaging)
        psf = psf if psf_override is None else psf_override
        noise = noise if noise_override is None else noise_override

        image, masks, stats = _render(grid, ear, sur, values, r_imaging, report.stage(0.1, 0.9))

    report(0.9, "Simulating the CT point-spread function and noise")
    image = blur(image, grid.spacing, psf)
    if noise > 0:
        image += r_noise.standard_normal(image.shape, dtype=np.float32) * np.float32(noise)
    ct = Volume(to_int16(image), grid.spacing, grid.origin, grid.direction)

    lm = model.landmarks()
    names = ("apex", "center", "round_window")
    landmarks = Markups(np.array([lm[n] for n in names]), list(names), "point", "CochleaLandmarks")
    segments = [(seg, masks[seg.value]) for seg in PHANTOM_SEGMENTS]
    truth = {
        "version": PHANTOM_VERSION,
        "seed": seed,
        "fov": fov,
        "labyrinth": labyrinth,
        "coordinate_system": "LPS",
        "shape": as_dict(full_theta),
        "theta": [float(v) for v in full_theta],
        "shape_source": "prior" if theta is None else "given",
        "profile_class": profile_class if theta is None else None,
        "pose": {"rotation_matrix": R.tolist(), "rotation_vector": rotation_vector(R).tolist(),
                 "rotation_angle_deg": float(np.degrees(np.linalg.norm(rotation_vector(R)))),
                 "translation_mm": t.tolist(), **pose_record},
        "spacing": grid.spacing.tolist(),
        "size": [int(v) for v in grid.shape[::-1]],
        "origin": grid.origin.tolist(),
        "direction": grid.direction.tolist(),
        "noise_hu": float(noise),
        "psf_fwhm_mm": float(psf),
        "intensities": values,
        "partition_thickness_mm": PARTITION_THICKNESS_MM,
        "bone_texture_sd_hu": BONE_TEXTURE_SD_HU,
        "landmarks": {n: lm[n].tolist() for n in names},
        "segments": {s.name: {"value": s.value, "voxels": int(masks[s.value].sum())} for s in PHANTOM_SEGMENTS},
        "anatomy": ear.as_dict(),
        "surroundings": {**sur.as_dict(), **stats},
        "prior": prior.prior_description(),
    }
    report(1.0, "Phantom ready")
    return Phantom(ct, segments, landmarks, truth, model, ear)


# ============================================================================ rendering

def _union_box(a, b):
    return Box(tuple(min(x, y) for x, y in zip(a.lo, b.lo)), tuple(max(x, y) for x, y in zip(a.hi, b.hi)))


def _inner(outer, inner):
    """Slices of ``inner`` inside the array of ``outer`` (inner must lie within outer)."""
    return tuple(slice(i0 - o0, i1 - o0) for i0, i1, o0 in zip(inner.lo, inner.hi, outer.lo))


def _render(grid: Grid, ear: InnerEar, sur, values: dict, rng: np.random.Generator,
            report: Progress):
    """Paint every layer with partial-volume coverage; returns the float32 image (before the
    PSF and noise) and the voxel-centre masks by label value."""
    T = ear.capsule_thickness
    hd = grid.half_diagonal
    step = float(grid.spacing.max())
    masks = {seg.value: np.zeros(grid.shape, dtype=bool) for seg in PHANTOM_SEGMENTS}

    report(0.0, "Temporal bone")
    image = (values["temporal_bone"]
             + BONE_TEXTURE_SD_HU * smooth_noise(rng, grid.shape, grid.spacing, BONE_TEXTURE_MM)).astype(np.float32)
    full = grid.full
    centres = grid.centres(full).reshape(-1, 3)

    def whole(sdf, value):
        d = sdf(centres).reshape(full.shape)
        if np.any(d > -hd):
            f, _ = coverage(grid, full, sdf, centre_sdf=d)
            paint(image, full, f, value)

    whole(sur.sdf_cranial, values["brain"])
    whole(sur.sdf_soft_tissue, values["soft_tissue"])
    whole(sur.sdf_outside, values["air"])

    report(0.1, "Middle ear and air cells")
    for sdf, lohi in ((sur.sdf_ear_canal, sur.ear_canal_box()), (sur.sdf_middle_ear, sur.middle_ear_box())):
        box = grid.box(*lohi)
        if box is not None:
            f, _ = coverage(grid, box, sdf)
            paint(image, box, f, values["air"])
    cells_in_view = 0
    for cell in sur.air_cells:
        c = sur.to_image(cell[:3])
        r = float(cell[3])
        box = grid.box(c - r, c + r)
        if box is None:
            continue
        cells_in_view += 1
        f, _ = coverage(grid, box, lambda p, c=c, r=r: r - np.linalg.norm(p - c, axis=-1))
        paint(image, box, f, values["air"])

    report(0.25, "Cochlea signed distance")
    cbox = grid.box(*ear.cochlea_box(), margin_mm=T + hd + 2.0 * step)
    if cbox is None:
        raise CochleaAIError("The cochlea lies outside the phantom's field of view; give a pose that "
                             "places it inside.")
    sdf_c, lab_c, part_c = _cochlea_fields(grid, cbox, ear.model)

    report(0.5, "Otic capsule")
    kbox = _union_box(cbox, grid.box(*ear.capsule_box(), margin_mm=hd + step) or cbox)
    in_k = _inner(kbox, cbox)
    union = ear.sdf_vestibular(grid.centres(kbox).reshape(-1, 3)).reshape(kbox.shape)
    union[in_k] = np.maximum(union[in_k], sdf_c)
    shell = union + T
    f, _ = coverage(grid, kbox, centre_sdf=shell, interpolated=True)
    paint(image, kbox, f, values["otic_capsule"])

    report(0.6, "Internal auditory canal")
    ibox = grid.box(*ear.iac_box())
    if ibox is not None:
        f, d = coverage(grid, ibox, ear.sdf_iac)
        paint(image, ibox, f, values["iac_content"])
        masks[INTERNAL_AUDITORY_CANAL.value][ibox.slices] = d > 0
    capsule = np.zeros(grid.shape, dtype=bool)
    capsule[kbox.slices] = (union > -T) & (union <= 0)
    masks[OTIC_CAPSULE.value] = capsule & ~masks[INTERNAL_AUDITORY_CANAL.value]

    report(0.65, "Vestibule and semicircular canals")
    vbox = grid.box(*ear.vestibular_box())
    if vbox is not None:
        f, d = coverage(grid, vbox, ear.sdf_vestibular)
        paint(image, vbox, f, values["vestibular_fluid"])
        masks[VESTIBULE_CANALS.value][vbox.slices] = d > 0

    report(0.7, "Cochlear fluid and partition")
    half_t = 0.5 * PARTITION_THICKNESS_MM
    fluid = (sdf_c > 0).astype(np.float32)
    sheet = ((sdf_c > 0) & (np.abs(part_c) < half_t)).astype(np.float32)
    # voxels near the wall or near the partition sheet; the partition coordinate changes by at
    # most about 1.3 mm per mm (it is measured along the tilted minor axis of the cross-section)
    near = np.argwhere((np.abs(sdf_c) < hd) | ((sdf_c > -hd) & (np.abs(part_c) < 1.3 * hd + half_t)))
    for start in range(0, len(near), 8192):
        idx = near[start:start + 8192]
        f_fluid, f_sheet = _cochlea_supersample(grid, cbox, idx, ear.model, half_t)
        fluid[idx[:, 0], idx[:, 1], idx[:, 2]] = f_fluid
        sheet[idx[:, 0], idx[:, 1], idx[:, 2]] = f_sheet
    sub = image[cbox.slices]
    sub *= 1.0 - fluid
    sub += (fluid - sheet) * values["cochlear_fluid"] + sheet * values["bony_partition"]
    masks[COCHLEA.value][cbox.slices] = sdf_c > 0
    masks[SCALA_TYMPANI.value][cbox.slices] = lab_c == SCALA_TYMPANI.value
    masks[SCALA_VESTIBULI.value][cbox.slices] = lab_c == SCALA_VESTIBULI.value
    # the basal end of the duct opens into the vestibule: those voxels belong to the cochlea
    masks[VESTIBULE_CANALS.value] &= ~masks[COCHLEA.value]
    report(1.0, "Layers painted")
    return image, masks, {"air_cells_in_view": cells_in_view}


def _cochlea_fields(grid: Grid, box, model: CochleaModel):
    """Signed distance, scala label and partition coordinate of the cochlea at the voxel
    centres of ``box``.

    The distance is first evaluated on every second voxel centre; where its trilinear
    interpolation proves the centre to be more than half a voxel diagonal outside (the
    distance is 1-Lipschitz, so the interpolation is off by at most the coarse cell diagonal),
    the interpolated value is kept (label 0); everywhere else the model is evaluated exactly.
    """
    n = np.array(box.shape)
    m = n // 2 + 1                                      # coarse nodes cover the box (k, j, i)
    k = box.lo[0] + 2 * np.arange(m[0])
    j = box.lo[1] + 2 * np.arange(m[1])
    i = box.lo[2] + 2 * np.arange(m[2])
    K, J, I = np.meshgrid(k, j, i, indexing="ij")
    coarse_pts = grid.origin + np.stack([I, J, K], -1).reshape(-1, 3) @ grid.matrix.T
    coarse = model.signed_distance(coarse_pts).reshape(tuple(m))
    fine = np.meshgrid(*(np.arange(v) / 2.0 for v in n), indexing="ij")
    sdf = ndimage.map_coordinates(coarse, fine, order=1, mode="nearest")
    bound = 2.0 * float(np.linalg.norm(grid.spacing))   # diagonal of a coarse cell
    exact = np.argwhere(sdf > -(grid.half_diagonal + bound))
    lab = np.zeros(box.shape, dtype=np.uint8)
    part = np.full(box.shape, np.inf)
    if len(exact):
        pts = grid.origin + (exact[:, ::-1] + np.asarray(box.lo[::-1])) @ grid.matrix.T
        s, lb, pp = model.labels(pts)
        where = (exact[:, 0], exact[:, 1], exact[:, 2])
        sdf[where], lab[where], part[where] = s, lb, pp
    return sdf, lab, part


def _cochlea_supersample(grid: Grid, box, idx: np.ndarray, model: CochleaModel, half_t: float):
    """Fluid and partition-sheet fractions of the voxels ``idx`` (local to ``box``), sampled at
    4 x 4 x 4 sub-voxel centres; hierarchical like :func:`render.supersampled_fraction`."""
    q = 0.5 * grid.half_diagonal                       # half diagonal of a half-size cell

    def sample(i, offsets):
        pts = grid.subvoxel_points(box, i, offsets)
        s, _, p = model.labels(pts.reshape(-1, 3))
        s, p = s.reshape(pts.shape[:-1]), p.reshape(pts.shape[:-1])
        return s > 0, (s > 0) & (np.abs(p) < half_t), s, p

    o1 = subvoxel_offsets(2)
    in1, sh1, s1, p1 = sample(idx, o1)
    fluid, sheet = in1.astype(np.float64), sh1.astype(np.float64)
    unsure = (np.abs(s1) < q) | ((s1 > -q) & (np.abs(p1) < half_t + 1.3 * q))
    if unsure.any():
        vi, si = np.nonzero(unsure)
        in2, sh2, _, _ = sample(idx[vi], o1[si][:, None, :] + 0.5 * o1[None, :, :])
        fluid[vi, si] = in2.mean(axis=1)
        sheet[vi, si] = sh2.mean(axis=1)
    return fluid.mean(axis=1), sheet.mean(axis=1)


# ============================================================================ parameters only

def _draw_placement(fov, theta, r_shape, r_pose, r_anatomy, with_ear: bool = True):
    """The draws that fix the cochlea: shape, pose and the inner-ear layout (which the
    random placement in a temporal bone must keep inside the grid); no rendering. Without
    ``with_ear`` the layout is built only where the placement needs it (ear ``None``)."""
    drawn_shape, profile_class = prior.sample_shape(r_shape, return_class=True)
    deformable = drawn_shape if theta is None else theta[:4].copy()
    grid = _grid(fov)
    R, t, head_axes, pose_record = _pose(fov, grid, deformable, r_pose)
    if theta is not None and theta.size == 10:
        R, t = rotation_matrix(theta[4:7]), theta[7:10].copy()
        pose_record = {"given": True}
        head_axes = np.eye(3) if fov == "temporal" else R @ R_REF.T
    if t is not None and not with_ear:
        return deformable, profile_class, grid, R, t, head_axes, pose_record, None
    # the inner ear in the model frame (independent of the pose), then posed
    ear = InnerEar.build(CochleaModel(np.concatenate([deformable, np.zeros(6)])), r_anatomy)
    if t is None:                                 # temporal: a random place that fits
        grow = ear.capsule_thickness + max(c.minor for c in ear.canals)
        t = _place_in_temporal(np.vstack([ear.cochlea_points, ear.vestibular_outline_model()]),
                               R, grid, TEMPORAL_MARGIN_MM + grow, r_pose)
    return deformable, profile_class, grid, R, t, head_axes, pose_record, ear


def drawn_theta(seed: int = 0, fov: str = "roi") -> np.ndarray:
    """The 10 cochlea shape parameters (LPS pose) of ``make_phantom(seed, fov)``, equal to its
    ``truth["theta"]``, without rendering the image. Used to recover the true cochlea of a
    phantom from its recorded seed."""
    seed = check_seed(seed)
    fov = check_field_of_view(fov)
    # the same streams, in the same order, as make_phantom
    r_shape, r_pose, r_anatomy = [np.random.default_rng(s)
                                  for s in np.random.SeedSequence(seed).spawn(7)][:3]
    with single_threaded_torch():
        deformable, _, _, R, t, _, _, _ = _draw_placement(fov, None, r_shape, r_pose, r_anatomy,
                                                          with_ear=False)
    return np.concatenate([deformable, rotation_vector(R), t])
