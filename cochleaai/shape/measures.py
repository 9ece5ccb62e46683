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
from typing import Dict

import numpy as np
import torch

from cochleaai.planning.literature import alexiades_cdl_organ_of_corti_mm
from cochleaai.shape import geometry as G
from cochleaai.shape.params import deformable_of

MEASURE_NAMES = ("cdl_lateral_wall_mm", "cdl_organ_of_corti_mm", "cdl_centerline_mm",
                 "cdl_scala_tympani_mm", "a_value_mm", "b_value_mm", "height_mm",
                 "cdl_from_a_value_mm", "turns")

_N = 3000          # samples along each curve (arc-length error well below 0.01 mm)


def _curve(f: torch.Tensor, radial_fraction: float, axial_fraction: float = 0.0) -> np.ndarray:
    """Model-frame points at cross-section offset ``(fraction of M col 1, of M col 2)``."""
    R = f[:, 1] + radial_fraction * f[:, 3] + axial_fraction * f[:, 4]
    Z = f[:, 2] + radial_fraction * f[:, 5] + axial_fraction * f[:, 6]
    return torch.stack([R * torch.cos(f[:, 0]), R * torch.sin(f[:, 0]), Z], -1).numpy()


def _length(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def clinical_measures(theta) -> Dict[str, float]:
    """The measures of :data:`MEASURE_NAMES` for shape parameters ``theta`` (the pose,
    if given, does not change them; cross-section scales do)."""
    theta = np.asarray(theta, float).reshape(-1)
    d = torch.as_tensor(deformable_of(theta) if theta.size >= 10 else theta, dtype=torch.float64)
    with G.single_threaded_torch():
        th = torch.linspace(0.0, G.THETA_MAX, _N, dtype=torch.float64)
        # lateral wall radius at the four basal-plane directions (0, pi/2, pi, 3 pi/2)
        quarter = torch.tensor([0.0, 0.5 * math.pi, math.pi, 1.5 * math.pi], dtype=torch.float64)
        # height: highest and lowest surface points over the whole tube, caps included
        tau = torch.linspace(G.TAU_MIN, G.TAU_MAX, _N, dtype=torch.float64)
        every = G.tube_functions(torch.cat([th, quarter, tau]), d)     # one call: its fixed cost dominates
        f, fq, ft = every[:_N], every[_N:_N + 4], every[_N + 4:]
        out = {
            "cdl_lateral_wall_mm": _length(_curve(f, 1.0)),
            "cdl_organ_of_corti_mm": _length(_curve(f, 0.5)),
            "cdl_centerline_mm": _length(_curve(f, 0.0)),
            "cdl_scala_tympani_mm": _length(_curve(f, 0.0, G.SCALA_TYMPANI_OFFSET)),
        }
        r_wall = (fq[:, 1] + fq[:, 3]).numpy()
        reach = torch.sqrt(ft[:, 5] ** 2 + ft[:, 6] ** 2)
        top, bottom = float((ft[:, 2] + reach).max()), float((ft[:, 2] - reach).min())
    out["a_value_mm"] = float(r_wall[0] + r_wall[2])
    out["b_value_mm"] = float(r_wall[1] + r_wall[3])
    out["height_mm"] = top - bottom
    out["cdl_from_a_value_mm"] = alexiades_cdl_organ_of_corti_mm(out["a_value_mm"])
    out["turns"] = float(G.TURNS)
    return out


def summarize(samples) -> Dict[str, Dict[str, float]]:
    """Mean and standard deviation of each measure over parameter samples (S, >=4)."""
    rows = [clinical_measures(t) for t in np.atleast_2d(samples)]
    return {k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows]))}
            for k in MEASURE_NAMES}
