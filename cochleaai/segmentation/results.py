"""What a segmentation takes and gives: :class:`SegmentConfig` (the options of
:func:`cochleaai.segmentation.pipeline.segment`) and :class:`CochleaSegmentation` (its result)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkFiltersCore import vtkReverseSense

from cochleaai.errors import CochleaAIError
from cochleaai.segmentation.appearance import AppearanceModel
from cochleaai.segmentation.options import LABEL_MAPS, SIDES
from cochleaai.segmentation.pose import mirror
from cochleaai.shape import CochleaModel
from cochleaai.shape.params import param_names
from cochleaai.volume import Volume


@dataclass
class SegmentConfig:
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

    def check(self) -> "SegmentConfig":
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
        return mirror(points, self.roi.center) if self.side == "left" else np.asarray(points, float)

    def mesh(self, edge_mm: float = 0.15):
        """Fitted surface as vtkPolyData in image LPS coordinates, normals outward."""
        poly = self.model.mesh(edge_mm)
        if self.side == "left":
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
