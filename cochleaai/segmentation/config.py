"""The options of :func:`cochleaai.segmentation.pipeline.segment`: :class:`SegmentConfig`.

Plain Python and numpy (no torch), so the Slicer panel takes its defaults from here before the
optional packages are installed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.segmentation.appearance import AppearanceModel
from cochleaai.segmentation.options import LABEL_MAPS, SIDES

#: Options of the shortest fit that still runs every step: smoke tests of commands and
#: benchmarks, whose figures mean nothing.
SMOKE_FIT = {"outer_iterations": 1, "samples": 0, "search_start": False, "fit_subsample": 4}

#: The vestibule's wedge (degrees, ``SegmentConfig.vestibule_wedge_deg``) that matches labels of
#: the cochlea cut by a cylinder around the modiolus, as the "cochlear part" of Wimmer et al.
#: (2019): on their six development specimens the lumen such labels hold past the model's
#: round window lies 5-40 degrees past it, nearest the oval window. The default: expert labels
#: of the cochlea on real CT (this data set's, and an atlas's cut like them) keep that part.
CYLINDER_LABEL_WEDGE_DEG = 45.0
#: The radius (mm) of that cylinder around the modiolar axis (Wimmer et al. 2019); the wedge
#: stops there, as such labels do, instead of running on into the vestibule and the niche.
CYLINDER_LABEL_RADIUS_MM = 5.5
#: No wedge: the label map holds the cochlea alone, as a phantom's truth does (its "Cochlea"
#: stops at the round window; the lumen past it is its vestibule segment).
COCHLEA_ALONE_DEG = 0.0


@dataclass
class SegmentConfig:
    l_ref_fit: float = 0.2            # mm, logistic reference length while fitting
    l_ref_final: float = 0.02         # mm, for the "shape-model" label map (thesis: 0.25; see docs)
    label_map: str = "lumen-wall"     # final label map: "lumen-wall" (follows the image near the
                                      # fitted surface) or "shape-model" (the thesis's posterior)
    label_band_mm: float = 0.75       # how far outside the fitted surface the lumen-wall map may reach
    vestibule_wedge_deg: float = CYLINDER_LABEL_WEDGE_DEG  # also label the lumen this far
                                      # (degrees) past the round window, along the duct's
                                      # continuation: the part of the vestibule that "cochlear
                                      # part" labels cut by a cylinder around the modiolus include
                                      # (see docs); COCHLEA_ALONE_DEG (0): the cochlea only
    outer_iterations: int = 12        # EM rounds
    fit_subsample: int = 2            # fit on every n-th voxel per axis (0.4 mm)
    samples: int = 100                # posterior draws for uncertainty and measures
    seed: int = 0                     # of the posterior draws
    interval_scale: Optional[float] = None  # the measures' draws take the posterior's sd times
                                      # this; None: the phantom-calibrated factor the implant
                                      # plan uses (Resources/plan-intervals.json)
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
        if not 0 <= self.vestibule_wedge_deg <= 90:
            raise CochleaAIError("The vestibule's wedge must be 0-90 degrees past the round window.")
        if self.interval_scale is not None and not (np.isfinite(self.interval_scale) and self.interval_scale >= 1):
            raise CochleaAIError("The interval scale must be a number of at least 1 (or left unset).")
        if self.outer_iterations < 1 or self.fit_subsample < 1 or self.samples < 0:
            raise CochleaAIError("Iterations and subsampling must be at least 1, samples at least 0.")
        return self
