"""Where an electrode array runs in a fitted cochlea, and where each of its contacts ends up.

The shape model's duct has an elliptic cross-section around its centreline: a point of the
section is ``centre + c * m1 + q * m2``, with ``m1`` the radial column of the section matrix
(towards the lateral wall for ``c > 0``) and ``m2`` the axial one (the scala tympani is the
lower half, ``q < 0``; :func:`cochleaai.shape.geometry.tube_functions`). An array's axis is
followed as a curve at fixed ``(c, q)`` in that section, by position:

* lateral wall: against the outer wall of the scala tympani (:data:`SECTION_OF_POSITION`);
* mid-scala: the centroid of the scala tympani (the model's scala tympani centreline);
* perimodiolar: the same centroid. A precurved array is meant to lie against the modiolar
  wall, but a path there (``c = -0.55``) put the Slim Modiolar and Contour Advance at 650 to
  830 degrees on the development specimens, about twice the published means (395 and 381
  degrees, :data:`cochleaai.planning.literature.COHORT_AID_WITHOUT_RANGE`); the centroid puts
  them at 364 and 398 degrees in the mean-shape cochlea. The published depths say these
  arrays do not wrap the modiolar wall along their whole length; the model has no mechanics
  of a precurved carrier, so it keeps them on the centroid, medial of the lateral-wall
  arrays. The choice was made against those two cohorts, which therefore no longer check
  the precurved arrays independently.

These section offsets are the model's geometry, not measured array positions: an array
hugging a wall sits about its radius from it, which the offsets leave (the half-ellipse
reaches ``c^2 + q^2 = 1``).

At full insertion the array's intracochlear length is its insertion length, measured along
its curve from the round window (polar angle 0); the angle there is the tip's angular
insertion depth, and each contact sits its own distance from the tip. The organ of Corti
runs halfway between the centreline and the lateral wall (:mod:`cochleaai.shape.measures`),
and a contact's place on it is the organ-of-Corti point at the contact's angle, which is how
angular insertion depth is mapped to a cochlear place clinically.
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import numpy as np
import torch

from cochleaai.shape import geometry as G

#: (radial c, axial q) of an array's axis in the duct's normalised cross-section.
_SCALA_TYMPANI_CENTROID = (0.0, -4.0 / (3.0 * math.pi))
SECTION_OF_POSITION: Dict[str, Tuple[float, float]] = {
    "lateral wall": (0.55, -0.35),
    "mid-scala": _SCALA_TYMPANI_CENTROID,
    "perimodiolar": _SCALA_TYMPANI_CENTROID,       # see the module's docstring
}
#: The organ of Corti: halfway from the centreline to the lateral wall, on the partition.
ORGAN_OF_CORTI = (0.5, 0.0)
#: Samples of the polar angle along the whole duct (0.12 degree apart).
SAMPLES = 8000


_ANGLES_RAD = np.linspace(0.0, G.THETA_MAX, SAMPLES)
_ANGLES_DEG = np.degrees(_ANGLES_RAD)
_ANGLES_TORCH = torch.as_tensor(_ANGLES_RAD, dtype=torch.float64).clone()
_ANGLES_RAD.flags.writeable = _ANGLES_DEG.flags.writeable = False     # computed once, shared


def angles_rad() -> np.ndarray:
    return _ANGLES_RAD


def curve_points(deformable: np.ndarray) -> Dict[str, np.ndarray]:
    """Model-frame points (mm) at every angle of :func:`angles_rad` of each array position's
    path and of the organ of Corti (key ``"organ of Corti"``)."""
    d = torch.as_tensor(np.asarray(deformable, float), dtype=torch.float64)
    with G.single_threaded_torch():
        f = G.tube_functions(_ANGLES_TORCH, d).numpy()
    by_section = {}                     # positions that share a section share its curve
    for section in set(SECTION_OF_POSITION.values()) | {ORGAN_OF_CORTI}:
        c, q = section
        R = f[:, 1] + c * f[:, 3] + q * f[:, 4]
        Z = f[:, 2] + c * f[:, 5] + q * f[:, 6]
        by_section[section] = np.stack([R * np.cos(f[:, 0]), R * np.sin(f[:, 0]), Z], axis=1)
    return {**{name: by_section[section] for name, section in SECTION_OF_POSITION.items()},
            "organ of Corti": by_section[ORGAN_OF_CORTI]}


def cumulative_lengths(deformable: np.ndarray) -> Dict[str, np.ndarray]:
    """Arc length (mm) from the round window at every angle of :func:`angles_rad`, for each
    array position and for the organ of Corti (key ``"organ of Corti"``)."""
    lengths = {}                        # by curve: positions on one section share its lengths
    out = {}
    for name, points in curve_points(deformable).items():
        if id(points) not in lengths:
            lengths[id(points)] = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
        out[name] = lengths[id(points)]
    return out


def angle_at_length(lengths: np.ndarray, s_mm) -> np.ndarray:
    """Polar angle (degrees from the round window) where the curve has run ``s_mm``; NaN
    before the round window (``s < 0``: extracochlear) and beyond the apex."""
    s = np.asarray(s_mm, float)
    deg = np.interp(s, lengths, _ANGLES_DEG)
    return np.where((s >= 0) & (s <= lengths[-1]), deg, np.nan)


def length_at_angle(lengths: np.ndarray, degrees) -> np.ndarray:
    """Arc length (mm) from the round window to ``degrees`` along the curve."""
    return np.interp(np.asarray(degrees, float), _ANGLES_DEG, lengths)


def contact_offsets_mm(array) -> np.ndarray:
    """Distance (mm) of each contact's centre from the array's tip, contact 1 (apical) first.

    From the pitch when the catalogue gives one, else the active length spread evenly; the
    tip offset is the catalogue's, or half a pitch when it is not published."""
    n = int(array.n_contacts)
    pitch = array.pitch_mm if array.pitch_mm else array.active_length_mm / (n - 1)
    tip = array.tip_offset_mm if array.tip_offset_mm is not None else 0.5 * pitch
    return tip + pitch * np.arange(n)


def full_insertion(array, lengths: Dict[str, np.ndarray]) -> dict:
    """Angles (degrees) of the tip and of each contact, and the organ-of-Corti fraction from
    the base at each, for ``array`` fully inserted in the cochlea of ``lengths``.

    ``apical_deg`` is the angular insertion depth as cohorts report it (the most apical
    contact); ``coverage_fraction`` the share of the organ of Corti from the base to the
    place of that contact. ``over_inserted``: the array is longer than its curve in this
    cochlea (the tip is put at the apex; the rest of the carrier would buckle or stay out)."""
    curve = lengths[array.position]
    insertion = min(float(array.insertion_length_mm), float(curve[-1]))
    s_contacts = insertion - contact_offsets_mm(array)
    tip_deg = float(angle_at_length(curve, insertion))
    contact_deg = angle_at_length(curve, s_contacts)
    oc = lengths["organ of Corti"]
    oc_fraction = length_at_angle(oc, np.nan_to_num(contact_deg, nan=0.0)) / oc[-1]
    tip_fraction = float(length_at_angle(oc, tip_deg) / oc[-1])
    oc_fraction = np.where(s_contacts >= 0, oc_fraction, np.nan)
    return {"tip_deg": tip_deg, "tip_oc_fraction": tip_fraction, "apical_deg": float(contact_deg[0]),
            "contact_deg": contact_deg, "intracochlear": s_contacts >= 0, "contact_oc_fraction": oc_fraction,
            "coverage_fraction": float(oc_fraction[0]),
            "over_inserted": float(array.insertion_length_mm) > curve[-1], "cdl_organ_of_corti_mm": float(oc[-1])}
