"""The post-operative report: where each contact of an implanted array lies in the fitted
cochlea, with error bars from the fit's posterior.

A contact takes the polar angle (degrees from the round window) of its nearest point on the
scala tympani centreline (:meth:`cochleaai.shape.CochleaModel.angular_position`, the
convention of :mod:`.paths` and :mod:`.plan`); one farther than :data:`MAX_DISTANCE_MM`
from that centreline is outside the cochlea. The Laplace posterior of the fit is sampled
whole, pose included (the contacts are fixed points of the image, so a shifted cochlea moves
them along it); in each draw a contact gets its angle, the place of the organ of Corti at
that angle and the frequencies there (:mod:`.literature`). The array's angular insertion
depth is the angle of its most apical (deepest) contact.

Contacts come numbered from the apex (``E1``, ``E2``, ... as :mod:`cochleaai.contacts` and
the ``mar --contacts`` file label them); a file without that numbering is read as
unnumbered, and its report gives positions only: a frequency belongs to a numbered channel.

With a pre-operative CT the cochlea is fitted there (no metal) and the post-operative
contacts are carried into it by :func:`register_preop_to_postop`.
"""
from __future__ import annotations

import html
import re
from typing import Optional, Tuple

import numpy as np
import SimpleITK as sitk

from cochleaai.errors import CochleaAIError
from cochleaai.landmarks.register import rigid_register
from cochleaai.mar.methods import DEFAULT_THRESHOLD_HU
from cochleaai.metrics import distance_from_mask
from cochleaai.planning import catalogue, literature, paths
from cochleaai.planning.interval_scale import resolve_interval_scale
from cochleaai.planning.report import interval, page_start, sources
from cochleaai.segmentation.quality import suspect_reasons
from cochleaai.shape import CochleaModel
from cochleaai.shape.geometry import single_threaded_torch
from cochleaai.shape.measures import summary
from cochleaai.shape.params import deformable_of, posterior_thetas

#: A contact farther than this (mm) from the scala tympani centreline is outside the cochlea.
MAX_DISTANCE_MM = 3.0
UNNUMBERED_WARNING = "the contacts could not be numbered; no frequencies are given"
#: Labels of numbered contacts: E1 (most apical), E2, ...; a suffix such as " (extracochlear)" may follow.
CONTACT_LABEL = re.compile(r"^E(\d+)\b")
#: The post-operative voxels the registration compares: not metal, nor within this (mm) of it.
METAL_MARGIN_MM = 2.0
#: ... and within this radius (mm) of the point it is centred on (the contacts).
REGION_RADIUS_MM = 15.0
#: Grey values are clipped to this range (HU) before the registration.
REGISTRATION_WINDOW_HU = (-1000.0, DEFAULT_THRESHOLD_HU)


def contacts_of(markups) -> Tuple[np.ndarray, bool]:
    """``(points (N, 3) LPS, numbered)`` of a contacts markups: ordered contact 1 (apex)
    first when the labels are ``E1`` ... ``EN``, else in the file's order, unnumbered."""
    found = [CONTACT_LABEL.match(label.strip()) for label in markups.labels]
    numbers = [int(m.group(1)) for m in found if m]
    if len(numbers) == len(markups) > 0 and sorted(numbers) == list(range(1, len(numbers) + 1)):
        return np.asarray(markups.points, float)[np.argsort(numbers)], True
    return np.asarray(markups.points, float), False


def _positions(points_fit: np.ndarray, thetas: np.ndarray):
    """Angle (degrees; NaN outside), organ-of-Corti fraction from the base, per draw and
    contact, and the distances (mm) to the fitted centreline."""
    angles = np.full((len(thetas), len(points_fit)), np.nan)
    fraction = np.full_like(angles, np.nan)
    with single_threaded_torch():
        for i, t in enumerate(thetas):
            deg, dist = CochleaModel(t).angular_position(points_fit, MAX_DISTANCE_MM)
            if i == 0:
                distance = dist
            oc = paths.cumulative_lengths(deformable_of(t))["organ of Corti"]
            angles[i] = deg
            fraction[i] = np.where(np.isfinite(deg), paths.length_at_angle(oc, np.nan_to_num(deg)) / oc[-1], np.nan)
    return angles, fraction, distance


def postop_report(contacts_lps, numbered: bool, result, array=None, samples: int = 200, seed: int = 0,
                  interval_scale: Optional[float] = None) -> dict:
    """The report of the contacts ``contacts_lps`` (N, 3; LPS points of the image ``result``
    was fitted on) in the fitted cochlea ``result`` (a segmentation result).

    ``numbered``: the rows are contacts 1 (most apical) to N; otherwise their order means
    nothing and no frequency is given. ``array``: the implanted array (catalogue key or
    name), for the manufacturer's contact numbers. Figures: :func:`~cochleaai.shape.measures.summary` over
    ``samples`` posterior draws (``value``: the fit's own), the posterior widened by the plan's
    calibrated ``interval_scale`` (:mod:`.interval_scale`; set on planned depths, assumed here)."""
    points = np.asarray(contacts_lps, float).reshape(-1, 3)
    if len(points) == 0:
        raise CochleaAIError("No electrode contacts were given; find them first (mar --contacts).")
    model = catalogue.get(array) if array is not None else None
    scale = resolve_interval_scale(interval_scale)
    thetas = posterior_thetas(result.theta, result.covariance, samples, seed, scale)
    angles, fraction, distance = _positions(result.to_image(points), thetas)   # the mirror is its own inverse
    warnings, notes = [], []
    if not numbered:
        warnings.append(UNNUMBERED_WARNING)
    if result.quality and result.quality.get("suspect"):
        reasons = "; ".join(suspect_reasons(result.quality)) or "quality control flagged it"
        warnings.append(f"Check the fitted cochlea before using this report: the segmentation may be wrong "
                        f"({reasons}). The contact angles are only as good as that fit.")
    numbers = numbered and model is not None and len(points) == model.n_contacts
    if numbered and model is not None and not numbers:
        notes.append(f"{len(points)} contacts were found, the {model.name} has {model.n_contacts}: "
                     "the manufacturer's numbers are not given.")
    contacts = []
    for k in range(len(points)):
        row = {"contact": k + 1 if numbered else None, "point": k + 1,
               "manufacturer_number": catalogue.manufacturer_contact_number(model, k + 1) if numbers else None,
               "position_lps": points[k].tolist(), "distance_mm": float(distance[k]),
               "outside_cochlea": bool(distance[k] > MAX_DISTANCE_MM),
               "angle_deg": summary(angles[1:, k], angles[0, k]),
               "organ_of_corti_pct": summary(100 * fraction[1:, k], 100 * fraction[0, k])}
        if numbered:
            row["greenwood_hz"] = summary(literature.greenwood_hz(1 - fraction[1:, k]),
                                          literature.greenwood_hz(1 - fraction[0, k]))
            row["spiral_ganglion_hz"] = summary(literature.spiral_ganglion_hz(angles[1:, k]),
                                                literature.spiral_ganglion_hz(angles[0, k]))
        contacts.append(row)
    outside = [c["point"] for c in contacts if c["outside_cochlea"]]
    if outside:
        notes.append(f"{'Contacts' if numbered else 'Points'} {', '.join(map(str, outside))} lie more than "
                     f"{MAX_DISTANCE_MM:g} mm from the scala tympani: outside the cochlea.")
    deepest = np.where(np.isfinite(angles), angles, -np.inf).max(axis=1)
    deepest[~np.isfinite(deepest)] = np.nan
    if numbered and np.isfinite(deepest[0]) and angles[0, 0] != deepest[0]:
        notes.append("Contact 1 is not the deepest contact: check the numbering.")
    citations = {k: literature.CITATIONS[k] for k in ("greenwood", "spiral_ganglion_angle_map")} if numbered else {}
    if model is not None:
        citations[f"array_{model.key}"] = model.source
    return {"side": result.side, "numbered": bool(numbered), "samples": int(samples), "seed": int(seed),
            "interval_scale": scale,
            "warnings": warnings, "notes": notes, "max_distance_mm": MAX_DISTANCE_MM,
            "array": None if model is None else {"key": model.key, "name": model.name,
                                                  "manufacturer": model.manufacturer},
            "insertion_depth_deg": summary(deepest[1:], deepest[0]), "contacts": contacts,
            "measures": result.measures, "quality": result.quality, "citations": citations}


def _box(volume, centre, radius_mm: float):
    """The part of ``volume`` (same voxels, no resampling) that holds the ball of ``radius_mm``
    around ``centre``, and the ball as a bool mask on it."""
    corners = np.array(np.meshgrid(*[[-1.0, 1.0]] * 3)).reshape(3, -1).T * float(radius_mm) + centre
    ijk = volume.physical_to_index(corners)
    lo = np.clip(np.floor(ijk.min(0)).astype(int), 0, np.array(volume.size) - 1)
    hi = np.clip(np.ceil(ijk.max(0)).astype(int) + 1, lo + 1, np.array(volume.size))
    part = volume.copy(volume.array[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]])
    part.origin = volume.index_to_physical(lo.astype(float))
    c = part.physical_to_index(centre)
    k, j, i = np.ogrid[:part.shape[0], :part.shape[1], :part.shape[2]]
    s = part.spacing
    ball = ((i - c[0]) * s[0]) ** 2 + ((j - c[1]) * s[1]) ** 2 + ((k - c[2]) * s[2]) ** 2 <= float(radius_mm) ** 2
    return part, ball


def register_preop_to_postop(preop, postop, around_lps=None, radius_mm: float = REGION_RADIUS_MM,
                             seed: int = 0) -> sitk.Euler3DTransform:
    """Rigid registration of the pre-operative CT ``preop`` to the post-operative ``postop``
    (Volumes, HU), with :func:`cochleaai.landmarks.register.rigid_register`.

    The transform maps **post-operative LPS points to pre-operative LPS points** (the
    post-operative scan is SimpleITK's fixed image): ``map_points(t, contacts)`` carries the
    contacts into the pre-operative scan. Compared: the post-operative voxels away from the
    metal (:data:`METAL_MARGIN_MM`), within ``radius_mm`` of ``around_lps`` (e.g. the
    contacts; None: the whole scan). Started from the scanners' own frames and from the
    scans' centres put together; the better correlation wins."""
    if around_lps is None:
        part, region = postop, np.ones(postop.shape, bool)
    else:
        part, region = _box(postop, np.asarray(around_lps, float).reshape(3), radius_mm)
    post = np.asarray(part.numeric_array(), np.float32)
    region &= distance_from_mask(post >= DEFAULT_THRESHOLD_HU, part.spacing) > METAL_MARGIN_MM
    if region.sum() < 1000:
        raise CochleaAIError("Too little of the post-operative CT lies away from the metal to register the "
                             "pre-operative CT to it; check that both scans show the same ear.")
    lo, hi = REGISTRATION_WINDOW_HU
    fixed = part.copy(np.clip(post, lo, hi)).to_sitk()
    moving = preop.copy(np.clip(preop.numeric_array().astype(np.float32), lo, hi)).to_sitk()
    mask = part.copy(region.astype(np.uint8)).to_sitk()
    best, apart = None, preop.center - postop.center
    for shift in [np.zeros(3)] + ([apart] if np.linalg.norm(apart) > 1e-3 else []):
        start = sitk.Euler3DTransform()
        start.SetCenter([float(v) for v in part.center])
        start.SetTranslation([float(v) for v in shift])
        found = rigid_register(fixed, mask, moving, start, seed=seed)
        best = found if best is None or found[1] < best[1] else best     # the metric is -correlation
    return best[0]


def map_points(transform, points) -> np.ndarray:
    """``points`` (N, 3) through a SimpleITK ``transform``."""
    points = np.asarray(points, float).reshape(-1, 3)
    return np.array([transform.TransformPoint([float(v) for v in p]) for p in points]).reshape(-1, 3)


def postop_html(record: dict, title: str = "Post-operative cochlear implant report", subject: str = "") -> str:
    """The page of a :func:`postop_report` record: warnings on top, the insertion depth, the
    contact table with its 95 % intervals, notes and sources."""
    numbered = record["numbered"]
    array = record.get("array")
    parts = [page_start(title, subject, record["warnings"]),
             f"<p>{html.escape(record['side'].capitalize())} ear"
             + (f", {html.escape(array['manufacturer'])} {html.escape(array['name'])}" if array else "")
             + f". Every figure: mean &plusmn; standard deviation over {record['samples']} draws of the fit's "
             "posterior, with the central 95 % interval in brackets.</p>",
             f"<h2>Angular insertion depth (most apical contact): {interval(record['insertion_depth_deg'])} "
             "degrees</h2>"]
    parts += [f"<p>{html.escape(n)}</p>" for n in record["notes"]]
    head = ["contact (1 = apical)", "manufacturer's number"] if numbered else ["point"]
    head += ["angle (deg)", "distance to the scala tympani (mm)", "organ of Corti (% from the base)"]
    head += ["Greenwood (Hz)", "spiral ganglion (Hz)"] if numbered else []
    parts.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr></thead>")
    for c in record["contacts"]:
        cells = [c["contact"], "-" if c["manufacturer_number"] is None else c["manufacturer_number"]] \
            if numbered else [c["point"]]
        cells += ["outside the cochlea" if c["outside_cochlea"] else interval(c["angle_deg"]),
                  f"{c['distance_mm']:.2f}", interval(c["organ_of_corti_pct"])]
        cells += [interval(c["greenwood_hz"]), interval(c["spiral_ganglion_hz"])] if numbered else []
        parts.append("<tr>" + "".join(f"<td>{v}</td>" for v in cells) + "</tr>")
    parts.append("</table>" + sources(record["citations"]) + "<p><small>Made by CochleaAI. Angles: the polar "
                 "angle from the round window of each contact's nearest point on the fitted scala tympani "
                 "centreline.</small></p></body></html>")
    return "".join(parts)
