"""Label values, names and colours shared by phantoms, files and MRML segmentations."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple


@dataclass(frozen=True)
class Segment:
    """One label of a labelmap: its voxel value, display name and RGB colour in [0, 1]."""

    value: int
    name: str
    color: Tuple[float, float, float]


# The phantom's label table. Values are stable: files and models rely on them.
COCHLEA = Segment(1, "Cochlea", (0.89, 0.35, 0.30))
SCALA_TYMPANI = Segment(2, "Scala tympani", (0.95, 0.80, 0.25))
SCALA_VESTIBULI = Segment(3, "Scala vestibuli", (0.35, 0.70, 0.90))
VESTIBULE_CANALS = Segment(4, "Vestibule and semicircular canals", (0.55, 0.80, 0.45))
OTIC_CAPSULE = Segment(5, "Otic capsule", (0.95, 0.60, 0.20))
INTERNAL_AUDITORY_CANAL = Segment(6, "Internal auditory canal", (0.70, 0.55, 0.85))

PHANTOM_SEGMENTS: Tuple[Segment, ...] = (COCHLEA, SCALA_TYMPANI, SCALA_VESTIBULI,
                                         VESTIBULE_CANALS, OTIC_CAPSULE,
                                         INTERNAL_AUDITORY_CANAL)


def by_name(segments: Sequence[Segment], name: str) -> Segment:
    for s in segments:
        if s.name == name:
            return s
    raise KeyError(name)
