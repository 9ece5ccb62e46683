"""The electrode arrays a plan can choose from, each figure with where it was read.

Plain Python (no torch), so a user interface can list the arrays before the optional
packages are installed. Every number below was read in the source named in the entry's
``source``; a field that no source read for this catalogue gives is ``None`` (and the
comment says so): nothing here is estimated or remembered. Check the manufacturer's current
data sheet before relying on a figure for a patient.

Lengths are millimetres along the carrier:

* ``insertion_length_mm``: from the tip to the insertion marker (the intracochlear part at
  full insertion), or the insertion depth the manufacturer states the array is meant for;
* ``active_length_mm``: from the centre of the most apical contact to the centre of the most
  basal one; where a source gives only the pitch, it is ``pitch * (n_contacts - 1)``;
* ``pitch_mm``: centre-to-centre distance of neighbouring contacts, ``None`` when no source
  read here says the contacts are evenly spaced;
* ``tip_offset_mm``: from the tip to the centre of the most apical contact.

Contact numbering in this package (the plan, :mod:`.paths`): contact 1 is the most apical,
whatever the manufacturer's own numbering, which differs between manufacturers; see
:data:`CONTACTS_NUMBERED_FROM` and :func:`manufacturer_contact_number`.

Arrays left out, because no source read here gave their lengths: MED-EL FLEX26 (only its
intended insertion depth, about 26 mm, was found) and STANDARD/FORM24, Cochlear Slim 20 (CI624),
Advanced Bionics HiFocus 1J, Oticon Medical EVO (only its 20 contacts were found).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, Optional, Union

from cochleaai.errors import CochleaAIError

MANUFACTURERS = ("MED-EL", "Cochlear", "Advanced Bionics", "Oticon Medical")
POSITIONS = ("lateral wall", "mid-scala", "perimodiolar")

# --- the sources (citations in the project's words) -------------------------------------

#: Array table of the MATLAB script published with Geys et al. (ZH-ECochG Bode plot):
#: active lengths, contact spacings, tip-to-first-contact distances and tip-to-marker
#: distances, in its comments and contact-depth vectors.
GEYS_2024 = ("Geys M, Sijgers L, Dobrev I, Dalbert A, Roosli C, Pfiffner F, Huber A. ZH-ECochG "
             "Bode Plot: A Novel Approach to Visualize Electrocochleographic Data in Cochlear "
             "Implant Users. J Clin Med 2024;13(12):3470, doi:10.3390/jcm13123470; figures from "
             "the array definitions of its published script (github.com/OtoBM/ZH-ECochG-Bode-Plot, "
             "Matlab_script/parameters.m)")
#: MED-EL's instructions for use: the insertion depth each FLEX variant is intended for.
MEDEL_IFU = ("MED-EL, Mi1250 SYNCHRONY 2 cochlear implant, Instructions for Use (English), "
             "indications: intended electrode insertion depths of about 31 mm (FLEX SOFT), 28 mm "
             "(FLEX28), 26 mm (FLEX26), 24 mm (FLEX24) and 20 mm (FLEX20); read as reproduced on "
             "manualshive.com (manual 1759242, page 11); edition year not shown there")
#: Lateral-wall designs (position of the MED-EL FLEX arrays).
TIMM_2018 = ("Timm ME, Majdani O, Weller T, Windeler M, Lenarz T, Buchner A, Salcher RB. Patient "
             "specific selection of lateral wall cochlear implant electrodes based on anatomical "
             "indication ranges. PLoS One 2018;13(10):e0206435, doi:10.1371/journal.pone.0206435 "
             "(FLEX20, FLEX24, FLEX28 studied as lateral wall electrodes)")
CANFAROTTA_2021 = ("Canfarotta MW, Dillon MT, Brown KD, Pillsbury HC, Dedmon MM, O'Connell BP. "
                   "Incidence of Complete Insertion in Cochlear Implant Recipients of Long Lateral "
                   "Wall Arrays. Otolaryngol Head Neck Surg 2021;165(4):571-577, "
                   "doi:10.1177/0194599820987456 (31.5 mm flexible lateral wall arrays)")
#: Straight and precurved Cochlear and Advanced Bionics arrays, and their model series.
PECAP_ARRAY_TYPES = ("PMC7617747 (panoramic ECAP study by array type): Slim Straight = CI-22 series "
                     "and straight; Contour Advance = CI-12 series and Slim Modiolar = CI-32 series, "
                     "both precurved; AB 1J and SlimJ straight, Helix and Mid-Scala precurved")
KUOPIO_SLIMJ_2024 = ("Insertion Results and Hearing Outcomes of a Slim Lateral Wall Electrode. "
                     "J Int Adv Otol 2024;20:1-7, doi:10.5152/iao.2024.22962 (SlimJ described as a "
                     "slim lateral wall electrode)")


@dataclass(frozen=True)
class ArrayModel:
    """One electrode array (millimetres); see the module docstring for the definitions."""

    key: str                                  # lowercase id, e.g. "flex28"
    manufacturer: str                         # one of MANUFACTURERS
    name: str                                 # commercial name
    position: str                             # one of POSITIONS
    n_contacts: int
    insertion_length_mm: float
    active_length_mm: float
    pitch_mm: Optional[float]
    contact_length_mm: Optional[float]
    tip_diameter_mm: Optional[float]
    base_diameter_mm: Optional[float]
    tip_offset_mm: Optional[float]
    source: str

    def to_dict(self) -> dict:
        return asdict(self)


# None of the sources read for this catalogue gives contact lengths or carrier diameters:
# contact_length_mm, tip_diameter_mm and base_diameter_mm are None throughout.
_ARRAY_LIST = (
    # MED-EL: 12 contacts (the script's nrEL = 12). Active length and spacing: script
    # comments ("active length = 26.4 mm --> contact spacing = 2.4 mm" and so on). Insertion
    # length: the length the script inserts to (31.5, 28, 24, 20 mm), which matches the
    # intended insertion depths of the IFU. Tip offsets are not given (None).
    ArrayModel("flexsoft", "MED-EL", "FLEX SOFT", "lateral wall", 12, 31.5, 26.4, 2.4,
               None, None, None, None,
               f"{GEYS_2024}; {MEDEL_IFU}; position: {CANFAROTTA_2021}"),
    ArrayModel("flex28", "MED-EL", "FLEX28", "lateral wall", 12, 28.0, 23.1, 2.1,
               None, None, None, None,
               f"{GEYS_2024}; {MEDEL_IFU}; position: {TIMM_2018}"),
    ArrayModel("flex24", "MED-EL", "FLEX24", "lateral wall", 12, 24.0, 20.9, 1.9,
               None, None, None, None,
               f"{GEYS_2024}; {MEDEL_IFU}; position: {TIMM_2018}"),
    ArrayModel("flex20", "MED-EL", "FLEX20", "lateral wall", 12, 20.0, 15.4, 1.4,
               None, None, None, None,
               f"{GEYS_2024}; {MEDEL_IFU}; position: {TIMM_2018}"),
    # The script gives FLEX16 only its contact depths, 4 to 16 mm (its spacing comment is
    # blank): insertion length 16 mm (its deepest depth, as for the other FLEX arrays there),
    # active length 12 mm, spacing not stated. Its position is the FLEX family's.
    ArrayModel("flex16", "MED-EL", "FLEX16", "lateral wall", 12, 16.0, 12.0, None,
               None, None, None, None,
               f"{GEYS_2024}; position: that of the FLEX family ({TIMM_2018})"),
    # Cochlear: 22 contacts. Script comments: active length, "tip" (tip to the first contact:
    # the contact depths end that far short of the tip-to-marker distance) and "distance from
    # electrode tip to proximal white marker" (the insertion length). The spacing is not
    # stated, so pitch is None (the script spreads the contacts evenly over the active length).
    ArrayModel("contour_advance", "Cochlear", "Contour Advance (CI512/CI612)", "perimodiolar", 22,
               19.2, 14.25, None, None, None, None, 0.3,
               f"{GEYS_2024} (listed as CI612); series and shape: {PECAP_ARRAY_TYPES}"),
    ArrayModel("slim_straight", "Cochlear", "Slim Straight (CI422/CI522/CI622)", "lateral wall", 22,
               25.0, 19.1, None, None, None, None, 0.3,
               f"{GEYS_2024} (listed as CI622); series and shape: {PECAP_ARRAY_TYPES}"),
    ArrayModel("slim_modiolar", "Cochlear", "Slim Modiolar (CI532/CI632)", "perimodiolar", 22,
               18.4, 14.0, None, None, None, None, 0.4,
               f"{GEYS_2024} (listed as CI632); series and shape: {PECAP_ARRAY_TYPES}"),
    # Advanced Bionics: 16 contacts; "distance from electrode tip to blue marker = 23 mm,
    # contact spacing = 1.3 mm"; active length 15 * 1.3 mm. The tip offset is not stated.
    ArrayModel("slimj", "Advanced Bionics", "HiFocus SlimJ", "lateral wall", 16, 23.0, 19.5, 1.3,
               None, None, None, None,
               f"{GEYS_2024}; position: {KUOPIO_SLIMJ_2024}"),
    # "contact spacing = 0.975 mm" and contact depths 3.375 to 18 mm: active length 15 * 0.975
    # mm. The tip-to-marker distance is not stated; the insertion length here is the depth of
    # the deepest contact in the script (18 mm), so the plan, which puts the apical contact
    # half a pitch short of the tip when the tip offset is unpublished, places it 0.5 mm
    # shallower than the script does.
    ArrayModel("midscala", "Advanced Bionics", "HiFocus Mid-Scala", "mid-scala", 16, 18.0, 14.625,
               0.975, None, None, None, None,
               f"{GEYS_2024}; precurved: {PECAP_ARRAY_TYPES}"),
)

ARRAYS: Dict[str, ArrayModel] = {a.key: a for a in _ARRAY_LIST}

#: Other names a user may type for an array (model numbers of the implants that carry it;
#: series as given in PMC7617747: CI-12 Contour Advance, CI-22 Slim Straight, CI-32 Slim Modiolar).
ALIASES: Dict[str, str] = {
    "flex soft": "flexsoft", "flex31": "flexsoft", "flex 28": "flex28", "flex 24": "flex24",
    "flex 20": "flex20", "ci512": "contour_advance", "ci612": "contour_advance",
    "contour advance": "contour_advance", "ci422": "slim_straight", "ci522": "slim_straight",
    "ci622": "slim_straight", "slim straight": "slim_straight", "ci532": "slim_modiolar",
    "ci632": "slim_modiolar", "slim modiolar": "slim_modiolar", "slim j": "slimj",
    "flex 16": "flex16", "mid scala": "midscala", "hifocus ms": "midscala",
}

#: How each manufacturer numbers its contacts: where its contact 1 sits ("apex" or "base"),
#: or None where no source read here settles it.
CONTACTS_NUMBERED_FROM: Dict[str, Optional[str]] = {
    # Nucleus MATLAB Toolbox (Cochlear Ltd, B. Swanson; Ensure_electrodes.m): channels are
    # ordered in increasing frequency, so the electrode numbers decrease (default 22:-1:1):
    # electrode 22 carries the lowest frequencies (apex), electrode 1 the highest (base).
    "Cochlear": "base",
    # AJNR Am J Neuroradiol 26(2):424, figure 1 (ajnr.org; a HiFocus I array): its 16
    # contacts are numbered from the tip of the array to its basal end.
    "Advanced Bionics": "apex",
    # Contact 1 at the tip is the usual description of MED-EL arrays, but no source read for
    # this catalogue states it: not confirmed.
    "MED-EL": None,
    # Not found.
    "Oticon Medical": None,
}
#: This package's own numbering (the plan, the contact tables): contact 1 is the most apical.
CATALOGUE_CONTACT_ONE = "apex"


def _normal(text: str) -> str:
    return " ".join(str(text).strip().lower().replace("_", " ").replace("-", " ").split())


def known() -> str:
    """The keys and names of the catalogue, for messages."""
    return "; ".join(f"{a.key} ({a.manufacturer} {a.name})" for a in ARRAYS.values())


def get(name: Union[str, ArrayModel]) -> ArrayModel:
    """The array called ``name``: its key, its commercial name or an alias (any case)."""
    if isinstance(name, ArrayModel):
        return name
    wanted = _normal(name)
    for a in ARRAYS.values():
        if wanted in (_normal(a.key), _normal(a.name)):
            return a
    alias = {_normal(k): v for k, v in ALIASES.items()}.get(wanted)
    if alias is not None:
        return ARRAYS[alias]
    raise CochleaAIError(f"Unknown electrode array {name!r}; known arrays: {known()}.")


def manufacturer_contact_number(array: Union[str, ArrayModel], contact_from_apex: int) -> Optional[int]:
    """The manufacturer's number of this package's contact ``contact_from_apex`` (1 = most
    apical), or None where the manufacturer's numbering is not known (see
    :data:`CONTACTS_NUMBERED_FROM`)."""
    a = get(array)
    k = int(contact_from_apex)
    if not 1 <= k <= a.n_contacts:
        raise CochleaAIError(f"{a.name} has contacts 1 to {a.n_contacts}, not {k}.")
    order = CONTACTS_NUMBERED_FROM.get(a.manufacturer)
    if order is None:
        return None
    return k if order == "apex" else a.n_contacts + 1 - k
