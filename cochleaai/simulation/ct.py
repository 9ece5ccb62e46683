"""Polychromatic CT simulation of a HU volume, with or without an electrode array.

For every axial slice of the ROI (x, y in-plane, slices along z):

1. HU -> water and bone volume fractions (:func:`~cochleaai.simulation.physics.decompose_hu`); the
   metal fraction of the voxelised array replaces that share of each voxel;
2. line integrals of each material through the ROI (sparse fan-beam projector) plus the
   analytic head around it (:class:`~cochleaai.simulation.projector.Body`);
3. Beer-Lambert per energy bin and the spectrum-weighted sum: expected primary photons per
   detector reading (``photons`` for an unattenuated ray);
4. scatter: a smooth offset, the primary blurred along the detector (Gaussian of
   ``scatter_sigma_mm`` at the isocentre) and scaled so that mean scatter / mean primary
   equals a scatter-to-primary ratio drawn once per volume in ``scatter_range`` (thesis:
   0.1 % to 2 %, after Glover 1982). This replaces the thesis's Monte-Carlo scatter sinograms;
5. quantum noise (Poisson: exact below 50 expected photons, Gaussian of equal variance
   above) and electronic noise (zero-mean Gaussian, variance ``electronic_variance`` in
   detected photons squared per reading; the thesis's value 0.04 gives its units no name, we
   read it in photons, where it only matters for nearly starved rays);
6. log transform against the blank scan (readings floored at half a photon, as scanners
   clamp), the scanner's water beam-hardening pre-correction, filtered back-projection
   (equiangular fan, Hann window by default) and HU calibration with the water reference,
   clipped to the scanner range [-1024, 3071] HU.

The electrode metal does not go through the voxel projector: its path lengths are exact
chords through the contact bands and the lead, per sub-ray across the channel and along
the slice profile (:mod:`cochleaai.simulation.chords`), and the detector averages the sub-rays'
intensities, so edge-gradient streaks and photon starvation appear. Tissue is blurred
along z by the same slice profile (``slice_fwhm_mm``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Dict, Optional, Tuple

import numpy as np
from scipy.ndimage import gaussian_filter1d

from cochleaai.errors import CochleaAIError
from cochleaai.markups import Markups
from cochleaai.progress import Progress
from cochleaai.segments import Segment
from cochleaai.shape import CochleaModel
from cochleaai.simulation.chords import Cylinders, SubRays, metal_subray_lengths, slice_profile
from cochleaai.simulation.electrodes import insert_array, metal_cylinders
from cochleaai.simulation.physics import METALS, decompose_hu, make_beam, water_precorrection
from cochleaai.simulation.projector import Body, FanBeamGeometry, RoiGrid, body_line_integrals, roi_projector
from cochleaai.volume import Volume

HU_MIN, HU_MAX = -1024.0, 3071.0
MAX_VOXELS = 4_000_000          # refuse larger ROIs (memory grows with slices x views x channels)
#: Side (mm) of the cube simulated around the cochlea when the pre-op volume is larger.
SIMULATION_BOX_MM = 15.0
#: How a post-op is made. "injected": the given pre-op plus the artifact, the simulated scan
#: with the implant minus the same scan (same draws) without it, so the image keeps its own
#: resolution, noise and texture wherever the metal does not reach; "simulated": the
#: simulated scanner's image with the implant, everything in it from the simulated scanner.
ARTIFACT_MODES = ("injected", "simulated")
ARTIFACT_MODE = "injected"


@dataclass(frozen=True)
class ScanConfig:
    kvp: int = 120
    n_bins: int = 10
    geometry: FanBeamGeometry = field(default_factory=FanBeamGeometry)
    body: Optional[Body] = field(default_factory=Body)
    roi_center_mm: Tuple[float, float] = (45.0, 0.0)   # in the scanner plane (lateral offset)
    photons: float = 2.0e5          # unattenuated photons per reading (ray and view)
    noise: bool = True
    electronic_variance: float = 0.04
    scatter: bool = True
    scatter_range: Tuple[float, float] = (0.001, 0.02)
    scatter_sigma_mm: float = 40.0
    water_correction: bool = True
    window: str = "hann"             # FBP kernel (cochleaai.simulation.projector.WINDOWS)
    metal: str = "platinum_iridium"
    clip: bool = True
    #: FWHM (mm) of the slice sensitivity profile along z; 0 = an ideal thin slice.
    slice_fwhm_mm: float = 0.3
    #: "chords": exact path lengths through the contact bands and the lead, per sub-ray;
    #: "voxels": the voxelised metal share projected like tissue (the older, coarser model).
    metal_model: str = "chords"
    #: Sub-rays across each channel (detector aperture) for the metal.
    channel_subrays: int = 3
    #: Samples of the slice profile along z for the metal.
    z_subrays: int = 3

    def without(self, *effects: str) -> "ScanConfig":
        """A copy with "noise" and/or "scatter" switched off."""
        return replace(self, **{e: False for e in effects})


@dataclass
class ScanResult:
    image: Volume                   # float32 HU
    scatter_to_primary: float
    seconds: Dict[str, float]
    warnings: list


METAL_SEGMENT_COLOR = (0.75, 0.75, 0.85)


def torch_from(array):
    import torch  # lazy: installed on first use in Slicer

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def check_hu_volume(volume: Volume, what: str = "CT volume") -> list:
    """Refuse unusable volumes; return warnings for suspicious ones (non-HU scale)."""
    if not isinstance(volume, Volume):
        raise CochleaAIError(f"The {what} must be a cochleaai Volume.")
    arr = volume.checked_array(what, min_per_axis=4, max_voxels=MAX_VOXELS, image=True)
    if arr.dtype.itemsize == 1:      # 8 bits hold 256 grey levels: not the -1000..3000 HU of a CT
        raise CochleaAIError(f"The {what} is stored as {arr.dtype} (256 grey levels at most), which cannot hold "
                             "Hounsfield units; give the CT as exported by the scanner (e.g. int16 NRRD or "
                             "NIfTI, or the DICOM series).")
    warns = []
    lo, hi = float(arr.min()), float(arr.max())
    # inner-ear CT always holds fluid (about 0 HU) and bone (above 1000 HU)
    if hi - lo < 300 or hi < 100 or lo < -3100 or hi > 40000:
        warns.append(f"The {what} spans {lo:.0f} to {hi:.0f}; it does not look like CT in Hounsfield "
                     "units (air about -1000, water 0, bone above 1000). Results may be meaningless.")
    return warns


def _grid_of(volume: Volume, config: ScanConfig) -> RoiGrid:
    nz, ny, nx = volume.shape
    sx, sy = float(volume.spacing[0]), float(volume.spacing[1])
    return RoiGrid(ny, nx, sy, sx, float(config.roi_center_mm[0]), float(config.roi_center_mm[1]))


def _along_z(maps: dict, config: ScanConfig, sz: float) -> dict:
    """Tissue maps blurred by the slice profile (tissue varies slowly enough at this scale
    that blurring its attenuation equals blurring its intensity)."""
    if config.slice_fwhm_mm <= 0:
        return maps

    sigma = config.slice_fwhm_mm / 2.3548 / sz
    return {k: gaussian_filter1d(v, sigma, axis=0, mode="nearest") for k, v in maps.items()}


def scanner_cylinders(volume: Volume, parts, grid: RoiGrid):
    """Metal cylinders ``(centre, axis, half, outer, inner, share)`` in LPS mm -> the scanner
    frame of ``grid`` (x, y in the scanner plane, z = slice index x spacing), keeping those
    that reach into the volume."""
    centre, axis, half, outer, inner, share = (np.asarray(x, float) for x in parts)
    sx, sy, sz = (float(v) for v in volume.spacing)

    def frame(points):
        ijk = volume.physical_to_index(points)
        return np.stack([grid.lo[0] + (ijk[:, 0] + 0.5) * sx, grid.lo[1] + (ijk[:, 1] + 0.5) * sy,
                         ijk[:, 2] * sz], axis=1)

    c = frame(centre)
    a = frame(centre + axis) - c
    a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    reach = np.hypot(half, outer)
    nz = volume.shape[0]
    keep = ((c[:, 0] + reach > grid.lo[0]) & (c[:, 0] - reach < grid.hi[0])
            & (c[:, 1] + reach > grid.lo[1]) & (c[:, 1] - reach < grid.hi[1])
            & (c[:, 2] + reach > -sz) & (c[:, 2] - reach < nz * sz))
    return Cylinders(c[keep], a[keep], half[keep], outer[keep], inner[keep], share[keep])


def _scatter_shape(primary: np.ndarray, config: ScanConfig) -> np.ndarray:
    """The primary blurred along the detector. Scatter is smooth, so the blur runs on rows
    binned 8:1 and is interpolated back (the same result, 8x fewer taps)."""
    n = primary.shape[-1]
    b = 8
    pad = (-n) % b
    rows = np.pad(primary, ((0, 0), (0, pad)), mode="edge").reshape(primary.shape[0], -1, b).mean(-1)
    sigma = config.scatter_sigma_mm / config.geometry.pitch_iso_mm / b
    coarse = gaussian_filter1d(rows, sigma, axis=-1, mode="nearest")
    x = (np.arange(n) + 0.5) / b - 0.5
    xc = np.arange(coarse.shape[-1])
    return np.stack([np.interp(x, xc, r) for r in coarse]).astype(np.float32)


def _noisy(expected: np.ndarray, rng: np.random.Generator, variance: float) -> np.ndarray:
    """Poisson photon counts (Gaussian approximation above 50 expected photons) plus
    electronic noise of ``variance`` photons^2. The Gaussian draws come from torch (fast),
    seeded from ``rng``."""
    import torch  # lazy: installed on first use in Slicer

    gen = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
    e = torch.from_numpy(np.ascontiguousarray(expected, dtype=np.float32))
    sd = torch.sqrt(e)
    if variance > 0:
        sd = torch.sqrt_(sd.square_().add_(float(variance)))
    out = torch.randn(e.shape, generator=gen).mul_(sd).add_(e).numpy()
    low = expected < 50.0
    if low.any():
        out[low] = rng.poisson(expected[low]).astype(np.float32)
        if variance > 0:
            out[low] += np.float32(np.sqrt(variance)) * rng.standard_normal(int(low.sum()), dtype=np.float32)
    return out


def simulate_scan(volume: Volume, metal_fraction: Optional[np.ndarray] = None,
                  config: ScanConfig = ScanConfig(), seed=0, progress=None,
                  metal_parts=None) -> ScanResult:
    """Simulate the CT scan of ``volume`` (HU) with an optional metal fraction array (same
    shape, values in [0, 1]) and return the reconstructed image on the same grid.

    ``metal_parts``: the array's metal as cylinders (:func:`~cochleaai.simulation.electrodes.metal_cylinders`);
    with ``config.metal_model == "chords"`` their exact sub-ray path lengths replace the
    projection of ``metal_fraction``, which then only displaces the tissue it overlaps."""
    p = Progress.wrap(progress)
    warns = check_hu_volume(volume)
    if config.metal not in METALS:
        raise CochleaAIError(f"Unknown metal {config.metal!r}; choose one of {', '.join(METALS)}.")
    seq = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(int(seed))
    rng_scatter, rng_noise = (np.random.default_rng(s) for s in seq.spawn(2))
    seconds = {}
    t = time.perf_counter()

    p(0.0, "building the projector")
    g = config.geometry
    grid = _grid_of(volume, config)
    if config.body is not None:
        config.body.check_contains(grid.lo, grid.hi)
    proj = roi_projector(g, grid)
    seconds["projector_setup"] = time.perf_counter() - t
    t = time.perf_counter()

    p(0.15, "splitting HU into materials")
    beam = make_beam(config.kvp, config.n_bins)
    fractions = decompose_hu(volume.array.astype(np.float32), beam)
    maps = {"water": fractions["water"], "bone": fractions["bone"]}
    if config.metal_model not in ("chords", "voxels"):
        raise CochleaAIError(f"Unknown metal model {config.metal_model!r}; use 'chords' or 'voxels'.")
    chords = config.metal_model == "chords" and metal_parts is not None
    metal_slices = np.zeros(0, dtype=int)
    if metal_fraction is not None:
        m = np.asarray(metal_fraction, dtype=np.float32)
        if m.shape != volume.shape or not np.all(np.isfinite(m)):
            raise CochleaAIError("The metal fraction must be a finite array of the volume's shape.")
        m = np.clip(m, 0.0, 1.0)
        maps = {k: v * (1.0 - m) for k, v in maps.items()}
        if not chords:
            metal_slices = np.flatnonzero(m.reshape(m.shape[0], -1).max(1) > 0)
    maps = _along_z(maps, config, float(volume.spacing[2]))
    seconds["materials"] = time.perf_counter() - t
    t = time.perf_counter()

    p(0.2, "projecting")
    roi = {k: proj.project_windows(v) for k, v in maps.items()}           # (S, V, W_in) in mm
    metal_win = None
    if metal_slices.size:
        metal_win = proj.project_windows(m[metal_slices])
    if config.body is not None:
        body_full = body_line_integrals(g, config.body, grid.lo, grid.hi)
    else:
        body_full = {k: np.zeros((g.n_views, g.n_channels), np.float32) for k in ("water", "bone")}
    body_win = {k: proj.gather(v, "in") for k, v in body_full.items()}
    hit_flat, hit_len, sub_w = None, None, None
    if chords:
        cyl = scanner_cylinders(volume, metal_parts, grid)
        zs, zw = slice_profile(config.slice_fwhm_mm, config.z_subrays)
        nc = max(1, int(config.channel_subrays))
        sub = SubRays(tuple(((np.arange(nc) + 0.5) / nc - 0.5).tolist()), zs, zw)
        hit_flat, hit_len = metal_subray_lengths(cyl, g, grid, volume.shape[0], float(volume.spacing[2]),
                                                 proj.in_window_channels(), sub)
        sub_w = torch_from(sub.weights())
    seconds["projection"] = time.perf_counter() - t
    t = time.perf_counter()

    p(0.5, "X-ray physics: spectrum, scatter, noise")
    import torch  # lazy: installed on first use in Slicer

    # path lengths (mm) per material; the energy loop runs in torch (threaded, float32)
    water_len = torch.from_numpy(roi["water"] + body_win["water"])
    bone_len = torch.from_numpy(roi["bone"] + body_win["bone"])
    metal_len = torch.from_numpy(metal_win) if metal_win is not None else None
    idx = torch.from_numpy(metal_slices)
    primary = torch.zeros(water_len.shape, dtype=torch.float32)
    common = np.zeros((g.n_views, g.n_channels), np.float32)
    if hit_flat is not None and hit_flat.size:
        hit_idx = torch.from_numpy(hit_flat)
        hit_water, hit_bone = water_len.reshape(-1)[hit_idx], bone_len.reshape(-1)[hit_idx]
        hit_metal = torch.from_numpy(hit_len)
        hit_primary = torch.zeros(hit_idx.shape, dtype=torch.float32)
    else:
        hit_idx = None
    for w, mw, mb, mm in zip(beam.weights, beam.mu["water"], beam.mu["bone"], beam.mu[config.metal]):
        att = water_len * float(mw)
        att.add_(bone_len, alpha=float(mb))
        if metal_len is not None:
            att[idx] += float(mm) * metal_len
        primary.add_(torch.exp_(att.neg_()), alpha=float(w * config.photons))
        if hit_idx is not None:
            # the detector adds the intensities of its sub-rays (edge-gradient effect)
            tissue = torch.exp(-(hit_water * float(mw) + hit_bone * float(mb)))
            through = torch.exp(hit_metal * (-float(mm))) @ sub_w
            hit_primary.add_(tissue * through, alpha=float(w * config.photons))
        common += np.float32(w * config.photons) * np.exp(-(mw * body_full["water"] + mb * body_full["bone"]))
    if hit_idx is not None:
        primary.reshape(-1)[hit_idx] = hit_primary
    primary = primary.numpy()
    spr = 0.0
    if config.scatter:
        spr = float(rng_scatter.uniform(*config.scatter_range))
        shape = _scatter_shape(common, config)
        inside = common < 0.999 * config.photons         # rays through the head
        base = common[inside].mean() if inside.any() else common.mean()
        scatter_full = (spr * base / shape[inside].mean() if inside.any() else spr) * shape
        common = common + scatter_full
        primary += proj.gather(scatter_full, "in")
    counts = _noisy(primary, rng_noise, config.electronic_variance) if config.noise else primary
    seconds["physics"] = time.perf_counter() - t
    t = time.perf_counter()

    p(0.7, "log transform and water pre-correction")
    def to_line(c):
        # log against the blank scan, then the water pre-correction polynomial (Horner, in place)
        x = torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32)).clamp(min=0.5)
        x = torch.log_(x.div_(float(config.photons))).neg_()
        if not config.water_correction:
            return x.numpy()
        out = torch.full_like(x, float(coeffs[0]))
        for a in coeffs[1:]:
            out.mul_(x).add_(float(a))
        return out.numpy()

    coeffs = water_precorrection(beam)
    line = to_line(counts)
    line_common = to_line(common)
    # the windows carry the difference to the (slice-independent) head, filtered exactly once
    deviation = line - proj.gather(line_common, "in")
    outside = ~((proj.in_window_channels() >= 0) & (proj.in_window_channels() < g.n_channels))
    deviation[:, outside] = 0.0
    p(0.8, "filtered back-projection")
    common_filtered = proj.filter_common(line_common, config.window)
    mu = proj.fbp_windows(deviation, common_filtered, config.window)
    hu = 1000.0 * (mu / beam.mu_ref - 1.0)
    if config.clip:
        hu = np.clip(hu, HU_MIN, HU_MAX)
    seconds["reconstruction"] = time.perf_counter() - t
    p(1.0, "scan simulated")
    return ScanResult(volume.copy(hu.astype(np.float32)), spr, seconds, warns)


@dataclass
class PostopSimulation:
    """A simulated post-operative scan and what it was made from."""

    postop: Volume                  # int16 HU, the simulated scan with the implant
    metal: Volume                   # uint8 mask of the voxelised array (contacts and lead)
    target: Volume                  # int16 HU: pre-op with the contact centres marked
    insertion: object               # electrodes.Insertion
    scatter_to_primary: float
    seconds: Dict[str, float]
    warnings: list
    seed: int = 0
    clean: Optional[Volume] = None  # int16 HU: the same simulated scan without the implant
    artifact_mode: str = "simulated"
    artifact: Optional[Volume] = None  # float32: the scan with the implant minus clean, unclipped

    def contacts_markups(self):
        """Numbered contacts (E1 at the apex) with their angular depth as descriptions."""
        ins = self.insertion
        desc = [("extracochlear" if not inside else f"{d:.1f} deg")
                for d, inside in zip(ins.contact_depth_deg, ins.intracochlear)]
        return Markups(ins.contacts, ins.labels(), name=f"{ins.array.key} contacts", descriptions=desc)

    def metal_segments(self) -> list:
        """``[(Segment, mask)]`` of the electrode metal, for .seg.nrrd files and MRML."""
        return [(Segment(1, "Electrode metal", METAL_SEGMENT_COLOR), self.metal.array)]

    def summary(self) -> dict:
        ins = self.insertion
        out = dict(ins.summary())
        out.update({"seed": self.seed, "artifact_mode": self.artifact_mode,
                    "scatter_to_primary": round(self.scatter_to_primary, 5),
                    "contact_depth_deg": [None if not np.isfinite(d) else round(float(d), 1)
                                          for d in ins.contact_depth_deg],
                    "seconds": {k: round(v, 3) for k, v in self.seconds.items()}})
        return out


def _scanner_range(image: Volume, config: ScanConfig) -> Volume:
    """A scan as the scanner stores it: int16 HU, clipped to its range when ``config.clip``."""
    arr = np.asarray(image.array, np.float32)
    return image.copy(np.clip(arr, HU_MIN, HU_MAX) if config.clip else arr).rounded_int16()


def inject_artifact(preop: Volume, artifact: Volume) -> Volume:
    """``preop`` plus a metal ``artifact`` (a simulated scan with the implant minus the same scan
    without it, unclipped: :attr:`PostopSimulation.artifact`), rounded and clipped to the
    scanner range."""
    if preop.shape != artifact.shape:
        raise CochleaAIError("The pre-op and the artifact must share one grid to inject the artifact.")
    arr = np.asarray(preop.array, np.float32) + np.asarray(artifact.array, np.float32)
    return preop.copy(np.clip(np.rint(arr), HU_MIN, HU_MAX).astype(np.int16))


def scan_seed(seed: int) -> np.random.SeedSequence:
    """The draws (scatter, noise) of the scan of :func:`simulate_postop` with ``seed``; a fresh
    sequence each call, so the scan without the implant repeats them exactly."""
    return np.random.SeedSequence(int(seed)).spawn(2)[1]


def mark_contacts(preop: Volume, contacts: np.ndarray, radius_mm: float = 0.15,
                  value: float = HU_MAX) -> Volume:
    """The thesis's augmented target: the pre-op image with each contact centre set to the
    top of the scanner range (voxels within ``radius_mm``, at least the nearest voxel)."""
    arr = np.array(preop.array, dtype=np.promote_types(preop.array.dtype, np.int16), copy=True)
    grid = preop.physical_grid()
    for c in np.atleast_2d(contacts):
        if not preop.contains(c[None])[0]:
            continue
        d2 = np.sum((grid - c) ** 2, axis=-1)
        sel = d2 <= radius_mm ** 2
        sel.reshape(-1)[np.argmin(d2)] = True
        arr[sel] = value
    return preop.copy(arr)


def simulation_roi(preop: Volume, model, box_mm: float = SIMULATION_BOX_MM) -> Volume:
    """The region of ``preop`` to simulate: a cube of side ``box_mm`` centred on the cochlea
    of ``model`` (a CochleaModel or its 10 parameters, LPS), rounded to int16 HU, air where it
    leaves the image. A volume at most 5 % wider than the box is returned itself (the
    simulation cost grows with the volume, and a cochlea region needs no more)."""
    extent = np.asarray(preop.size) * preop.spacing
    if not np.any(extent > box_mm * 1.05):
        return preop
    if not isinstance(model, CochleaModel):
        model = CochleaModel(np.asarray(model, dtype=float))
    return preop.crop_mm(model.landmarks()["center"], box_mm, default_value=-1000.0).rounded_int16()


def simulate_postop(preop: Volume, model, array: str = "flex28", depth_deg: Optional[float] = None,
                    seed: int = 0, config: ScanConfig = ScanConfig(), progress=None,
                    artifact_mode: str = ARTIFACT_MODE, clean_scan: bool = True) -> PostopSimulation:
    """Insert ``array`` along the scala tympani of ``model`` (a CochleaModel or its 10
    parameters, LPS) in ``preop`` (HU) and simulate the post-operative scan.

    ``depth_deg=None`` draws the insertion depth from the array's typical range; the same
    seed gives the same depth, scatter ratio and noise. The scan is simulated twice, with
    and without the implant (``clean``); ``artifact_mode`` (:data:`ARTIFACT_MODES`) says
    whether the post-op is ``preop`` with the artifact injected or the simulated scan itself.
    ``clean_scan=False`` skips the scan without the implant where a "simulated" post-op is all
    that is needed (``clean`` is then None).
    """
    if artifact_mode not in ARTIFACT_MODES:
        raise CochleaAIError(f"Unknown artifact mode {artifact_mode!r}; use one of {', '.join(ARTIFACT_MODES)}.")
    p = Progress.wrap(progress)
    warns = check_hu_volume(preop, "pre-operative volume")
    seconds = {}
    t = time.perf_counter()
    p(0.0, "placing the electrode array")
    s_depth = np.random.SeedSequence(int(seed)).spawn(1)[0]
    ins = insert_array(model, preop, array, depth_deg, rng=np.random.default_rng(s_depth))
    if not ins.metal_mask.any():
        raise CochleaAIError("The electrode array does not fall inside the volume; check that the cochlea "
                             "model matches this volume (same patient, same coordinates).")
    if not preop.contains(ins.contacts).all():
        warns.append("Some contacts lie outside the volume; they are not in the simulated image.")
    seconds["electrodes"] = time.perf_counter() - t
    # unclipped scans: the metal's full brightness goes into an injected artifact, and the
    # scanner's range is applied once, to the final image
    raw = replace(config, clip=False)
    scan = simulate_scan(preop, ins.metal_fraction.array, raw, seed=scan_seed(seed), progress=p.stage(0.05, 0.5),
                         metal_parts=metal_cylinders(ins))
    seconds.update(scan.seconds)
    t = time.perf_counter()
    clean = artifact = None
    if clean_scan or artifact_mode == "injected":
        clean = simulate_scan(preop, None, raw, seed=scan_seed(seed), progress=p.stage(0.5, 0.95)).image
        artifact = clean.copy(np.asarray(scan.image.array, np.float32) - clean.array)
        seconds["scan_without_implant"] = time.perf_counter() - t
    t = time.perf_counter()
    if artifact_mode == "injected":
        postop = inject_artifact(preop, artifact)
    else:
        postop = _scanner_range(scan.image, config)
    clean = None if clean is None else _scanner_range(clean, config)
    metal = preop.copy(ins.metal_mask.astype(np.uint8))
    target = mark_contacts(preop, ins.contacts)
    seconds["target"] = time.perf_counter() - t
    seconds["total"] = float(sum(seconds.values()))
    p(1.0, "post-operative scan simulated")
    return PostopSimulation(postop, metal, target, ins, scan.scatter_to_primary, seconds,
                            warns + scan.warnings, int(seed), clean, artifact_mode, artifact)
