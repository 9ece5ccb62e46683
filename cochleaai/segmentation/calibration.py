"""Calibrating the cochlea model's cross-section on expert labels of real CT.

For each specimen of a folder in the layout of :mod:`cochleaai.realct`, the 14-parameter
model (the 10 of the thesis plus width and height factors at the base and at the apex of
the duct) is fitted to the expert label itself: the label's cochlear part is the image,
and the appearance is fixed so that the posterior labels are the expert's. The pose,
centreline and cross-section are all free; the start comes from the expert's centre, apex
and round-window points, as a clinician's would. Only voxels inside the scoring cylinder
of :mod:`cochleaai.realct` take part, because the label is cut there.

The fits' factors multiply the model's reference profile (``geometry.REFERENCE_WIDTH`` /
``REFERENCE_HEIGHT``), so a rerun reproduces the table whatever the current default. The
profile the model uses by default (``geometry.WIDTH`` / ``HEIGHT``) is the median of
the fitted profiles; the spread of the overall width and height factors across specimens
is the prior of the 12-parameter variant. ``python -m cochleaai calibrate-shape --data DIR
--out F`` redoes it and writes the table shipped in ``Resources/shape-calibration.json``.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from cochleaai import realct
from cochleaai.progress import Progress
from cochleaai.segmentation.appearance import AppearanceModel, StudentMixture
from cochleaai.segmentation.logistic import FitConfig, fit_logistic_shape
from cochleaai.segmentation.pose import POINTS_ROI_MM, initial_theta, mirror
from cochleaai.segmentation.shapes import CochleaShape
from cochleaai.shape import geometry as G
from cochleaai.shape.params import SECTION_NAMES

#: Grid (mm) on which each label is fitted: finer than the clinical scans' 0.16-0.2 mm
#: would only interpolate the label.
CALIBRATION_SPACING_MM = 0.2
#: Reference lengths (mm) of the fit, soft to sharp: the soft stage pulls the duct onto
#: the label from the expert points, the sharp one fits its boundary.
CALIBRATION_L_REF = (0.3, 0.1)


def _label_appearance() -> AppearanceModel:
    """Fixed mixtures on the label image (0 inside the cochlear part, 1 outside): the
    posterior labels then follow the expert label wherever it is not blurred."""
    def one(mean):
        return StudentMixture([1.0], [mean], [0.12], [200.0])
    return AppearanceModel(background=one(1.0), foreground=one(0.0), fixed=True)


def fit_label(specimen: realct.Specimen, n_params: int = 14, progress=None) -> dict:
    """Fit the model with ``n_params`` parameters to one specimen's cochlear part."""
    p = Progress.wrap(progress)
    t0 = time.perf_counter()
    labels = specimen.labels()
    part = realct.cochlear_part(labels, specimen)
    image = labels.copy(1.0 - part.astype(np.float32))
    points = specimen.points()
    centre = points["center"] + 1.5 * specimen.axes[2]        # about the middle of the cochlea
    roi = image.crop_mm(centre, POINTS_ROI_MM, spacing=CALIBRATION_SPACING_MM, direction=np.eye(3),
                        default_value=1.0)
    cylinder = realct.scoring_cylinder(roi, specimen).reshape(-1)
    left = specimen.side == "left"
    to_fit = (lambda q: mirror(q, roi.center)) if left else (lambda q: q)
    grid = to_fit(roi.physical_grid().reshape(-1, 3))[cylinder]
    values = roi.array.reshape(-1)[cylinder].astype(float)
    theta = initial_theta({k: to_fit(v[None])[0] for k, v in points.items()}, roi.center)
    theta = np.concatenate([theta, np.ones(n_params - 10)])
    shape = CochleaShape(n_params=n_params).around(theta, 0.6, 3.0)
    history = []
    for n, l_ref in enumerate(CALIBRATION_L_REF):
        fit = fit_logistic_shape(values, grid, shape, theta,
                                 FitConfig(l_ref=l_ref, outer_iterations=1, gradient_updates=25),
                                 appearance=_label_appearance(),
                                 progress=p.stage(n / len(CALIBRATION_L_REF), (n + 1) / len(CALIBRATION_L_REF)))
        theta = fit.theta
        history.append(float(fit.log_likelihood))
    inside = np.zeros(roi.array.size, np.uint8)
    inside[cylinder] = fit.shape_values >= 0
    score = realct.score_segmentation(roi.copy(inside.reshape(roi.shape)), labels, specimen, part)
    return {"id": specimen.id, "side": specimen.side, "n_params": n_params, "theta": theta.tolist(),
            "section": dict(zip(SECTION_NAMES[n_params - 10], theta[10:].tolist())),
            "dice": score["dice"], "volume_ratio": score["volume_ratio"], "hd95_mm": score["hd95_mm"],
            "seconds": round(time.perf_counter() - t0, 1)}


def profile_of(fits) -> dict:
    """Cross-section profile (mm) from 14-parameter fits: the median of the fitted widths
    and heights at the base and at the apex, and the spread of the overall factors."""
    w = np.array([[f["section"]["width_scale_base"] * G.REFERENCE_WIDTH[0],
                   f["section"]["width_scale_apex"] * G.REFERENCE_WIDTH[1]] for f in fits])
    h = np.array([[f["section"]["height_scale_base"] * G.REFERENCE_HEIGHT[0],
                   f["section"]["height_scale_apex"] * G.REFERENCE_HEIGHT[1]] for f in fits])
    width, height = np.median(w, axis=0), np.median(h, axis=0)
    # overall factor of each specimen against the median profile (mean of base and apex)
    wf = w.mean(axis=1) / width.mean()
    hf = h.mean(axis=1) / height.mean()
    return {"width_mm": width.round(3).tolist(), "height_mm": height.round(3).tolist(),
            "width_factor_sd": float(np.std(wf, ddof=1)), "height_factor_sd": float(np.std(hf, ddof=1)),
            "per_specimen_width_mm": w.round(3).tolist(), "per_specimen_height_mm": h.round(3).tolist()}


def calibrate(data_dir, progress=None, ids: Optional[list] = None) -> dict:
    """Fit every specimen under ``data_dir`` and derive the default profile (see module doc)."""
    p = Progress.wrap(progress)
    specimens = [s for s in realct.find_specimens(data_dir) if ids is None or s.id in ids]
    fits = []
    with G.cross_section_profile(G.REFERENCE_WIDTH, G.REFERENCE_HEIGHT):
        for n, s in enumerate(specimens):
            fits.append(fit_label(s, 14, progress=p.stage(n / len(specimens), (n + 1) / len(specimens))))
    return {"data": realct.CITATION, "specimens": [s.id for s in specimens],
            "procedure": (f"14-parameter model fitted to each expert cochlear part (scoring cylinder only), "
                          f"fixed label appearance, l_ref {list(CALIBRATION_L_REF)} mm on a "
                          f"{CALIBRATION_SPACING_MM} mm grid, start from the expert C, A, RW points; "
                          f"factors relative to the reference profile (width {list(G.REFERENCE_WIDTH)}, "
                          f"height {list(G.REFERENCE_HEIGHT)} mm)"),
            "profile": profile_of(fits), "fits": fits}
