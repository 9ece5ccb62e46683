"""Cochlear-implant electrode arrays and their virtual insertion along the scala tympani.

An array is a silicone carrier with platinum-iridium contacts and a bundle of thin wires
(the lead). We model each contact as a short cylinder coaxial with the carrier and the
lead as one thin cylinder along the path, basal of the most basal contact. The carrier
itself is not modelled (silicone is close to soft tissue in CT). A contact is a thin
platinum band on the carrier's surface, not a solid platinum rod: a 40 um wall on a 0.3 mm
radius holds about 25 % of the cylinder's volume, so each contact cylinder is voxelised with
that metal share (``contact_fill``), which keeps its platinum mass.

Placement: the array follows the scala tympani centreline of a :class:`CochleaModel`
(phantom truth or a fitted model) from the round window to the chosen angular insertion
depth of the tip. Basal of the round window the path continues straight along the
centreline's tangent (the array leaves the cochlea towards the middle ear), so contacts that
do not fit inside are extracochlear, as in a shallow insertion.
Contacts are numbered from the apex here (1 = most apical), as Advanced Bionics numbers
them; Cochlear numbers from the base (its electrode 22 is the most apical), see
:mod:`cochleaai.planning.catalogue`. The catalogue of arrays is :mod:`.arrays`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from scipy.spatial import cKDTree

from cochleaai.errors import CochleaAIError
from cochleaai.shape import CochleaModel
from cochleaai.shape import geometry as G
from cochleaai.simulation.arrays import DEFAULT_ARRAY, ElectrodeArray, get_array
from cochleaai.volume import Volume


@dataclass
class Insertion:
    """Result of :func:`insert_array` (points in LPS mm, contact 1 = most apical)."""

    array: ElectrodeArray
    depth_deg: float                    # angular depth of the tip from the round window
    contacts: np.ndarray                # (N, 3) contact centres
    contact_depth_deg: np.ndarray       # (N,) angular depth; NaN for extracochlear contacts
    intracochlear: np.ndarray           # (N,) bool
    path: np.ndarray                    # (M, 3) array axis from the tip to the lead's end
    metal_fraction: Volume              # float32 in [0, 1]: share of each voxel that is metal
    metal_mask: np.ndarray = field(repr=False, default=None)   # bool: inside a contact or the lead
    contact_axes: np.ndarray = field(repr=False, default=None)   # (N, 3) unit tangents at the contacts
    contact_radii: np.ndarray = field(repr=False, default=None)  # (N,) outer radius of each band (mm)
    lead_points: np.ndarray = field(repr=False, default=None)    # (M, 3) the lead's axis, basal of the contacts

    def labels(self):
        return [f"E{k + 1}" + ("" if inside else " (extracochlear)")
                for k, inside in enumerate(self.intracochlear)]

    def summary(self) -> dict:
        return {"array": self.array.key, "depth_deg": round(float(self.depth_deg), 1),
                "n_contacts": int(len(self.contacts)),
                "intracochlear_contacts": int(self.intracochlear.sum()),
                "metal_voxels": int(self.metal_mask.sum())}


def _model_of(model_or_theta):
    if isinstance(model_or_theta, CochleaModel):
        return model_or_theta
    return CochleaModel(np.asarray(model_or_theta, dtype=float))


def array_path(model, depth_deg: float, extension_mm: float, step_mm: float = 0.02):
    """Dense samples of the array axis, from the tip back to ``extension_mm`` beyond the
    round window. Returns ``(points (M, 3), u_mm (M,) from the tip, degrees (M,), NaN
    outside the cochlea)``."""
    theta_max = float(np.degrees(G.THETA_MAX))
    n = int(theta_max * 10) + 1
    centre = model.scala_tympani_centerline(n)
    deg = np.degrees(np.linspace(0.0, G.THETA_MAX, n))
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(centre, axis=0), axis=1))])
    s_tip = float(np.interp(depth_deg, deg, s))
    # inside: resample the centreline uniformly in arc length from the round window to the tip
    s_in = np.linspace(0.0, s_tip, max(2, int(np.ceil(s_tip / step_mm)) + 1))
    inside = np.stack([np.interp(s_in, s, centre[:, a]) for a in range(3)], axis=1)
    tangent = centre[min(5, n - 1)] - centre[0]
    tangent /= np.linalg.norm(tangent)
    s_out = np.arange(step_mm, extension_mm + step_mm, step_mm)
    outside = centre[0] - s_out[:, None] * tangent[None, :]
    points = np.concatenate([inside[::-1], outside])
    u = np.concatenate([s_tip - s_in[::-1], s_tip + s_out])
    degrees = np.concatenate([np.interp(s_in[::-1], s, deg), np.full(len(s_out), np.nan)])
    return points, u, degrees


def insert_array(model_or_theta, reference: Volume, array=DEFAULT_ARRAY,
                 depth_deg: Optional[float] = None, rng=None, supersample: int = 3,
                 lead: bool = True) -> Insertion:
    """Place ``array`` in the scala tympani of a cochlea model and voxelise its metal.

    ``model_or_theta``: a :class:`~cochleaai.shape.CochleaModel` or its 10 parameters (LPS
    pose). ``reference``: the volume whose grid receives the metal. ``depth_deg``: angular
    depth of the tip from the round window; ``None`` draws it uniformly from the array's
    typical range with ``rng`` (an int seed or a numpy Generator). Each voxel's metal
    fraction is measured on ``supersample``^3 sub-points.
    """
    arr = get_array(array)
    model = _model_of(model_or_theta)
    theta_max = float(np.degrees(G.THETA_MAX))
    if depth_deg is None:
        rng = np.random.default_rng(rng)
        depth_deg = float(rng.uniform(*arr.depth_range_deg))
    depth_deg = float(depth_deg)
    if not np.isfinite(depth_deg) or depth_deg <= 0 or depth_deg > theta_max:
        raise CochleaAIError(f"The insertion depth must be between 0 and {theta_max:.0f} degrees "
                             f"(the apex of this model), got {depth_deg}.")
    if int(supersample) < 1:
        raise CochleaAIError("supersample must be a positive whole number.")
    extent = float(np.linalg.norm(np.asarray(reference.size) * reference.spacing))
    extension = arr.length_mm + (extent if lead else 0.0)
    points, u, degrees = array_path(model, depth_deg, extension)

    u_contacts = arr.tip_offset_mm + arr.pitch_mm * np.arange(arr.n_contacts)
    idx = np.clip(np.searchsorted(u, u_contacts), 1, len(u) - 1)
    contacts = np.stack([np.interp(u_contacts, u, points[:, a]) for a in range(3)], axis=1)
    contact_deg = np.interp(u_contacts, u, np.nan_to_num(degrees, nan=-1.0))
    intracochlear = u_contacts <= u[np.isfinite(degrees)].max()
    contact_deg = np.where(intracochlear, contact_deg, np.nan)
    tangents = points[idx] - points[idx - 1]
    tangents /= np.maximum(np.linalg.norm(tangents, axis=1, keepdims=True), 1e-12)
    radii = arr.diameter_at(u_contacts) / 2.0

    lead_start = u_contacts[-1] + arr.contact_length_mm / 2.0
    lead_points = points[u >= lead_start] if lead else np.zeros((0, 3))
    fraction = _voxelise(reference, contacts, tangents, radii, arr.contact_length_mm,
                         lead_points, arr.lead_radius_mm, arr.lead_fill, int(supersample),
                         arr.contact_fill)
    frac_volume = reference.copy(fraction)
    return Insertion(arr, depth_deg, contacts, contact_deg, intracochlear,
                     points[u <= (u_contacts[-1] if not lead else np.inf)], frac_volume,
                     fraction >= 0.5 * min(arr.contact_fill, arr.lead_fill),
                     tangents, radii, lead_points)


#: Length (mm) of the straight cylinders that stand in for the curved lead.
LEAD_SEGMENT_MM = 0.25


def metal_cylinders(ins: Insertion):
    """The array's metal as finite cylinders in LPS mm: each contact a hollow band whose wall
    holds the contact's platinum (outer radius of the carrier, inner radius chosen so that the
    band fills ``contact_fill`` of the cylinder), the lead a chain of solid cylinders of metal
    share ``lead_fill``. Returns ``(centre, axis, half_length, outer, inner, share)``."""
    arr = ins.array
    n = len(ins.contacts)
    centre = [ins.contacts]
    axis = [ins.contact_axes]
    half = [np.full(n, arr.contact_length_mm / 2.0)]
    outer = [ins.contact_radii]
    inner = [ins.contact_radii * np.sqrt(1.0 - arr.contact_fill)]
    share = [np.ones(n)]
    lead = ins.lead_points if ins.lead_points is not None else np.zeros((0, 3))

    def chain(points, fill):
        if len(points) < 2:
            return
        step = max(1, int(round(LEAD_SEGMENT_MM / max(np.linalg.norm(points[1] - points[0]), 1e-6))))
        knots = np.concatenate([points[::step], points[-1:]])
        a, b = knots[:-1], knots[1:]
        seg = b - a
        length = np.linalg.norm(seg, axis=1)
        keep = length > 1e-9
        fill = np.broadcast_to(np.asarray(fill, float), (len(a),))[keep]
        centre.append(0.5 * (a + b)[keep])
        axis.append(seg[keep] / length[keep, None])
        half.append(length[keep] / 2.0)
        outer.append(np.full(int(keep.sum()), arr.lead_radius_mm))
        inner.append(np.zeros(int(keep.sum())))
        share.append(fill)

    chain(lead, arr.lead_fill)
    if len(lead) and ins.path is not None and len(ins.path) > 1:
        # inside the carrier the wires run on to their contacts: the bundle thins towards the
        # tip (one wire less past each contact), which also fills the bands' hollow centres
        d = np.linalg.norm(ins.path[:, None, :] - ins.contacts[None, :, :], axis=2)
        along = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(ins.path, axis=0), axis=1))])
        u_contact = along[np.argmin(d, axis=0)]
        u_lead = along[np.argmin(np.linalg.norm(ins.path - lead[0], axis=1))]
        inside = (along >= u_contact.min()) & (along <= u_lead)
        pts = ins.path[inside]
        if len(pts) > 1:
            u = along[inside]
            wires = (u[:, None] >= u_contact[None, :]).sum(1) / float(n)
            step = max(1, int(round(LEAD_SEGMENT_MM / max(np.linalg.norm(pts[1] - pts[0]), 1e-6))))
            chain(pts, arr.lead_fill * np.concatenate([wires[::step], wires[-1:]])[:-1])
    return tuple(np.concatenate(x) for x in (centre, axis, half, outer, inner, share))


def _voxelise(reference: Volume, centres, tangents, radii, length, lead_points, lead_radius,
              lead_fill, n_sub: int, contact_fill: float = 1.0) -> np.ndarray:
    """Metal fraction of every voxel of ``reference`` (float32 array, (z, y, x))."""
    out = np.zeros(reference.shape, dtype=np.float32)
    reach = float(max(radii.max(), length / 2.0, lead_radius)) + float(np.linalg.norm(reference.spacing))
    axis_pts = [centres]
    if len(lead_points):
        axis_pts.append(lead_points)
    tree = cKDTree(np.concatenate(axis_pts))
    grid = reference.physical_grid().reshape(-1, 3)
    near = np.flatnonzero(tree.query(grid, distance_upper_bound=reach + length)[0] < np.inf)
    if near.size == 0:
        return out
    # sub-voxel offsets in index units, centred in the voxel
    o = (np.arange(n_sub) + 0.5) / n_sub - 0.5
    offs = np.stack(np.meshgrid(o, o, o, indexing="ij"), -1).reshape(-1, 3)
    ijk = np.stack(np.unravel_index(near, reference.shape)[::-1], axis=1).astype(float)
    sub = reference.index_to_physical(ijk[:, None, :] + offs[None, :, :])     # (V, S, 3)
    inside = np.zeros(sub.shape[:2], dtype=bool)
    for c, t, r in zip(centres, tangents, radii):
        d = sub - c
        along = d @ t
        radial2 = np.einsum("vsk,vsk->vs", d, d) - along ** 2
        inside |= (np.abs(along) <= length / 2.0) & (radial2 <= r * r)
    frac = contact_fill * inside.mean(axis=1)
    if len(lead_points):
        dist, _ = cKDTree(lead_points).query(sub.reshape(-1, 3), distance_upper_bound=lead_radius)
        in_lead = (dist <= lead_radius).reshape(sub.shape[:2]) & ~inside
        frac = frac + lead_fill * in_lead.mean(axis=1)
    out.reshape(-1)[near] = np.clip(frac, 0.0, 1.0)
    return out
