"""Image-quality figures of simulated and corrected post-operative scans."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from cochleaai import metrics
from cochleaai.volume import Volume


def contact_fwhm_mm(image: Volume, centre, tangent, half_length_mm: float = 2.0,
                    step_mm: float = 0.02) -> float:
    """Full width at half maximum (mm) of the bright spot at ``centre`` across the array:
    the profile runs perpendicular to ``tangent`` in the axial plane; the half maximum is
    taken between the peak and the median of the profile's outer quarters (the background)."""
    t = np.asarray(tangent, float)
    perp = np.cross(t, [0.0, 0.0, 1.0])
    if np.linalg.norm(perp) < 1e-6:
        perp = np.array([1.0, 0.0, 0.0])
    perp /= np.linalg.norm(perp)
    s = np.arange(-half_length_mm, half_length_mm + step_mm / 2, step_mm)
    pts = np.asarray(centre, float)[None, :] + s[:, None] * perp[None, :]
    ijk = image.physical_to_index(pts)
    prof = map_coordinates(np.asarray(image.array, np.float32), ijk[:, ::-1].T, order=1, mode="nearest")
    q = len(s) // 4
    background = float(np.median(np.concatenate([prof[:q], prof[-q:]])))
    c = len(s) // 2
    peak = float(prof[c - 5:c + 6].max())
    if peak <= background:
        return float("nan")
    half = background + 0.5 * (peak - background)
    above = prof >= half
    # the connected run through the centre
    lo = c
    while lo > 0 and above[lo - 1]:
        lo -= 1
    hi = c
    while hi < len(s) - 1 and above[hi + 1]:
        hi += 1
    return float((hi - lo + 1) * step_mm)


def blooming_factor(image: Volume, insertion) -> float:
    """Median over intracochlear contacts of apparent width (FWHM) / true contact diameter."""
    pts = insertion.path
    ratios = []
    for c, inside in zip(insertion.contacts, insertion.intracochlear):
        if not inside or not image.contains(c[None])[0]:
            continue
        k = int(np.argmin(np.linalg.norm(pts - c, axis=1)))
        t = pts[min(k + 1, len(pts) - 1)] - pts[max(k - 1, 0)]
        u = np.linalg.norm(pts[0] - c)      # rough distance from the tip for the diameter
        d = float(insertion.array.diameter_at(u))
        w = contact_fwhm_mm(image, c, t)
        if np.isfinite(w):
            ratios.append(w / d)
    return float(np.median(ratios)) if ratios else float("nan")


def similarity(reference: np.ndarray, test: np.ndarray, exclude: np.ndarray,
               data_range: float = 4095.0) -> dict:
    """PSNR (dB), SSIM and RMSE (HU) of ``test`` against ``reference`` with the ``exclude``
    voxels (the metal) taken out: set to the reference there for PSNR and SSIM (no error,
    and SSIM windows stay whole), left out of the RMSE."""
    ref = np.asarray(reference, np.float64)
    t = np.where(exclude, ref, np.asarray(test, np.float64))
    keep = ~np.asarray(exclude, bool)
    mse = float(np.mean((ref - t)[keep] ** 2))
    return {"psnr": float(10 * np.log10(data_range ** 2 / mse)) if mse > 0 else float("inf"),
            "ssim": metrics.ssim(ref, t, data_range=data_range),
            "rmse": metrics.rmse(ref, t, mask=keep)}
