"""Clinical measures of a cochlea shape, read from the model geometry (millimetres).

All lengths run from the round window (polar angle 0) to the apex (``THETA_MAX``) and
are arc lengths of curves on the model surface or inside the duct:

* ``cdl_lateral_wall_mm``: along the outer (lateral) wall, the point of the cross-section
  farthest from the modiolar axis.
* ``cdl_organ_of_corti_mm``: along the partition halfway between the duct centre and
  the lateral wall, where the organ of Corti sits on the basilar membrane (an
  approximation: the model has no separate basilar membrane).
* ``cdl_centerline_mm`` and ``cdl_scala_tympani_mm``: along the lumen and scala tympani
  centrelines (electrode insertion follows the latter).
* ``a_value_mm``: basal-turn diameter from the lateral wall at the round window through
  the modiolar axis to the opposite lateral wall, in the basal plane (Escude et al.,
  Audiol Neurotol 2006; 11 suppl 1: 27-33).
* ``b_value_mm``: the basal-turn width perpendicular to A, through the modiolar axis.
* ``height_mm``: extent of the surface along the modiolar axis.
* ``cdl_from_a_value_mm``: the organ-of-Corti length predicted from A alone,
  ``4.16 A - 4`` (Alexiades et al., Otol Neurotol 2015; 36: 904-907; the lateral wall's
  is ``4.16 A - 2.7``, :mod:`cochleaai.planning.literature`), for comparison.
* ``turns``: fixed by the model (2.625, Erixon et al. 2009), so its spread is zero.
"""
from __future__ import annotations

import math
from typing import Dict, Optional

import numpy as np
import torch

from cochleaai.planning.literature import alexiades_cdl_organ_of_corti_mm
from cochleaai.shape import geometry as G
from cochleaai.shape.params import deformable_of

MEASURE_NAMES = ("cdl_lateral_wall_mm", "cdl_organ_of_corti_mm", "cdl_centerline_mm",
                 "cdl_scala_tympani_mm", "a_value_mm", "b_value_mm", "height_mm",
                 "cdl_from_a_value_mm", "turns")

_N = 3000          # samples along each curve (arc-length error well below 0.01 mm)


def _curves(f: torch.Tensor, radial_fraction: float, axial_fraction: float = 0.0) -> np.ndarray:
    """Model-frame points (..., N, 3) at cross-section offset ``(fraction of M col 1, of M col 2)``."""
    R = f[..., 1] + radial_fraction * f[..., 3] + axial_fraction * f[..., 4]
    Z = f[..., 2] + radial_fraction * f[..., 5] + axial_fraction * f[..., 6]
    return torch.stack([R * torch.cos(f[..., 0]), R * torch.sin(f[..., 0]), Z], -1).numpy()


def _lengths(points: np.ndarray) -> np.ndarray:
    """Polyline lengths of (..., N, 3) points."""
    return np.linalg.norm(np.diff(points, axis=-2), axis=-1).sum(axis=-1)


#: Shapes whose measures go through one call of the tube functions (bounds its memory: ~13 MB).
_BATCH = 40


def clinical_measures(theta) -> Dict[str, float]:
    """The measures of :data:`MEASURE_NAMES` for shape parameters ``theta`` (the pose,
    if given, does not change them; cross-section scales do)."""
    return {k: float(v[0]) for k, v in measures_of_shapes(np.atleast_2d(np.asarray(theta, float))).items()}


def measures_of_shapes(thetas) -> Dict[str, np.ndarray]:
    """:func:`clinical_measures` of every row of ``thetas`` (S, 4 + scales or 10 + scales),
    as arrays (S,): the shapes go through the tube functions together, one column of
    parameters per row of the curve samples."""
    thetas = np.atleast_2d(np.asarray(thetas, float))
    shapes = np.stack([deformable_of(t) if t.size >= 10 else t for t in thetas])
    parts = [_measures_of_batch(shapes[i:i + _BATCH]) for i in range(0, len(shapes), _BATCH)]
    return {k: np.concatenate([p[k] for p in parts]) for k in MEASURE_NAMES}


def _measures_of_batch(shapes: np.ndarray) -> Dict[str, np.ndarray]:
    n_shapes = len(shapes)
    with G.single_threaded_torch():
        th = torch.linspace(0.0, G.THETA_MAX, _N, dtype=torch.float64)
        # lateral wall radius at the four basal-plane directions (0, pi/2, pi, 3 pi/2)
        quarter = torch.tensor([0.0, 0.5 * math.pi, math.pi, 1.5 * math.pi], dtype=torch.float64)
        # height: highest and lowest surface points over the whole tube, caps included
        tau = torch.linspace(G.TAU_MIN, G.TAU_MAX, _N, dtype=torch.float64)
        per_shape = torch.cat([th, quarter, tau])
        n = len(per_shape)
        columns = torch.as_tensor(np.repeat(shapes.T, n, axis=1))
        every = G.tube_functions(per_shape.repeat(n_shapes), columns).reshape(n_shapes, n, 7)
        f, fq, ft = every[:, :_N], every[:, _N:_N + 4], every[:, _N + 4:]
        out = {
            "cdl_lateral_wall_mm": _lengths(_curves(f, 1.0)),
            "cdl_organ_of_corti_mm": _lengths(_curves(f, 0.5)),
            "cdl_centerline_mm": _lengths(_curves(f, 0.0)),
            "cdl_scala_tympani_mm": _lengths(_curves(f, 0.0, G.SCALA_TYMPANI_OFFSET)),
        }
        r_wall = (fq[..., 1] + fq[..., 3]).numpy()
        reach = torch.sqrt(ft[..., 5] ** 2 + ft[..., 6] ** 2)
        top = (ft[..., 2] + reach).max(dim=1).values.numpy()
        bottom = (ft[..., 2] - reach).min(dim=1).values.numpy()
    out["a_value_mm"] = r_wall[:, 0] + r_wall[:, 2]
    out["b_value_mm"] = r_wall[:, 1] + r_wall[:, 3]
    out["height_mm"] = top - bottom
    out["cdl_from_a_value_mm"] = np.asarray(alexiades_cdl_organ_of_corti_mm(out["a_value_mm"]), float)
    out["turns"] = np.full(n_shapes, float(G.TURNS))
    return out


def summary(values, best: Optional[float] = None) -> Dict[str, float]:
    """Value at the fitted shape, mean, sd and central 95 % interval of posterior draws (NaN-aware)."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"value": best, "mean": float("nan"), "sd": float("nan"), "low": float("nan"), "high": float("nan")}
    low, high = np.percentile(v, [2.5, 97.5])
    return {"value": None if best is None else float(best), "mean": float(v.mean()),
            "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0, "low": float(low), "high": float(high)}


def measure_summaries(shapes, measures: Optional[dict] = None) -> Dict[str, Dict[str, float]]:
    """The cochlea's measures over ``shapes`` (row 0: the fitted shape; the others: posterior
    draws) as :func:`summary` gives them (``std`` repeats ``sd``); other entries of
    ``measures`` are kept. With row 0 alone, the spread is zero."""
    values = measures_of_shapes(shapes)
    out = dict(measures or {})
    for name in MEASURE_NAMES:
        best = float(values[name][0])
        s = summary(values[name][1:], best) if len(values[name]) > 1 else \
            {"value": best, "mean": best, "sd": 0.0, "low": best, "high": best}
        out[name] = dict(s, std=s["sd"])
    return out
