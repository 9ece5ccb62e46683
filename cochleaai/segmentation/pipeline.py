"""Segment the cochlea of a CT volume with the logistic shape model, end to end.

``segment(volume, points=None, settings=None, progress=None) -> CochleaSegmentation``

1. Check the input (3D, numeric, finite, a grey-value image rather than a label map,
   large enough for a cochlea).
2. Initial pose: the ROI template (model axes along the image axes, the cochlea's
   bounding box at the centre of the volume), or the user's points: ``center`` sets the
   position; ``apex`` and ``round window`` set the orientation (with ``center`` too, a
   least-squares rigid fit of the three). A left ear is fitted as a mirrored right ear.
3. A region of interest around the initial cochlea is resampled to 0.2 mm.
4. A search for the start (:func:`_search_starts`): local shifts and shapes ranked by the
   likelihood, and a placement of the mean shape over the whole translation range ranked
   by the capsule contrast (:func:`.quality.capsule_contrast`).
5. The model is fitted by EM (:func:`.logistic.fit_logistic_shape`) from each distinct
   start on every ``fit_subsample``-th voxel per axis, with the pose bounded around the
   initial pose; the fit with the highest capsule contrast is kept.
6. On the full ROI grid: posterior label map (SROI, ``l_ref_final``), the shape model
   region (SSI, ``S >= 0``), and the shape uncertainty from ``samples`` draws of the
   Laplace posterior ``N(theta*, Sigma*)`` (the shape function linearised at theta*
   within 1.5 mm of the surface); clinical measures over the same draws.
7. Unsupervised quality control (:mod:`.quality`).
"""
from __future__ import annotations

import copy
import functools
import itertools
import time
from dataclasses import dataclass, field, replace
from typing import Dict, Optional

import numpy as np
from scipy.special import expit

from cochleaai.errors import CochleaAIError
from cochleaai.progress import Progress
from cochleaai.segmentation import orientation
from cochleaai.segmentation.appearance import (START_LUMEN_DEPTH_MM, START_WALL_SHELL_MM, AppearanceModel,
                                               appearance_around_shape, em_step, initial_appearance,
                                               intensity_calibration)
from cochleaai.segmentation.logistic import FitSettings, _log_joint, fit_logistic_shape
from cochleaai.segmentation.quality import capsule_contrast, quality_score
from cochleaai.segmentation.shapes import CochleaShape
from cochleaai.shape import CochleaModel, default_params
from cochleaai.shape.measures import summarize
from cochleaai.shape.mesh import surface_arrays
from cochleaai.shape.params import param_names, with_pose
from cochleaai.shape.rotation import rotation_matrix, rotation_vector
from cochleaai.volume import Volume

#: Size (x, y, z, mm) of the region fitted when no points are given: the thesis ROI
#: (60 x 50 x 50 voxels of 0.2 mm).
TEMPLATE_ROI_MM = (12.0, 10.0, 10.0)
#: Size of the region fitted around user points: the cochlea (about 9 x 7 x 4 mm) in any
#: orientation plus its capsule.
POINTS_ROI_MM = (13.0, 13.0, 13.0)
ROI_SPACING_MM = 0.2
SIDES = ("right", "left")
LABEL_MAPS = ("lumen-wall", "shape-model")
POINT_ROLES = ("center", "apex", "round window")
#: The model landmark (CochleaModel.landmarks) each point role stands for.
LANDMARK_OF_ROLE = {"center": "center", "apex": "apex", "round window": "round_window"}
#: A mirror of the left-right (LPS x) axis turns a left cochlea into a right one.
_MIRROR = np.diag([-1.0, 1.0, 1.0])
_MAX_VOXELS = 60_000_000          # about 0.5 GB of float64 for one copy of the input


@dataclass
class SegmentSettings:
    l_ref_fit: float = 0.2            # mm, logistic reference length while fitting
    l_ref_final: float = 0.02         # mm, for the "shape-model" label map (thesis: 0.25; see docs)
    label_map: str = "lumen-wall"     # final label map: "lumen-wall" (follows the image near the
                                      # fitted surface) or "shape-model" (the thesis's posterior)
    label_band_mm: float = 0.75       # how far outside the fitted surface the lumen-wall map may reach
    outer_iterations: int = 12        # EM rounds
    fit_subsample: int = 2            # fit on every n-th voxel per axis (0.4 mm)
    samples: int = 100                # posterior draws for uncertainty and measures
    seed: int = 0                     # of the posterior draws
    side: str = "right"
    shape_step: str = "gauss-newton"  # or "bfgs"
    shape_prior: bool = True          # Gaussian population prior on a, b, alpha, phi
    n_params: int = 10                # 10 (the thesis's model) or 12 (with width and height
                                      # factors of the duct, prior from the real-CT calibration)
    rotation_range: float = 0.15      # rad, pose freedom around the initial pose
    translation_range: float = 1.5    # mm
    appearance: Optional[AppearanceModel] = None   # fixed (supervised) appearance
    coarse_to_fine: tuple = ()        # mm, l_ref of softer stages before l_ref_fit (see docs)
    hold_appearance_while_coarse: bool = True   # starting mixtures during the first stage
    search_start: bool = True         # search over position along the axis, size and profile
    search_orientation: bool = True   # from one point or two: search the orientation the points
                                      # leave free, ranked by the capsule contrast
    any_orientation: bool = False     # without points: the crop may hold the cochlea in any
                                      # orientation (real scans); search it instead of the template's
    search_placement: bool = True     # also place the mean shape on a grid over the whole
                                      # translation range (for starts far off; see docs)
    start: Optional[np.ndarray] = None  # start here instead of the initial pose (fit frame);
                                        # the pose bounds stay around the initial pose

    def check(self) -> "SegmentSettings":
        if self.side not in SIDES:
            raise CochleaAIError(f"Side must be 'right' or 'left', got {self.side!r}.")
        if not (0 < self.l_ref_fit <= 2 and 0 < self.l_ref_final <= 2):
            raise CochleaAIError("The reference lengths l_ref must be in (0, 2] mm.")
        if self.n_params not in (10, 12):
            raise CochleaAIError(f"The model has 10 or 12 parameters, got {self.n_params}.")
        if self.label_map not in LABEL_MAPS:
            raise CochleaAIError(f"Unknown label map {self.label_map!r}; use {' or '.join(LABEL_MAPS)}.")
        if not 0 <= self.label_band_mm <= 3:
            raise CochleaAIError("The label band must be 0-3 mm.")
        if self.outer_iterations < 1 or self.fit_subsample < 1 or self.samples < 0:
            raise CochleaAIError("Iterations and subsampling must be at least 1, samples at least 0.")
        return self


@dataclass
class CochleaSegmentation:
    """Everything a fit produces; volumes share the ROI grid ``roi``."""

    roi: Volume                       # the resampled input region (float32)
    probability: Volume               # posterior label probability p(Z=1 | I, theta*)
    shape_probability: Volume         # P(S(theta) >= 0) over the Laplace posterior
    uncertainty: Volume               # binary entropy (bits) of shape_probability
    sroi: Volume                      # uint8, probability >= 0.5
    ssi: Volume                       # uint8, S(theta*) >= 0
    theta: np.ndarray                 # theta* (in the fit frame: mirrored for a left ear)
    covariance: np.ndarray            # Laplace posterior covariance
    side: str
    measures: Dict[str, Dict[str, float]]   # mean and std over posterior draws
    quality: Dict[str, float]
    initial_theta: np.ndarray
    iterations: int
    seconds: float
    timings: Dict[str, float]         # seconds per phase: preparation, start_search, em_fit, ...
    appearance: dict
    history: list = field(default_factory=list, repr=False)

    @property
    def model(self) -> CochleaModel:
        return CochleaModel(self.theta)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.covariance), 0.0, None))

    def to_image(self, points) -> np.ndarray:
        """Fit-frame points -> image (LPS) points (undoes the mirror of a left ear)."""
        return _mirror(points, self.roi.center) if self.side == "left" else np.asarray(points, float)

    def mesh(self, edge_mm: float = 0.15):
        """Fitted surface as vtkPolyData in image LPS coordinates, normals outward."""
        poly = self.model.mesh(edge_mm)
        if self.side == "left":
            from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
            from vtkmodules.vtkFiltersCore import vtkReverseSense

            pts = vtk_to_numpy(poly.GetPoints().GetData())
            poly.GetPoints().SetData(numpy_to_vtk(self.to_image(pts), deep=True))
            flip = vtkReverseSense()          # a mirror turns the triangles inside out
            flip.SetInputData(poly)
            flip.ReverseCellsOn()
            flip.Update()
            poly = flip.GetOutput()
        return poly

    def scala_tympani_centerline(self, n: int = 60):
        """(points (n, 3) LPS, angles in degrees from the round window)."""
        m = self.model
        return self.to_image(m.scala_tympani_centerline(n)), m.centerline_angles(n)

    def landmarks(self) -> Dict[str, np.ndarray]:
        return {k: self.to_image(v) for k, v in self.model.landmarks().items()}

    def angular_position(self, points):
        """Degrees from the round window (and distance, mm) of image points near the cochlea."""
        fit_points = self.to_image(points)         # the mirror is its own inverse
        return self.model.angular_position(fit_points)

    def summary(self) -> dict:
        return {"side": self.side,
                "parameters": {n: {"value": float(v), "std": float(s)}
                               for n, v, s in zip(param_names(self.theta.size), self.theta, self.std)},
                "theta": self.theta.tolist(), "covariance": self.covariance.tolist(),
                "initial_theta": self.initial_theta.tolist(),
                "measures": self.measures, "quality": self.quality,
                "iterations": self.iterations, "seconds": round(self.seconds, 2),
                "timings": self.timings,
                "appearance": self.appearance,
                "landmarks_lps": {k: v.tolist() for k, v in self.landmarks().items()}}


def _mirror(points, centre) -> np.ndarray:
    points = np.asarray(points, float)
    return (points - centre) @ _MIRROR.T + centre


# ------------------------------------------------------------------ input checks
def check_volume(volume: Volume) -> None:
    """Raise a clear error for inputs the method cannot segment."""
    if not isinstance(volume, Volume):
        raise CochleaAIError("Expected a CT volume.")
    arr = volume.checked_array("input volume", min_per_axis=2, max_voxels=_MAX_VOXELS)
    extent = np.asarray(volume.size) * volume.spacing
    if np.any(extent < 6.0):
        raise CochleaAIError(f"The volume is only {np.round(extent, 1).tolist()} mm across; a cochlea "
                             "is about 9 x 7 x 4 mm. Give a larger field of view.")
    sample = arr[::max(1, arr.shape[0] // 20)]
    if np.issubdtype(arr.dtype, np.integer) or np.all(np.mod(sample, 1) == 0):
        if np.unique(sample).size <= 16:
            raise CochleaAIError("The input looks like a label map (a handful of whole values), not a "
                                 "CT image; choose the CT volume.")
    if float(np.std(sample)) == 0.0:
        raise CochleaAIError("The volume is constant: there is nothing to segment.")


def parse_points(labels, points) -> Dict[str, np.ndarray]:
    """Map markups labels to roles ``center``, ``apex``, ``round window`` (case and the
    separator between words do not matter; other labels are ignored)."""
    found = {}
    for label, point in zip(labels, np.asarray(points, float).reshape(-1, 3)):
        key = " ".join(str(label).lower().replace("_", " ").replace("-", " ").split())
        if key in POINT_ROLES:
            found[key] = point
    return found


# ------------------------------------------------------------------ initial pose
@functools.lru_cache(maxsize=1)
def _default_box_centre() -> tuple:
    """Centre of the bounding box of the default (zero-pose) cochlea; computed once."""
    v, _ = surface_arrays(default_params(), 0.3)
    return tuple(0.5 * (v.min(0) + v.max(0)))


def _template_theta(centre) -> np.ndarray:
    theta = default_params()
    theta[7:] = np.asarray(centre, float) - np.asarray(_default_box_centre())
    return theta


def _kabsch(model_pts: np.ndarray, image_pts: np.ndarray):
    a, b = model_pts - model_pts.mean(0), image_pts - image_pts.mean(0)
    U, _, Vt = np.linalg.svd(a.T @ b)
    D = np.diag([1.0, 1.0, np.sign(np.linalg.det(Vt.T @ U.T))])
    R = Vt.T @ D @ U.T
    return R, image_pts.mean(0) - R @ model_pts.mean(0)


def _smallest_rotation(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotation taking unit vector u onto unit vector v about their common normal."""
    axis = np.cross(u, v)
    s, c = np.linalg.norm(axis), float(np.dot(u, v))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        perp = np.cross(u, [1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 1.0, 0.0])
        return rotation_matrix(np.pi * perp / np.linalg.norm(perp))
    return rotation_matrix(axis / s * np.arctan2(s, c))


def initial_theta(points: Optional[Dict[str, np.ndarray]], centre) -> np.ndarray:
    """Initial parameters (fit frame) from the ROI template or the user's points."""
    theta = _template_theta(centre)
    if not points:
        return theta
    ref = CochleaModel(default_params()).landmarks()        # model frame (zero pose)
    roles = [r for r in POINT_ROLES if r in points]
    if len(roles) == 3:
        R, t = _kabsch(np.stack([ref[LANDMARK_OF_ROLE[r]] for r in roles]), np.stack([points[r] for r in roles]))
    elif "apex" in points and "round window" in points:
        # the spin about the apex-round window line is taken from the template orientation
        u = ref["apex"] - ref["round_window"]
        v = points["apex"] - points["round window"]
        R = _smallest_rotation(u / np.linalg.norm(u), v / np.linalg.norm(v))
        t = 0.5 * (points["apex"] + points["round window"]) - R @ (0.5 * (ref["apex"] + ref["round_window"]))
    elif "center" in points:
        R, t = np.eye(3), points["center"] - ref["center"]
    else:
        raise CochleaAIError("Give a 'center' point, or 'apex' and 'round window' points "
                             f"(got only: {', '.join(roles)}).")
    theta[4:7], theta[7:] = rotation_vector(R), t
    return theta


#: EM rounds each start gets when there are several; the best is then fitted on.
SCREENING_ROUNDS = 3
#: The orientation search scores every n-th fit voxel (about 4500 of a 13 mm region).
ORIENTATION_STRIDE = 8


def _bounded(settings: SegmentSettings, base: CochleaShape, theta) -> CochleaShape:
    """``base`` with the pose bounded around ``theta``'s (sharing its shape function, so
    the tables of the shapes already seen are reused)."""
    return base.around(theta, settings.rotation_range, settings.translation_range)


def _free_orientation(points) -> bool:
    """Whether the points leave the orientation free: one centre point, or the round
    window and apex without the centre."""
    return set(points) == {"center"} or ({"apex", "round window"} <= set(points) and "center" not in points)


def _search_orientation(values, points_grid, points, theta0, roi_centre) -> list:
    """The best few poses of ``theta0``'s shape for the orientation the points leave free."""
    if not points:
        return orientation.from_crop(values, points_grid, theta0, roi_centre, np.asarray(_default_box_centre()))
    ref = CochleaModel(with_pose(theta0, np.zeros(6))).landmarks()     # model frame
    if set(points) == {"center"}:
        return orientation.from_centre(values, points_grid, theta0, points["center"], ref["center"])
    roles = ("round window", "apex")
    return orientation.from_points(values, points_grid, theta0,
                                   np.stack([ref[LANDMARK_OF_ROLE[r]] for r in roles]),
                                   np.stack([points[r] for r in roles]))


#: Population prior of the deformable parameters (a, b, alpha, phi): mean and sd of the
#: phantom shape prior (cochleaai.phantom.prior, after the histograms of thesis Fig. 3.8).
SHAPE_PRIOR_MEAN = np.array([3.99, 0.150, 0.56, 0.2])
SHAPE_PRIOR_SD = np.array([0.33, 0.010, 0.35, 0.3])
#: Prior sd of the width and height factors of the 12-parameter variant (mean 1): their
#: spread across the six real specimens of the calibration (Resources/shape-calibration.json).
SECTION_PRIOR_SD = np.array([0.055, 0.036])


#: Candidate radial scales (mm) and longitudinal amplitudes (mm) of the start search: the
#: range of ``a`` and the two modes of ``alpha`` (flat and "roller-coaster" profiles).
SEARCH_A = (3.4, 3.8, 4.2, 4.6)
SEARCH_ALPHA = (0.3, 0.95)


#: Candidate shifts (mm) of the start search, along the modiolar axis and across it. Along
#: the axis the turns repeat about every 1.5 mm, so a start off by more than half of that
#: locks onto the wrong turn; no local step gets it out.
SEARCH_SHIFTS_MM = (-1.2, -0.6, 0.0, 0.6, 1.2)
#: Shifts (mm, per model axis) of the placement search with the population-mean shape: the
#: allowed translation range on a 0.75 mm grid (125 positions).
SEARCH_GRID_MM = (-1.5, -0.75, 0.0, 0.75, 1.5)
#: The start search ranks its candidates on every n-th fit voxel.
SEARCH_STRIDE = 2
#: The placement search scores every n-th fit voxel (0.4 mm grid): about 0.8 mm apart.
PLACEMENT_STRIDE = 4
#: Two starts closer than this (mm) lead to the same fit; only one is refined and fitted.
SEARCH_DISTINCT_MM = 0.5
def _best_placement(values, points, shape, theta) -> tuple:
    """The population-mean shape placed on a grid over the whole translation range around
    ``theta``, ranked by :func:`capsule_contrast` on every ``PLACEMENT_STRIDE``-th voxel:
    ``(best placement, its contrast, the contrast of theta itself)``."""
    coarse_values, coarse_points = values[::PLACEMENT_STRIDE], points[::PLACEMENT_STRIDE]
    R = rotation_matrix(theta[4:7])
    placements = [np.clip(np.concatenate([SHAPE_PRIOR_MEAN, theta[4:7], theta[7:10] + R @ np.asarray(shift),
                                          theta[10:]]), shape.lower, shape.upper)
                  for shift in itertools.product(SEARCH_GRID_MM, repeat=3)]
    contrast = [capsule_contrast(coarse_values, shape.evaluate(coarse_points, c)[0]) for c in placements]
    own = capsule_contrast(coarse_values, shape.evaluate(coarse_points, theta)[0])
    best = int(np.argmax(contrast))
    return placements[best], contrast[best], own


def _search_starts(values, points, shape, theta, appearance, l_ref, placed=None, rounds: int = 1) -> list:
    """Better starts than ``theta`` (one or two), by scoring candidates with one
    evaluation each; they stay within the bounds.

    Refining is, ``rounds`` times: shifts along the modiolar axis combined with the kept
    shape or candidate radial scales and height profiles, then shifts across the axis;
    candidates are ranked by the log-likelihood at the fit's own reference length under
    the starting mixtures (at softer reference lengths a spiral lying over the vestibule
    or the internal auditory canal can outscore the cochlea itself).

    The first start is ``theta`` refined. ``placed`` is the best placement of the
    population-mean shape over the whole translation range (:func:`_best_placement`,
    ranked by the capsule contrast: the likelihood picked the vestibule or the internal
    auditory canal over the cochlea on 4 of 40 phantoms, the contrast on none); when it
    lies elsewhere, it is refined and returned as a second start.
    """
    # ranking dozens of coarse candidates needs fewer voxels than the fit: every other one
    values, points = values[::SEARCH_STRIDE], points[::SEARCH_STRIDE]
    log_p0, log_p1 = appearance.log_likelihoods(values)

    def best(candidates):
        candidates = [np.clip(c, shape.lower, shape.upper) for c in candidates]
        scores = [_log_joint(shape.evaluate(points, c)[0], l_ref, log_p0, log_p1) for c in candidates]
        return candidates[int(np.argmax(scores))]

    theta = np.asarray(theta, float)
    R = rotation_matrix(theta[4:7])
    across, across_axis, axis = R.T                  # the model's x, y and modiolar axes
    shapes = [np.array([a, SHAPE_PRIOR_MEAN[1], alpha, SHAPE_PRIOR_MEAN[3]])
              for a in SEARCH_A for alpha in SEARCH_ALPHA]

    def candidate(t, deformable, shift):
        # the cross-section scales (a 12-parameter model) stay as they are
        return np.concatenate([deformable, t[4:7], t[7:10] + shift, t[10:]])

    def refine(t):
        for _ in range(rounds):
            t = best([candidate(t, deformable, dz * axis)
                      for dz in SEARCH_SHIFTS_MM for deformable in [t[:4]] + shapes])
            t = best([candidate(t, t[:4], du * across + dv * across_axis)
                      for du in SEARCH_SHIFTS_MM for dv in SEARCH_SHIFTS_MM])
        return t

    starts = [refine(theta)]
    if placed is not None:
        if np.linalg.norm(placed[7:10] - starts[0][7:10]) > SEARCH_DISTINCT_MM:
            moved = refine(placed)
            if np.linalg.norm(moved[7:10] - starts[0][7:10]) > SEARCH_DISTINCT_MM:
                starts.append(moved)
    return starts


def _appearance_of_shape(values: np.ndarray, inside: np.ndarray, calibration, steps: int = 10) -> AppearanceModel:
    """Mixtures re-estimated with the fitted shape's hard labels.

    During the fit the cochlea class also explains the blurred rim of the capsule around
    it (a wide component), which is harmless for the shape but makes the posterior label
    map about a voxel too wide. Given the fitted shape, the rim belongs to the
    background, and the final label map uses mixtures estimated that way.
    """
    app = initial_appearance(values, calibration=calibration)
    w = inside.astype(float)
    for _ in range(steps):
        app.background = em_step(app.background, values, 1.0 - w)
        app.foreground = em_step(app.foreground, values, w)
    app.fixed = True
    return app


def lumen_wall_map(values: np.ndarray, S: np.ndarray, band_mm: float, reach=None):
    """Posterior label probability of the lumen near a fitted shape, and its appearance.

    The scanner blurs the step from the lumen (fluid or air) to the dense bone of the otic
    capsule; the edge of a blurred step lies where the grey value is halfway between the
    two levels. Both levels are measured on the image around the fitted shape, where the
    starting mixtures read them around the start (median deeper than
    ``START_LUMEN_DEPTH_MM`` inside; median of the ``START_WALL_SHELL_MM`` shell outside),
    so nothing assumes HU: fluid- and air-filled labyrinths, CT and cone-beam CT alike. The
    classes are equal-variance Gaussians at the two levels (sd: the robust spread of the
    lumen voxels), which puts the decision at the halfway value; the prior is flat within
    ``band_mm`` outside the fitted surface (where ``reach`` is true, if given) and inside
    it, and zero beyond. The band lets
    the map follow the image where the model's tube cannot: the spaces between the upper
    turns, which expert labels of clinical CT count as lumen.
    """
    values = np.asarray(values, float)
    deep = S > START_LUMEN_DEPTH_MM
    shell = (S < -START_WALL_SHELL_MM[0]) & (S > -START_WALL_SHELL_MM[1])
    if not deep.any():
        deep = S >= 0
    if not deep.any() or not shell.any():
        raise CochleaAIError("The fitted shape lies outside the region of interest; check the points.")
    lumen, wall = float(np.median(values[deep])), float(np.median(values[shell]))
    spread = 1.4826 * float(np.median(np.abs(values[deep] - lumen))) + 1e-6 * (abs(wall - lumen) + 1.0)
    # log-odds of lumen against wall for equal-variance Gaussians: linear in the value
    log_odds = (values - 0.5 * (lumen + wall)) * (lumen - wall) / spread ** 2
    allowed = S > -band_mm if reach is None else (S >= 0) | ((S > -band_mm) & reach)
    posterior = np.where(allowed, expit(np.clip(log_odds, -50, 50)), 0.0)
    return posterior, {"lumen": lumen, "wall": wall, "threshold": 0.5 * (lumen + wall), "sd": spread,
                       "band_mm": band_mm}


def _connected_to_shape(probability: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """``probability`` where the map (>= 0.5) is connected to the shape, 0 elsewhere:
    a dark space the band touches (the vestibule, a canal) must not join through noise."""
    from scipy import ndimage

    labels, _ = ndimage.label(probability >= 0.5)
    keep = np.unique(labels[inside & (labels > 0)])
    return np.where(np.isin(labels, keep[keep > 0]), probability, np.minimum(probability, 0.49))


def _fit_stages(values, points, shape, theta, appearance, stages, settings, progress):
    """EM fit from ``theta`` through the reference lengths ``stages`` (softest first)."""
    prior_sd = prior_mean = None
    if settings.shape_prior:
        # population prior on the deformable parameters only; the pose is bounded instead
        prior_mean = np.concatenate([SHAPE_PRIOR_MEAN, theta[4:10], np.ones(len(theta) - 10)])
        prior_sd = np.concatenate([SHAPE_PRIOR_SD, np.full(6, np.inf), SECTION_PRIOR_SD[:len(theta) - 10]])
    history = []
    # while the shape is still far off (the first, softest stage), the starting mixtures are
    # a safer appearance than mixtures re-estimated from a wrong shape
    hold_first = settings.appearance is None and settings.hold_appearance_while_coarse and len(stages) > 1
    for n, l_ref in enumerate(stages):
        last = n == len(stages) - 1
        if settings.appearance is None:
            appearance.fixed = hold_first and n == 0
        iterations = settings.outer_iterations if last else max(1, settings.outer_iterations // 3)
        fit = fit_logistic_shape(values, points, shape, theta,
                                 FitSettings(l_ref=l_ref, outer_iterations=iterations,
                                             shape_step=settings.shape_step, prior_sd=prior_sd,
                                             prior_mean=prior_mean),
                                 appearance=appearance,
                                 progress=progress.stage(n / len(stages), (n + 1) / len(stages)))
        theta, appearance = fit.theta, fit.appearance
        history += [dict(h, l_ref=l_ref) for h in fit.history]
    return fit, history


# ------------------------------------------------------------------ the job
def segment(volume: Volume, points: Optional[Dict[str, np.ndarray]] = None,
            settings: Optional[SegmentSettings] = None, progress=None) -> CochleaSegmentation:
    """Fit the logistic shape model to ``volume``; ``points`` maps roles to LPS points."""
    settings = (settings or SegmentSettings()).check()
    p = Progress.wrap(progress)
    t0 = time.perf_counter()
    check_volume(volume)
    points = {k: np.asarray(v, float) for k, v in (points or {}).items()}
    for role, point in points.items():
        if role not in POINT_ROLES:
            raise CochleaAIError(f"Unknown point role {role!r}; use {', '.join(POINT_ROLES)}.")
        if not volume.contains(point[None])[0]:
            raise CochleaAIError(f"The {role} point {np.round(point, 1).tolist()} lies outside the image.")

    # --- region of interest in the fit frame
    p(0.01, "initial pose")
    if points:
        centre = np.mean(list(points.values()), axis=0)
        if "center" in points:
            centre = points["center"]
        roi_size = POINTS_ROI_MM
    else:
        centre = volume.center
        # a cochlea in any orientation needs the room it needs around points
        roi_size = POINTS_ROI_MM if settings.any_orientation else TEMPLATE_ROI_MM
    values = volume.copy(volume.numeric_array().astype(np.float32))
    roi = values.crop_mm(centre, roi_size, spacing=ROI_SPACING_MM, direction=np.eye(3),
                         default_value=float(np.percentile(values.array, 1)))
    fit_points_of = (lambda q: _mirror(q, roi.center)) if settings.side == "left" else (lambda q: q)
    points_fit = {k: fit_points_of(v[None])[0] for k, v in points.items()}
    if points_fit and "center" not in points_fit and len(points_fit) < 2:
        raise CochleaAIError("Give a 'center' point, or 'apex' and 'round window' points.")
    theta0 = initial_theta(points_fit, roi.center)      # the mirror keeps the ROI centre
    theta0 = np.concatenate([theta0, np.ones(settings.n_params - 10)])

    grid = fit_points_of(roi.physical_grid().reshape(-1, 3)).reshape(roi.shape + (3,))
    arr = roi.array.astype(float)
    k = settings.fit_subsample
    values_fit, points_fit_grid = arr[::k, ::k, ::k].reshape(-1), grid[::k, ::k, ::k].reshape(-1, 3)
    timings = {}
    base = CochleaShape(n_params=settings.n_params)      # one shape function (and table cache) per call
    poses = [theta0]
    free = _free_orientation(points_fit) or (not points_fit and settings.any_orientation)
    if settings.search_orientation and settings.start is None and free:
        t1 = time.perf_counter()
        p(0.015, "orientation search")
        poses = _search_orientation(values_fit[::ORIENTATION_STRIDE], points_fit_grid[::ORIENTATION_STRIDE],
                                    points_fit, theta0, roi.center)
        timings["orientation_search"] = time.perf_counter() - t1
    theta0 = poses[0]
    if settings.start is not None:
        bounded = _bounded(settings, base, theta0)
        poses = [np.clip(np.asarray(settings.start, float), bounded.lower, bounded.upper)]

    # --- EM fit
    calibration = intensity_calibration(arr.reshape(-1))        # HU -> the image's grey values
    # coarse to fine: softer boundaries first widen the basin of attraction
    stages = [l for l in settings.coarse_to_fine if l > settings.l_ref_fit] + [settings.l_ref_fit]
    timings["preparation"] = time.perf_counter() - t0 - timings.get("orientation_search", 0.0)
    t1 = time.perf_counter()
    # a placement over the whole translation range (one pose only: poses from the
    # orientation search were placed by it)
    placed, source = None, poses[0]
    if settings.search_start and settings.search_placement and len(poses) == 1:
        placed, placed_contrast, own_contrast = _best_placement(
            values_fit, points_fit_grid, _bounded(settings, base, poses[0]), poses[0])
        if placed_contrast > own_contrast:
            source = placed
    if settings.appearance is not None:
        appearance = settings.appearance
    else:
        # the starting mixtures come from the image around the start that looks most like a
        # cochlea in its capsule (the start, or its best placement): no HU anchors
        S0, _ = base.evaluate(points_fit_grid, source)
        appearance = appearance_around_shape(values_fit, S0)
    # every pose brings its own pose bounds, and its refined starts
    candidates = []
    for pose in poses:
        bounded = _bounded(settings, base, pose)
        starts = [pose]
        if settings.search_start:
            starts = _search_starts(values_fit, points_fit_grid, bounded, pose, appearance, stages[-1],
                                    placed=placed)
        candidates += [(bounded, start) for start in starts]
    timings["start_search"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    # each start is fitted with its own copy of the starting mixtures, and the fit with the
    # highest capsule contrast is kept: the fits' own likelihoods cannot be compared, since
    # each fit's mixtures adapt to its shape (on phantom 1000, wrong fits had the higher one).
    # With several starts, each gets a few EM rounds first and only the best is fitted on.
    rounds = settings.outer_iterations if len(candidates) == 1 else \
        min(settings.outer_iterations, SCREENING_ROUNDS)
    fits = []
    for n, (bounded, start) in enumerate(candidates):
        fit, history = _fit_stages(values_fit, points_fit_grid, bounded, start, copy.deepcopy(appearance),
                                   stages, replace(settings, outer_iterations=rounds),
                                   p.stage(0.02 + 0.6 * n / len(candidates), 0.02 + 0.6 * (n + 1) / len(candidates)))
        fits.append((capsule_contrast(values_fit, fit.shape_values), n, fit, history, bounded))
    _, _, fit, history, shape = max(fits, key=lambda f: (f[0], -f[1]))
    if rounds < settings.outer_iterations:
        fit, more = _fit_stages(values_fit, points_fit_grid, shape, fit.theta, fit.appearance, stages[-1:],
                                replace(settings, outer_iterations=settings.outer_iterations - rounds),
                                p.stage(0.62, 0.8))
        history += more
    fit.history = history
    timings["em_fit"] = time.perf_counter() - t1
    t1 = time.perf_counter()

    # --- full-resolution maps
    p(0.82, "label maps on the full grid")
    flat = grid.reshape(-1, 3)
    S, _, feet = shape.sf.closest(flat, fit.theta)
    if settings.label_map == "lumen-wall":
        # beyond the duct's basal end lie the vestibule and the round-window niche, which
        # are not cochlea: the band does not reach past it
        posterior, final_app = lumen_wall_map(arr.reshape(-1), S, settings.label_band_mm,
                                              reach=feet[:, 0] >= 0.0)
        posterior = _connected_to_shape(posterior.reshape(roi.shape), S.reshape(roi.shape) >= 0).reshape(-1)
    else:
        # the mixtures are re-estimated on the fit's subsampled voxels: as good, k**3 times cheaper
        app = fit.appearance if fit.appearance.fixed else \
            _appearance_of_shape(values_fit, S.reshape(roi.shape)[::k, ::k, ::k].reshape(-1) >= 0, calibration)
        log_p0, log_p1 = app.log_likelihoods(arr.reshape(-1))
        posterior = expit(S / settings.l_ref_final + log_p1 - log_p0)
        final_app = app.as_dict()

    p(0.88, "shape uncertainty")
    rng = np.random.default_rng(settings.seed)
    cov = 0.5 * (fit.covariance + fit.covariance.T)
    if settings.samples > 0:
        draws = rng.multivariate_normal(fit.theta, cov, size=settings.samples, method="eigh")
        draws = np.clip(draws, shape.lower, shape.upper)
    else:
        draws = fit.theta[None]
    inside = (S >= 0).astype(float)
    band = np.flatnonzero(np.abs(S) < 1.5)
    if band.size and settings.samples > 0:
        _, J = shape.evaluate(flat[band], fit.theta, jacobian=True)
        S_draws = S[band, None] + J @ (draws - fit.theta).T
        inside[band] = (S_draws >= 0).mean(axis=1)
    q = np.clip(inside, 1e-12, 1 - 1e-12)
    entropy = np.where((inside > 0) & (inside < 1), -(q * np.log2(q) + (1 - q) * np.log2(1 - q)), 0.0)

    p(0.93, "clinical measures")
    measures = summarize(draws)

    def as_volume(a, dtype):
        return roi.copy(np.asarray(a).reshape(roi.shape).astype(dtype))

    sroi = as_volume(posterior >= 0.5, np.uint8)
    ssi = as_volume(S >= 0, np.uint8)
    p(0.96, "quality control")
    levels = (final_app["lumen"], final_app["wall"]) if settings.label_map == "lumen-wall" else None
    quality = quality_score(roi, sroi, ssi, shape_values=S, hu_scale=calibration[0], levels=levels)
    timings["maps_uncertainty_measures_qc"] = time.perf_counter() - t1
    p(1.0, "done")
    return CochleaSegmentation(
        roi=roi, probability=as_volume(posterior, np.float32), shape_probability=as_volume(inside, np.float32),
        uncertainty=as_volume(entropy, np.float32), sroi=sroi, ssi=ssi, theta=fit.theta,
        covariance=cov, side=settings.side, measures=measures, quality=quality,
        initial_theta=theta0, iterations=len(fit.history), seconds=time.perf_counter() - t0,
        timings={k: round(v, 3) for k, v in timings.items()},
        appearance={"fit": fit.appearance.as_dict(), "final": final_app}, history=fit.history)
