"""Geometry of the phantom: the inner ear in the cochlea model frame, and its surroundings.

All structures are signed distance functions (mm, positive inside) of LPS image points.

Inner ear (model frame of :mod:`cochleaai.shape`: +z the modiolar axis towards the apex,
origin on the axis at the base, the basal turn starting on +x at the round window):

* cochlea: :class:`cochleaai.shape.CochleaModel` (scala tympani / vestibuli from its labels);
* vestibule: an ellipsoid of semi-axes about 1.4 x 2.1 x 1.5 mm (+-10 %) centred near
  (5.3, -2.8, 0.8) mm, just beyond the basal cap of the cochlea, which it touches;
* three semicircular canals: tori of major radius 2.8-3.3 mm and tube radius 0.35-0.45 mm
  in three mutually orthogonal planes (lateral, superior, posterior canal), each ring
  passing through the centre of the vestibule, oriented as in a right ear at the reference
  orientation (then tilted together by up to about 8 degrees);
* internal auditory canal (IAC): a cylinder of radius 1.8-2.2 mm on the modiolar axis,
  from 0.5 mm below the lowest part of the cochlea near the axis towards -z, 8-11 mm long
  (longer, up to 16 mm, where the capsule keeps the posterior fossa farther away), ending
  0.5 mm inside the posterior cranial fossa;
* otic capsule: the dense bone within 1.5 mm of the cochlea, vestibule and canals (the
  IAC and the fluid spaces excluded).

Reference orientation (:data:`R_REF`, model -> head frame, right ear, LPS head axes): the
modiolar axis +z points lateral (so the IAC runs medially), model +x posterior, model +y
inferior; the vestibule and canals then lie posterior-superior of the cochlea.

Surroundings (head frame, relative to the cochlea's centre landmark; lateral = -x):
middle-ear cavity (air ellipsoid about 4 x 10 x 11 mm just lateral of the capsule), external
auditory canal (air cylinder, radius 3.2-3.9 mm, running laterally out of the head), mastoid
air cells (non-overlapping air spheres of radius 0.45-2.35 mm, bony septa >= 0.25 mm, in an
ellipsoidal region posterolateral of the inner ear, at least 0.6 mm outside the capsule),
posterior and middle cranial fossae (soft tissue beyond two planes: one across the IAC's
medial end, facing along the IAC tilted posteriorly, one above the capsule), a head surface
(sphere of radius 75 mm, 11-16 mm lateral of the capsule) under 4-7 mm of soft tissue, with
air outside. The temporal bone fills the rest.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from cochleaai.shape import CochleaModel
from cochleaai.shape import geometry as G
from cochleaai.shape.geometry import single_threaded_torch
from cochleaai.shape.rotation import rotation_matrix

#: Model frame -> head frame (LPS axes of a right ear) at the reference orientation.
#: Columns: model x -> posterior (+y), model y -> inferior (-z), model z -> lateral (-x).
R_REF = np.array([[0.0, 0.0, -1.0],
                  [1.0, 0.0, 0.0],
                  [0.0, -1.0, 0.0]])

LATERAL = np.array([-1.0, 0.0, 0.0])
MEDIAL = -LATERAL
POSTERIOR = np.array([0.0, 1.0, 0.0])
ANTERIOR = -POSTERIOR
SUPERIOR = np.array([0.0, 0.0, 1.0])

CAPSULE_THICKNESS_MM = 1.5


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def _head_to_model(v) -> np.ndarray:
    return R_REF.T @ np.asarray(v, float)


# ----------------------------------------------------------------------------- primitives

def sdf_ellipsoid(q: np.ndarray, semi: np.ndarray) -> np.ndarray:
    """Approximate signed distance (positive inside) to an axis-aligned ellipsoid at the
    origin; exact on the surface to first order (gradient-normalised implicit function)."""
    k0 = np.linalg.norm(q / semi, axis=-1)
    k1 = np.linalg.norm(q / (semi * semi), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(k1 > 1e-12, k0 * (k0 - 1.0) / np.maximum(k1, 1e-12), -float(np.min(semi)))
    return -d


def sdf_torus(q: np.ndarray, normal: np.ndarray, major: float, minor: float) -> np.ndarray:
    """Signed distance to a torus centred at the origin with axis ``normal``."""
    z = q @ normal
    rho = np.linalg.norm(q - z[..., None] * normal, axis=-1)
    return minor - np.hypot(rho - major, z)


def sdf_cylinder(q: np.ndarray, start: np.ndarray, axis: np.ndarray, length: float, radius: float) -> np.ndarray:
    """Signed distance to a flat-ended cylinder from ``start`` along unit ``axis``."""
    rel = q - start
    h = rel @ axis
    rho = np.linalg.norm(rel - h[..., None] * axis, axis=-1)
    d_r = rho - radius
    d_h = np.abs(h - 0.5 * length) - 0.5 * length
    outside = np.hypot(np.maximum(d_r, 0.0), np.maximum(d_h, 0.0))
    inside = np.minimum(np.maximum(d_r, d_h), 0.0)
    return -(outside + inside)


def ellipsoid_outline(centre, rot, semi, n: int = 16) -> np.ndarray:
    u, v = np.meshgrid(np.linspace(0, math.pi, n), np.linspace(0, 2 * math.pi, 2 * n, endpoint=False))
    unit = np.stack([np.sin(u) * np.cos(v), np.sin(u) * np.sin(v), np.cos(u)], -1).reshape(-1, 3)
    return centre + (unit * semi) @ rot.T


def box_of(points: np.ndarray, margin: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    return points.min(0) - margin, points.max(0) + margin


# ----------------------------------------------------------------------------- cochlea

def cochlea_outline(deformable, n_tau: int = 1200, n_s: int = 32) -> np.ndarray:
    """Points (N, 3) on the cochlea surface in the model frame (dense enough for boxes)."""
    import torch  # lazy: installed on first use in Slicer

    with single_threaded_torch():
        tau = torch.linspace(G.TAU_MIN, G.TAU_MAX, n_tau, dtype=torch.float64)
        f = G.tube_functions(tau, torch.as_tensor(np.asarray(deformable, float))).numpy()
    s = np.linspace(0.0, 2.0 * math.pi, n_s, endpoint=False)
    c, sn = np.cos(s)[None, :], np.sin(s)[None, :]
    R = f[:, 1, None] + f[:, 3, None] * c + f[:, 4, None] * sn
    Z = f[:, 2, None] + f[:, 5, None] * c + f[:, 6, None] * sn
    th = f[:, 0, None]
    return np.stack([R * np.cos(th), R * np.sin(th), Z], -1).reshape(-1, 3)


# ----------------------------------------------------------------------------- inner ear

@dataclass
class Canal:
    name: str
    centre: np.ndarray        # model frame, mm
    normal: np.ndarray        # unit axis of the torus
    major: float
    minor: float

    def outline(self, n: int = 72) -> np.ndarray:
        """Points on the ring, to be grown by ``minor`` for boxes."""
        e1 = _unit(np.cross(self.normal, [1.0, 0.0, 0.0] if abs(self.normal[0]) < 0.9 else [0.0, 1.0, 0.0]))
        e2 = np.cross(self.normal, e1)
        t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)[:, None]
        return self.centre + self.major * (np.cos(t) * e1 + np.sin(t) * e2)

    def as_dict(self) -> dict:
        return {"name": self.name, "centre_model_mm": self.centre.tolist(), "normal_model": self.normal.tolist(),
                "major_radius_mm": self.major, "tube_radius_mm": self.minor}


@dataclass
class InnerEar:
    """Cochlea, vestibule, semicircular canals, IAC and otic capsule, posed by ``model``."""

    model: CochleaModel
    vestibule_centre: np.ndarray
    vestibule_semi: np.ndarray
    vestibule_rot: np.ndarray
    canals: List[Canal]
    iac_top_z: float
    iac_radius: float
    iac_length: float
    capsule_thickness: float = CAPSULE_THICKNESS_MM
    cochlea_points: np.ndarray = field(default=None, repr=False)   # model-frame outline

    # -------------------------------------------------------------- construction
    @classmethod
    def build(cls, model: CochleaModel, rng: np.random.Generator) -> "InnerEar":
        deformable = model.theta[:4]
        outline = cochlea_outline(deformable)
        v = np.array([5.3, -2.8, 0.8]) + rng.normal(0.0, 0.15, 3)
        semi = np.array([1.4, 2.1, 1.5]) * rng.uniform(0.9, 1.1, 3)
        vrot = rotation_matrix(np.radians(rng.normal(0.0, 5.0, 3)))
        # canal planes: set up in head directions at the reference orientation, tilted together
        tilt = rotation_matrix(np.radians(np.clip(rng.normal(0.0, 4.0, 3), -8.0, 8.0)))
        L, P, S, A = (_head_to_model(d) for d in (LATERAL, POSTERIOR, SUPERIOR, ANTERIOR))
        layout = [  # name, plane normal, direction from the vestibule to the ring centre
            # lateral canal: near-horizontal plane, bulging posterolaterally
            ("lateral", S, _unit(P + 0.8 * L)),
            # superior canal: plane across the petrous axis (anteromedial), arching upwards
            ("superior", _unit(L + P), S),
            # posterior canal: plane parallel to the posterior petrous surface, posterolateral and down
            ("posterior", _unit(L + A), _unit(_unit(L + P) * math.cos(0.6) - S * math.sin(0.6))),
        ]
        canals = []
        for name, normal, towards in layout:
            major = float(rng.uniform(2.8, 3.3))
            minor = float(rng.uniform(0.35, 0.45))
            normal, towards = tilt @ normal, tilt @ towards
            canals.append(Canal(name, v + major * towards, normal, major, minor))
        iac_radius = float(rng.uniform(1.8, 2.2))
        rho = np.hypot(outline[:, 0], outline[:, 1])
        near_axis = outline[rho < iac_radius + 0.5]
        lowest = float(near_axis[:, 2].min()) if len(near_axis) else float(outline[:, 2].min())
        top = min(lowest - 0.5, -0.6)
        return cls(model, v, semi, vrot, canals, top, iac_radius, float(rng.uniform(8.0, 11.0)),
                   CAPSULE_THICKNESS_MM, outline)

    # -------------------------------------------------------------- frames
    def to_model(self, points) -> np.ndarray:
        return self.model.to_model(points)

    def to_image(self, local) -> np.ndarray:
        return self.model.to_image(local)

    @property
    def iac_start(self) -> np.ndarray:
        return np.array([0.0, 0.0, self.iac_top_z])

    IAC_AXIS = np.array([0.0, 0.0, -1.0])

    # -------------------------------------------------------------- SDFs of image points
    def sdf_cochlea(self, points) -> np.ndarray:
        return self.model.signed_distance(points)

    def _sdf_vestibular_local(self, q) -> np.ndarray:
        d = sdf_ellipsoid((q - self.vestibule_centre) @ self.vestibule_rot, self.vestibule_semi)
        for c in self.canals:
            d = np.maximum(d, sdf_torus(q - c.centre, c.normal, c.major, c.minor))
        return d

    def sdf_vestibular(self, points) -> np.ndarray:
        """Vestibule and semicircular canals (their union)."""
        return self._sdf_vestibular_local(self.to_model(points))

    def sdf_iac(self, points) -> np.ndarray:
        return sdf_cylinder(self.to_model(points), self.iac_start, self.IAC_AXIS, self.iac_length, self.iac_radius)

    # -------------------------------------------------------------- outlines and boxes (image frame)
    def vestibular_outline_model(self) -> np.ndarray:
        pts = [ellipsoid_outline(self.vestibule_centre, self.vestibule_rot, self.vestibule_semi)]
        pts += [c.outline() for c in self.canals]
        return np.vstack(pts)

    def labyrinth_outline(self) -> np.ndarray:
        """Image points on the fluid spaces of cochlea, vestibule and canals (not the IAC)."""
        return self.to_image(np.vstack([self.cochlea_points[::3], self.vestibular_outline_model()]))

    def cochlea_box(self):
        return box_of(self.to_image(self.cochlea_points), 0.05)

    def vestibular_box(self):
        grow = max([c.minor for c in self.canals]) + 0.05
        return box_of(self.to_image(self.vestibular_outline_model()), grow)

    def capsule_box(self):
        grow = max([c.minor for c in self.canals]) + self.capsule_thickness + 0.05
        return box_of(self.labyrinth_outline(), grow)

    def iac_box(self):
        end = self.iac_start + self.iac_length * self.IAC_AXIS
        ring = np.array([[math.cos(t), math.sin(t), 0.0] for t in np.linspace(0, 2 * math.pi, 16, endpoint=False)])
        pts = np.vstack([self.iac_start + self.iac_radius * ring, end + self.iac_radius * ring])
        return box_of(self.to_image(pts), 0.05)

    def iac_end(self) -> np.ndarray:
        """Image position of the medial end of the IAC (the porus)."""
        return self.to_image(self.iac_start + self.iac_length * self.IAC_AXIS)

    def as_dict(self) -> dict:
        return {
            "frame": "cochlea model frame (mm)",
            "vestibule": {"centre_model_mm": self.vestibule_centre.tolist(),
                          "semi_axes_mm": self.vestibule_semi.tolist(),
                          "rotation": self.vestibule_rot.tolist()},
            "semicircular_canals": [c.as_dict() for c in self.canals],
            "internal_auditory_canal": {"start_model_mm": self.iac_start.tolist(),
                                        "axis_model": self.IAC_AXIS.tolist(),
                                        "radius_mm": self.iac_radius, "length_mm": self.iac_length},
            "otic_capsule_thickness_mm": self.capsule_thickness,
        }


# ----------------------------------------------------------------------------- surroundings

@dataclass
class Surroundings:
    """Temporal bone, air spaces and soft tissue around the inner ear.

    Head coordinates of an image point x: ``(x - anchor) @ head_axes`` where the columns of
    ``head_axes`` are the head's LPS axes expressed in the image frame.
    """

    anchor: np.ndarray
    head_axes: np.ndarray
    head_centre: np.ndarray          # head coordinates
    head_radius: float
    soft_tissue_mm: float
    fossa_posterior: Tuple[np.ndarray, float]     # (unit normal, offset): inside where h.n > offset
    fossa_middle: Tuple[np.ndarray, float]
    middle_ear: Tuple[np.ndarray, np.ndarray, np.ndarray]     # centre, rotation, semi-axes
    ear_canal: Tuple[np.ndarray, np.ndarray, float, float]    # start, axis, length, radius
    air_cells: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))   # (n, 4): centre (head), r

    def to_head(self, points) -> np.ndarray:
        return (np.asarray(points, float) - self.anchor) @ self.head_axes

    def to_image(self, h) -> np.ndarray:
        return np.asarray(h, float) @ self.head_axes.T + self.anchor

    # SDFs of image points (positive inside)
    def sdf_cranial(self, points) -> np.ndarray:
        h = self.to_head(points)
        (n1, d1), (n2, d2) = self.fossa_posterior, self.fossa_middle
        return np.maximum(h @ n1 - d1, h @ n2 - d2)

    def sdf_soft_tissue(self, points) -> np.ndarray:
        """Everything outside the bone surface (soft tissue and, further out, air)."""
        bone_radius = self.head_radius - self.soft_tissue_mm
        return np.linalg.norm(self.to_head(points) - self.head_centre, axis=-1) - bone_radius

    def sdf_outside(self, points) -> np.ndarray:
        return np.linalg.norm(self.to_head(points) - self.head_centre, axis=-1) - self.head_radius

    def sdf_middle_ear(self, points) -> np.ndarray:
        c, rot, semi = self.middle_ear
        return sdf_ellipsoid((self.to_head(points) - c) @ rot, semi)

    def sdf_ear_canal(self, points) -> np.ndarray:
        start, axis, length, radius = self.ear_canal
        return sdf_cylinder(self.to_head(points), start, axis, length, radius)

    def middle_ear_box(self):
        c, rot, semi = self.middle_ear
        return box_of(self.to_image(ellipsoid_outline(c, rot, semi)), 0.1)

    def ear_canal_box(self):
        start, axis, length, radius = self.ear_canal
        e1 = _unit(np.cross(axis, [0.0, 0.0, 1.0] if abs(axis[2]) < 0.9 else [1.0, 0.0, 0.0]))
        e2 = np.cross(axis, e1)
        t = np.linspace(0.0, 2.0 * math.pi, 16, endpoint=False)[:, None]
        ring = radius * (np.cos(t) * e1 + np.sin(t) * e2)
        pts = np.vstack([start + ring, start + length * axis + ring])
        return box_of(self.to_image(pts), 0.1)

    def as_dict(self) -> dict:
        c, rot, semi = self.middle_ear
        start, axis, length, radius = self.ear_canal
        return {
            "frame": "head (LPS axes of a right ear), origin at the cochlea centre landmark",
            "head_axes_in_image": self.head_axes.tolist(),
            "anchor_lps_mm": self.anchor.tolist(),
            "head_surface": {"centre_mm": self.head_centre.tolist(), "radius_mm": self.head_radius,
                             "soft_tissue_mm": self.soft_tissue_mm},
            "posterior_fossa_plane": {"normal": self.fossa_posterior[0].tolist(), "offset_mm": self.fossa_posterior[1]},
            "middle_fossa_plane": {"normal": self.fossa_middle[0].tolist(), "offset_mm": self.fossa_middle[1]},
            "middle_ear": {"centre_mm": c.tolist(), "rotation": rot.tolist(), "semi_axes_mm": semi.tolist()},
            "ear_canal": {"start_mm": start.tolist(), "axis": axis.tolist(), "length_mm": length, "radius_mm": radius},
            "air_cells": len(self.air_cells),
            "air_cells_lps": [self.to_image(c[:3]).tolist() + [float(c[3])] for c in self.air_cells],
            "middle_ear_centre_lps": self.to_image(c).tolist(),
        }


def build_surroundings(ear: InnerEar, head_axes: np.ndarray, rng: np.random.Generator) -> Surroundings:
    """Place the distractors around a posed inner ear (and set the IAC to reach the fossa)."""
    anchor = ear.model.landmarks()["center"]
    T = ear.capsule_thickness
    to_head = lambda x: (np.asarray(x, float) - anchor) @ head_axes   # noqa: E731
    lab = to_head(ear.labyrinth_outline())

    # cranial fossae beyond the capsule; the IAC (8-11 mm) opens into the posterior fossa
    start = to_head(ear.to_image(ear.iac_start))
    axis = to_head(ear.to_image(ear.iac_start + ear.IAC_AXIS)) - start
    # the IAC runs into the posterior surface of the petrous bone, which faces posteromedially
    n_pf = _unit(_unit(axis) + 0.3 * POSTERIOR)
    along = float(axis @ n_pf)
    d_pf = float((lab @ n_pf).max() + T + rng.uniform(0.5, 1.5))
    if along > 0.2:
        d_pf = max(d_pf, float(start @ n_pf + along * (ear.iac_length - 0.5)))
        ear.iac_length = float(np.clip((d_pf - start @ n_pf) / along + 0.5, 6.0, 16.0))
    n_mf = SUPERIOR
    d_mf = float((lab @ n_mf).max() + T + rng.uniform(0.8, 2.0))

    # middle ear: lateral of the capsule, touching it
    e_lat = float((lab @ LATERAL).max() + T)
    semi = np.array([rng.uniform(1.7, 2.3), rng.uniform(4.5, 5.5), rng.uniform(5.0, 6.0)])
    me_rot = rotation_matrix(np.radians(rng.normal(0.0, 6.0, 3)))
    me_c = (LATERAL * (e_lat + 0.2 + semi[0]) + POSTERIOR * rng.uniform(0.0, 2.0)
            + SUPERIOR * rng.uniform(-1.0, 1.0))
    # head surface and external auditory canal
    d_skin = e_lat + 2.0 * semi[0] + rng.uniform(8.0, 11.0)
    head_radius = 75.0
    head_centre = MEDIAL * (head_radius - d_skin)
    soft = float(rng.uniform(4.0, 7.0))
    eac_axis = _unit(rotation_matrix(np.radians(rng.normal(0.0, 5.0, 3))) @ LATERAL)
    eac_start = me_c + LATERAL * 0.5 * semi[0] + SUPERIOR * rng.uniform(0.0, 1.5)
    eac = (eac_start, eac_axis, float(d_skin - e_lat + 15.0), float(rng.uniform(3.2, 3.9)))

    sur = Surroundings(anchor, head_axes, head_centre, head_radius, soft, (n_pf, d_pf), (n_mf, d_mf),
                       (me_c, me_rot, semi), eac)
    sur.air_cells = _place_air_cells(ear, sur, lab, e_lat, rng)
    return sur


def _place_air_cells(ear: InnerEar, sur: Surroundings, lab: np.ndarray, e_lat: float,
                     rng: np.random.Generator, tries: int = 2500) -> np.ndarray:
    """Dart-throwing of non-overlapping air spheres in the mastoid region (head coordinates)."""
    centre = (POSTERIOR * rng.uniform(9.0, 12.0) + LATERAL * rng.uniform(3.0, 6.0)
              + SUPERIOR * rng.uniform(-1.0, 2.0))
    semi = np.array([7.0, 9.0, 8.0]) * rng.uniform(0.9, 1.1, 3)
    u = rng.uniform(-1.0, 1.0, (tries, 3))
    u = u[np.linalg.norm(u, axis=1) <= 1.0]
    cand = centre + u * semi
    radii = 0.45 + 1.9 * rng.uniform(0.0, 1.0, len(cand)) ** 1.7
    septa = rng.uniform(0.25, 0.45, len(cand))
    img = sur.to_image(cand)
    clearance = np.minimum.reduce([
        -np.maximum(ear.sdf_cochlea(img), ear.sdf_vestibular(img)) - ear.capsule_thickness - 0.6,
        -sur.sdf_soft_tissue(img) - 0.6,
        -sur.sdf_cranial(img) - 0.6,
        -sur.sdf_middle_ear(img) - 0.3,
        -sur.sdf_ear_canal(img) - 0.3,
        -np.maximum(ear.sdf_iac(img), -1e3) - 0.6,
    ])
    keep_c: List[np.ndarray] = []
    keep_r: List[float] = []
    for c, r, s, room in zip(cand, radii, septa, clearance):
        if room < r:
            continue
        if keep_c:
            dist = np.linalg.norm(np.asarray(keep_c) - c, axis=1)
            if np.any(dist < np.asarray(keep_r) + r + s):
                continue
        keep_c.append(c)
        keep_r.append(float(r))
    if not keep_c:
        return np.zeros((0, 4))
    return np.column_stack([np.asarray(keep_c), np.asarray(keep_r)])
