"""Real temporal-bone CT with expert labels: reading the data set layout and scoring.

The layout is that of the human bony labyrinth data set of Wimmer et al. (2019,
"Human bony labyrinth dataset: Co-registered CT and micro-CT images, surface models and
anatomical landmarks", Data in Brief 27, 104782, doi:10.1016/j.dib.2019.104782): one
folder per specimen ``<id>/`` with ``<id>_CT_RAW.nii.gz`` (HU), ``<id>_CT_LABELS.nii.gz``
(1 = the whole bony labyrinth) and ``<id>_DESC.json`` (side, five landmarks and the
cochlear frame, all in RAS millimetres).

The label has no separate cochlea, so a cochlea segmentation is scored against the
*cochlear part*: label voxels within ``RADIUS_MM`` of the modiolar axis and higher than
``-BASE_MM`` along it (from the frame origin), the connected component nearest the apex.
The segmentation is cut to the same cylinder, so the cut at the base (part of the basal
turn and the round-window niche) costs neither side. (The data README words the lower
bound as "0.5 mm above the origin"; its table of cochlear-part volumes is reproduced to
0.1 mm3 by the bound 0.5 mm *below* it, which is used here, for both sides alike.) Everything here is in LPS millimetres, as in the rest of the library.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np
from scipy import ndimage

from cochleaai.errors import CochleaAIError
from cochleaai.io import read_volume
from cochleaai.markups import Markups
from cochleaai.metrics import dice, hausdorff95
from cochleaai.volume import Volume, ras_to_lps

#: Radius (mm) of the scoring cylinder around the modiolar axis.
RADIUS_MM = 5.5
#: The cochlear part and the scored segmentation both start this far (mm) below the frame
#: origin along the modiolar axis.
BASE_MM = 0.5
#: Landmark keys of the data set and the roles they play in this library.
LANDMARK_ROLES = {"C": "center", "A": "apex", "RW": "round window", "OW": "oval window", "V": "vestibule"}
#: The five landmarks as point labels (the data set's keys C, A, RW, OW, V, in that order).
LANDMARK_KEYS = ("C", "A", "RW", "OW", "V")
LANDMARK_LABELS = tuple(LANDMARK_ROLES[k].replace(" ", "_") for k in LANDMARK_KEYS)
#: The data set's licence (open access), recorded with models and figures made from it.
LICENCE = ("open-access data set whose licence allows redistribution and derived works with its "
           "citation (Data in Brief 27 (2019) 104782)")
CITATION = ("W. Wimmer, L. Anschuetz, S. Weder, F. Wagner, H. Delingette, M. Caversaccio, "
            "Human bony labyrinth dataset: Co-registered CT and micro-CT images, surface models and "
            "anatomical landmarks, Data in Brief 27 (2019) 104782, doi:10.1016/j.dib.2019.104782")


@dataclass
class Specimen:
    """One specimen: CT, labyrinth label, side, landmarks and cochlear frame (LPS)."""

    id: str
    folder: Path
    side: str                        # "left" or "right"
    landmarks: Dict[str, np.ndarray]  # by role: center, apex, round window, oval window, vestibule
    origin: np.ndarray               # cochlear frame origin
    axes: np.ndarray                 # (3, 3): rows X (towards the round window), Y, Z (modiolus, to the apex)

    @property
    def ct_path(self) -> Path:
        return self.folder / f"{self.id}_CT_RAW.nii.gz"

    @property
    def label_path(self) -> Path:
        return self.folder / f"{self.id}_CT_LABELS.nii.gz"

    def ct(self) -> Volume:
        return read_volume(self.ct_path)

    def labels(self) -> Volume:
        return read_volume(self.label_path)

    def points(self, roles=("center", "apex", "round window")) -> Dict[str, np.ndarray]:
        return {r: self.landmarks[r].copy() for r in roles}

    def landmark_array(self) -> np.ndarray:
        """The five landmarks (LPS), in the order of :data:`LANDMARK_LABELS`."""
        return np.array([self.landmarks[LANDMARK_ROLES[k]] for k in LANDMARK_KEYS])

    def markups(self):
        """The five landmarks as a point list labelled :data:`LANDMARK_LABELS`."""
        return Markups(self.landmark_array(), list(LANDMARK_LABELS), name=f"{self.id} landmarks")

    def structure_mask(self, structure: str = "labyrinth", ct: Volume = None) -> np.ndarray:
        """The expert label as a bool mask on the CT's grid: the whole bony labyrinth, or
        (``"cochlea"``) its cochlear part."""
        labels = self.labels()
        mask = cochlear_part(labels, self) if structure == "cochlea" else labels.array > 0
        ct = self.ct() if ct is None else ct
        if not labels.same_geometry(ct):
            mask = labels.copy(mask.astype(np.uint8)).resample_like(ct, "nearest").array > 0
        return mask


def _vector(values, what: str) -> np.ndarray:
    v = np.asarray(values, float).reshape(-1)
    if v.size != 3 or not np.all(np.isfinite(v)):
        raise CochleaAIError(f"{what} must be three numbers.")
    return v


def read_specimen(folder) -> Specimen:
    """Read one specimen folder (``<id>_DESC.json`` names the id)."""
    folder = Path(folder)
    descs = sorted(folder.glob("*_DESC.json"))
    if not descs:
        raise CochleaAIError(f"{folder} holds no <id>_DESC.json; is it a specimen folder of the data set?")
    try:
        desc = json.loads(descs[0].read_text())
        sid, side = str(desc["ID"]), str(desc["SIDE"]).lower()
        marks = {LANDMARK_ROLES[k]: ras_to_lps(_vector(v, f"Landmark {k}"))
                 for k, v in desc["LANDMARKS"].items() if k in LANDMARK_ROLES}
        frame = desc["COORD"]
        origin = ras_to_lps(_vector(frame["ORIGIN"], "COORD.ORIGIN"))
        axes = np.stack([ras_to_lps(_vector(frame[k], f"COORD.{k}")) for k in ("XAXIS", "YAXIS", "ZAXIS")])
    except (KeyError, ValueError, TypeError) as exc:
        raise CochleaAIError(f"{descs[0]} is not a readable specimen description ({exc}).") from exc
    if side not in ("left", "right"):
        raise CochleaAIError(f"{descs[0]}: SIDE must be LEFT or RIGHT, got {desc['SIDE']!r}.")
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    return Specimen(sid, folder, side, marks, origin, axes)


def find_specimens(data_dir) -> List[Specimen]:
    """Every specimen folder at or below ``data_dir``, sorted by id."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise CochleaAIError(f"{data_dir} is not a folder.")
    found = [read_specimen(d.parent) for d in sorted(data_dir.rglob("*_DESC.json"))]
    if not found:
        raise CochleaAIError(f"No specimen (<id>/<id>_DESC.json) found under {data_dir}.")
    return sorted(found, key=lambda s: s.id)


def _axial_coordinates(grid: Volume, specimen: Specimen):
    """Height along the modiolar axis and distance from it, per voxel of ``grid``."""
    rel = grid.physical_grid() - specimen.origin
    height = rel @ specimen.axes[2]
    radial = np.linalg.norm(rel - height[..., None] * specimen.axes[2], axis=-1)
    return height, radial


def scoring_cylinder(grid: Volume, specimen: Specimen) -> np.ndarray:
    """Voxels of ``grid`` where a segmentation is scored (bool, array order)."""
    height, radial = _axial_coordinates(grid, specimen)
    return (radial <= RADIUS_MM) & (height > -BASE_MM)


def cochlear_part(labels: Volume, specimen: Specimen) -> np.ndarray:
    """The cochlear part of the labyrinth label (bool, on the label grid)."""
    height, radial = _axial_coordinates(labels, specimen)
    part = (labels.array > 0) & (radial <= RADIUS_MM) & (height > -BASE_MM)
    comp, n = ndimage.label(part)
    if n == 0:
        raise CochleaAIError(f"Specimen {specimen.id}: the label has no voxel in the cochlear region.")
    idx = np.argwhere(comp > 0)
    apex = labels.physical_to_index(specimen.landmarks["apex"][None])[0][::-1]     # (z, y, x)
    nearest = idx[np.argmin(np.linalg.norm((idx - apex) * labels.spacing[::-1], axis=1))]
    return comp == comp[tuple(nearest)]


def mask_on_label_grid(segmentation: Volume, labels: Volume) -> np.ndarray:
    """A binary segmentation (any grid) on the label grid, uncut (bool)."""
    # linear resampling of the mask, cut at one half: the boundary moves by less than nearest
    # neighbour's half voxel when the grids differ
    seg = segmentation.copy((segmentation.array > 0).astype(np.float32)).resample_like(labels, "linear")
    return seg.array >= 0.5


def score_mask(mask: np.ndarray, labels: Volume, specimen: Specimen, reference: np.ndarray = None,
               cylinder: np.ndarray = None) -> dict:
    """Dice, volumes, volume ratio and HD95 of ``mask`` (bool, on the label grid, uncut) against
    the cochlear part, both within the scoring cylinder; and what that score cannot see: the
    mask's volume (mm^3) beyond the cylinder and outside the expert's whole labyrinth label.
    ``reference`` (the cochlear part) and ``cylinder`` are computed when not given."""
    reference = cochlear_part(labels, specimen) if reference is None else reference
    cylinder = scoring_cylinder(labels, specimen) if cylinder is None else cylinder
    ours = mask & cylinder
    voxel_mm3 = float(np.prod(labels.spacing))
    ref_mm3, ours_mm3 = float(reference.sum() * voxel_mm3), float(ours.sum() * voxel_mm3)
    out = {"dice": float(dice(ours, reference)), "volume_mm3": ours_mm3, "reference_mm3": ref_mm3,
           "volume_ratio": ours_mm3 / ref_mm3 if ref_mm3 else float("nan"),
           "outside_cylinder_mm3": float((mask & ~cylinder).sum() * voxel_mm3),
           "outside_labyrinth_mm3": float((mask & ~(labels.array > 0)).sum() * voxel_mm3)}
    out["hd95_mm"] = float(hausdorff95(ours, reference, spacing=labels.spacing)) if ours.any() else float("inf")
    return out


def score_segmentation(segmentation: Volume, labels: Volume, specimen: Specimen,
                       reference: np.ndarray = None, cylinder: np.ndarray = None) -> dict:
    """:func:`score_mask` of a binary segmentation on any grid."""
    return score_mask(mask_on_label_grid(segmentation, labels), labels, specimen, reference, cylinder)
