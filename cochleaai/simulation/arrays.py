"""The electrode-array catalogue: :class:`ElectrodeArray` geometries by key (:data:`ARRAYS`).

Plain numbers (no torch), so the Slicer panel lists the arrays before the optional packages
are installed; :mod:`.electrodes` inserts them along the scala tympani.

Geometry of the catalogue: rounded public figures from the manufacturers' brochures as
tabulated by Dhanasingh & Jolly, "An overview of cochlear implant electrode array
designs", Hearing Research 356 (2017) 93-103. They are approximate; check the current data
sheet of a device before relying on them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import numpy as np

from cochleaai.errors import CochleaAIError


@dataclass(frozen=True)
class ElectrodeArray:
    """Geometry of one electrode array (millimetres)."""

    key: str
    name: str
    n_contacts: int
    pitch_mm: float                 # centre-to-centre distance of neighbouring contacts
    contact_length_mm: float        # extent of a contact along the array
    tip_diameter_mm: float
    base_diameter_mm: float
    length_mm: float                # intracochlear part of the carrier (tip to insertion marker)
    tip_offset_mm: float            # tip to the centre of contact 1
    lead_radius_mm: float = 0.10    # the wire bundle, as one metal-equivalent cylinder
    lead_fill: float = 0.35         # metal share of the bundle's cross-section
    contact_fill: float = 0.25      # metal share of a contact's cylinder (a thin band, see below)
    metal: str = "platinum_iridium"
    depth_range_deg: tuple = (360.0, 600.0)   # typical insertion depths (random draws)
    source: str = "Dhanasingh & Jolly, Hear. Res. 356 (2017) 93-103; manufacturer brochure"

    @property
    def active_length_mm(self) -> float:
        return (self.n_contacts - 1) * self.pitch_mm

    def diameter_at(self, u_mm) -> np.ndarray:
        """Carrier (and contact) diameter at distance ``u_mm`` from the tip."""
        t = np.clip(np.asarray(u_mm, dtype=float) / self.length_mm, 0.0, 1.0)
        return self.tip_diameter_mm + t * (self.base_diameter_mm - self.tip_diameter_mm)


ARRAYS: Dict[str, ElectrodeArray] = {
    "flex28": ElectrodeArray(
        "flex28", "MED-EL FLEX28 (lateral wall, 12 contacts)", 12, 2.1, 0.4, 0.48, 0.8, 28.0, 0.7,
        depth_range_deg=(450.0, 650.0)),
    "slim22": ElectrodeArray(
        "slim22", "Cochlear Slim Straight CI522 (lateral wall, 22 contacts)", 22, 0.9, 0.3, 0.3, 0.6,
        20.0, 0.3, lead_radius_mm=0.08, depth_range_deg=(330.0, 480.0)),
    "hifocus16": ElectrodeArray(
        "hifocus16", "Advanced Bionics HiFocus 1J (lateral wall, 16 contacts)", 16, 1.1, 0.4, 0.4,
        0.8, 25.0, 0.5, depth_range_deg=(380.0, 560.0)),
}
DEFAULT_ARRAY = "flex28"


def get_array(name) -> ElectrodeArray:
    if isinstance(name, ElectrodeArray):
        return name
    key = str(name).strip().lower()
    if key not in ARRAYS:
        raise CochleaAIError(f"Unknown electrode array {name!r}; choose one of: {', '.join(ARRAYS)}.")
    return ARRAYS[key]
