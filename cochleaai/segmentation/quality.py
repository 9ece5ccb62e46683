"""Unsupervised quality control of a cochlea segmentation.

After Audelan & Delingette (2019, "Unsupervised quality control of image segmentation
based on Bayesian learning", MICCAI): compare the result with a simple, generic
probabilistic segmentation of the same image and report how far apart they are, so
that a batch can be sorted by suspected failure without any ground truth.

The generic segmentation here knows nothing of cochlear shape: within 2 mm of the
result, voxels darker than the Otsu threshold of that neighbourhood (fluid against
bone) form a map that is smoothed with a Gaussian of 0.3 mm and cut at 0.5; the parts
connected to the result are kept. The score is the mean symmetric surface distance
(mm) between the two; a good fit of a cochlea on CT scores about one voxel.

A second figure uses what is known of the anatomy: the cochlea is a fluid-filled spiral
inside the otic capsule, the densest bone of the body. The capsule contrast (the mean
grey value just outside the fitted surface minus the mean inside it) is high on the
cochlea and low for a spiral lying over the vestibule, a semicircular canal or the
internal auditory canal, which have fluid on both sides of its surface. The start search
of the pipeline also uses it to choose between fits.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from cochleaai.metrics import dice, mean_surface_distance
from cochleaai.volume import Volume

#: Scores above this (mm) flag a case for review. On the phantoms a good fit scores about
#: 0.2 mm; on the six real specimens good fits scored 0.41-0.53 mm (the labyrinth goes on
#: past the cochlea, so the shape-free map reaches further), fits 3 mm off 0.6-0.74 mm.
SUSPECT_MM = 0.58
#: Thickness (mm) of the shell just outside the shape where the capsule contrast is taken.
CAPSULE_SHELL_MM = 0.6
#: Capsule contrasts below this (HU) flag a case for review. Measured on roi phantoms:
#: about 1100 HU on the cochlea, 100-250 HU for spirals over the vestibule or the IAC.
CAPSULE_SUSPECT_HU = 400.0
#: The capsule contrast as a fraction of the image's own step from the lumen to the wall
#: (the levels of the lumen-wall label map): unit-free, so it holds for grey values that
#: are not HU. On the six real specimens: good fits 0.5-0.6, the same points fitted as the
#: other ear 0.2-0.4, fits off the cochlea lower still. Below this flags the case.
CAPSULE_RATIO_SUSPECT = 0.45


def capsule_contrast(values, S, shell_mm: float = CAPSULE_SHELL_MM) -> float:
    """Mean of ``values`` in the shell ``-shell_mm < S < 0`` just outside a shape minus
    their mean inside it (``S >= 0``); ``-inf`` when either is empty.

    On the phantoms the likelihood of the shape model cannot tell the cochlea from those
    other fluid spaces as well: its background mixture has a fluid component of its own,
    and its mixtures adapt to whatever shape they are given.
    """
    values, S = np.asarray(values), np.asarray(S)
    inside, shell = S >= 0, (S < 0) & (S > -shell_mm)
    if not inside.any() or not shell.any():
        return -np.inf
    return float(values[shell].mean() - values[inside].mean())


def generic_segmentation(image: Volume, result: np.ndarray, margin_mm: float = 2.0) -> np.ndarray:
    """Shape-free dark-structure segmentation near ``result`` (bool array, image grid)."""
    from skimage.filters import threshold_otsu  # lazy: scikit-image is installed on first use in Slicer

    spacing = float(np.min(image.spacing))
    band = ndimage.binary_dilation(result, iterations=max(1, int(round(margin_mm / spacing))))
    values = image.array[band].astype(float)
    if values.size < 10 or np.ptp(values) == 0:
        return np.zeros_like(result, bool)
    dark = (image.array < threshold_otsu(values)) & band
    smooth = ndimage.gaussian_filter(dark.astype(float), 0.3 / np.asarray(image.spacing)[::-1])
    generic = smooth >= 0.5
    labels, n = ndimage.label(generic)
    keep = np.unique(labels[result & generic])
    return np.isin(labels, keep[keep > 0])


def quality_score(image: Volume, sroi: Volume, ssi: Volume, shape_values=None, hu_scale: float = 1.0,
                  levels=None) -> dict:
    """``{"qc_surface_mm", "qc_dice", "suspect"}`` for a result; lower score is better.

    With the fitted shape function on the image grid (``shape_values``), also
    ``"capsule_contrast_hu"`` (image units divided by ``hu_scale``, the image's units per
    HU), and a contrast below ``CAPSULE_SUSPECT_HU`` flags the case too. With the image's
    ``levels`` ``(lumen, wall)``, also ``"capsule_contrast_ratio"`` (the contrast over the
    step between them), flagged below ``CAPSULE_RATIO_SUSPECT``.
    """
    # the posterior label map when there is one, else the shape model region
    result = sroi.array.astype(bool) if sroi.array.any() else ssi.array.astype(bool)
    generic = generic_segmentation(image, result)
    if not generic.any() or not result.any():
        scores = {"qc_surface_mm": float("inf"), "qc_dice": 0.0}
    else:
        scores = {"qc_surface_mm": float(mean_surface_distance(image.copy(result.astype(np.uint8)),
                                                               image.copy(generic.astype(np.uint8)))),
                  "qc_dice": float(dice(result, generic))}
    suspect = scores["qc_surface_mm"] > SUSPECT_MM
    if shape_values is not None:
        contrast = capsule_contrast(image.array.reshape(-1), np.asarray(shape_values).reshape(-1)) / hu_scale
        scores["capsule_contrast_hu"] = contrast
        suspect = suspect or contrast < CAPSULE_SUSPECT_HU
        if levels is not None and levels[1] > levels[0]:
            ratio = contrast * hu_scale / (levels[1] - levels[0])
            scores["capsule_contrast_ratio"] = ratio
            suspect = suspect or ratio < CAPSULE_RATIO_SUSPECT
    return dict(scores, suspect=bool(suspect))


def suspect_reasons(quality: dict) -> list:
    """Why a result is flagged, in words a user can act on (empty when it is not)."""
    reasons = []
    if quality.get("qc_surface_mm", 0.0) > SUSPECT_MM:
        reasons.append(f"its surface is {quality['qc_surface_mm']:.2f} mm from a shape-free "
                       f"segmentation (above {SUSPECT_MM} mm)")
    if quality.get("capsule_contrast_hu", np.inf) < CAPSULE_SUSPECT_HU:
        reasons.append(f"the bone around it is only {quality['capsule_contrast_hu']:.0f} HU brighter than "
                       f"its inside (below {CAPSULE_SUSPECT_HU:.0f} HU): it may lie on the vestibule or the "
                       "internal auditory canal; check the points or give them (center, apex, round window)")
    if quality.get("capsule_contrast_ratio", np.inf) < CAPSULE_RATIO_SUSPECT:
        reasons.append(f"its capsule contrast is only {quality['capsule_contrast_ratio']:.2f} of the image's "
                       f"lumen-to-bone step (below {CAPSULE_RATIO_SUSPECT}): check the side (left or right ear) "
                       "and the points")
    return reasons
