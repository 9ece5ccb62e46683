"""Standard terminology of the cochlea segments (Slicer's ``TerminologyEntry`` segment tag).

The codes are those of ``Resources/Terminology/SegmentationCategoryTypeModifier-CochleaAI.term.json``,
which the modules load into Slicer's Terminologies module so that the segments show their
standard names there: SNOMED CT "Cochlear structure" (with the side as modifier) for the
whole cochlea and for the fitted shape, "Scala vestibuli structure" for the upper duct.
The scala tympani has no SNOMED CT code in that file: it is coded in a "CochleaAI" scheme
until one is checked against a SNOMED CT release.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Tuple

TERMINOLOGY_FILE = (Path(__file__).resolve().parents[1] / "Resources" / "Terminology" /
                    "SegmentationCategoryTypeModifier-CochleaAI.term.json")
CONTEXT = "Segmentation category and type - CochleaAI"
ANATOMY_CONTEXT = "Anatomic codes - DICOM master list"

Code = Tuple[str, str, str]          # (coding scheme, code value, code meaning)
ANATOMICAL_STRUCTURE: Code = ("SCT", "123037004", "Anatomical Structure")
COCHLEA: Code = ("SCT", "80169004", "Cochlear structure")
SCALA_VESTIBULI: Code = ("SCT", "4394008", "Scala vestibuli structure")
SCALA_TYMPANI: Code = ("CochleaAI", "scala-tympani", "Scala tympani")
SIDES: Dict[str, Code] = {"right": ("SCT", "24028007", "Right"), "left": ("SCT", "7771000", "Left")}

#: Segment name -> its type code (segments of other names get no terminology).
SEGMENT_TYPES: Dict[str, Code] = {
    "Cochlea": COCHLEA,
    "Cochlea shape model": COCHLEA,
    "Scala vestibuli": SCALA_VESTIBULI,
    "Scala tympani": SCALA_TYMPANI,
}


def _triplet(code: Optional[Code]) -> str:
    return "^".join(code) if code else "^^"


def terminology_entry(segment_name: str, side: Optional[str] = None) -> Optional[str]:
    """The ``TerminologyEntry`` tag value for a segment of this name, or None when it has none.

    Seven parts separated by "~": context, category, type, type modifier (the side, for the
    cochlea), anatomic context, region and region modifier (empty here).
    """
    code = SEGMENT_TYPES.get(segment_name)
    if code is None:
        return None
    modifier = SIDES.get(side) if code == COCHLEA and side else None
    return "~".join([CONTEXT, _triplet(ANATOMICAL_STRUCTURE), _triplet(code), _triplet(modifier),
                     ANATOMY_CONTEXT, _triplet(None), _triplet(None)])
