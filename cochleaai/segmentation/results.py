"""What a segmentation gives: :class:`CochleaSegmentation` (the result of
:func:`cochleaai.segmentation.pipeline.segment`; its options are
:class:`~cochleaai.segmentation.config.SegmentConfig`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict

import numpy as np
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy
from vtkmodules.vtkFiltersCore import vtkReverseSense

from cochleaai.segmentation.pose import mirror
from cochleaai.shape import CochleaModel
from cochleaai.shape.params import param_names
from cochleaai.volume import Volume


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
    measures: Dict[str, Dict[str, float]]   # value at the fit; mean, std (= sd), 95 % low and
                                            # high over posterior draws widened by interval_scale
    quality: Dict[str, float]
    initial_theta: np.ndarray
    iterations: int
    seconds: float
    timings: Dict[str, float]         # seconds per phase: preparation, start_search, em_fit, ...
    appearance: dict
    history: list = field(default_factory=list, repr=False)
    interval_scale: float = 1.0       # the measures' draws took the posterior's sd times this
    measure_factors: Dict[str, float] = field(default_factory=dict)  # and these measures' intervals
                                      # these factors (interval_scale.with_measure_factors)
    vestibule_wedge_deg: float = 0.0  # the label map's wedge past the round window (0: the cochlea alone)

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
                "measures": self.measures, "measures_interval_scale": self.interval_scale,
                "measures_interval_factors": self.measure_factors,
                "label_map_vestibule_wedge_deg": self.vestibule_wedge_deg,
                "quality": self.quality,
                "iterations": self.iterations, "seconds": round(self.seconds, 2),
                "timings": self.timings,
                "appearance": self.appearance,
                "landmarks_lps": {k: v.tolist() for k, v in self.landmarks().items()}}
