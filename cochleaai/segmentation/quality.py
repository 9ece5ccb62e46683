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
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..metrics import dice, mean_surface_distance
from ..volume import Volume

#: Scores above this (mm) flag a case for review.
SUSPECT_MM = 0.5


def generic_segmentation(image: Volume, result: np.ndarray, margin_mm: float = 2.0) -> np.ndarray:
    """Shape-free dark-structure segmentation near ``result`` (bool array, image grid)."""
    from skimage.filters import threshold_otsu

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


def quality_score(image: Volume, sroi: Volume, ssi: Volume) -> dict:
    """``{"qc_surface_mm", "qc_dice", "suspect"}`` for a result; lower score is better."""
    # the posterior label map when there is one, else the shape model region
    result = sroi.array.astype(bool) if sroi.array.any() else ssi.array.astype(bool)
    generic = generic_segmentation(image, result)
    if not generic.any() or not result.any():
        return {"qc_surface_mm": float("inf"), "qc_dice": 0.0, "suspect": True}
    msd = float(mean_surface_distance(image.copy(result.astype(np.uint8)),
                                      image.copy(generic.astype(np.uint8))))
    return {"qc_surface_mm": msd, "qc_dice": float(dice(result, generic)), "suspect": bool(msd > SUSPECT_MM)}
