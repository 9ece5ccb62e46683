"""The planning data: the electrode-array catalogue and the published maps and formulas."""
import math

import numpy as np
import pytest

from cochleaai import CochleaAIError
from cochleaai.planning import catalogue as C
from cochleaai.planning import literature as L


# ------------------------------------------------------------------------ catalogue
@pytest.mark.parametrize("key", sorted(C.ARRAYS))
def test_entry_is_consistent(key):
    a = C.ARRAYS[key]
    assert a.key == key == key.lower()
    assert a.manufacturer in C.MANUFACTURERS
    assert a.position in C.POSITIONS
    assert a.n_contacts >= 12
    assert a.insertion_length_mm > 0 and a.active_length_mm > 0
    assert a.active_length_mm < a.insertion_length_mm
    for optional in (a.pitch_mm, a.contact_length_mm, a.tip_diameter_mm, a.base_diameter_mm,
                     a.tip_offset_mm):
        assert optional is None or optional > 0
    if a.pitch_mm is not None:
        assert a.pitch_mm * (a.n_contacts - 1) == pytest.approx(a.active_length_mm, rel=0.10)
    if a.tip_offset_mm is not None:
        assert a.tip_offset_mm + a.active_length_mm <= a.insertion_length_mm
    if a.tip_diameter_mm is not None and a.base_diameter_mm is not None:
        assert a.tip_diameter_mm <= a.base_diameter_mm
    assert a.source.strip()
    assert a.to_dict()["key"] == key


def test_each_manufacturer_and_position_is_represented():
    arrays = list(C.ARRAYS.values())
    assert {a.manufacturer for a in arrays} >= {"MED-EL", "Cochlear", "Advanced Bionics"}
    assert {a.position for a in arrays} == set(C.POSITIONS)     # the mid-scala one included
    assert len(arrays) >= 10


def test_the_arrays_read_from_the_published_script_keep_its_geometry():
    # Geys et al.'s parameters.m: FLEX16 contacts at 4-16 mm, Mid-Scala at 3.375-18 mm, 0.975 mm apart
    flex16, midscala = C.ARRAYS["flex16"], C.ARRAYS["midscala"]
    assert (flex16.n_contacts, flex16.insertion_length_mm, flex16.active_length_mm) == (12, 16.0, 12.0)
    assert flex16.pitch_mm is None and flex16.position == "lateral wall"
    assert (midscala.n_contacts, midscala.insertion_length_mm, midscala.pitch_mm) == (16, 18.0, 0.975)
    assert midscala.active_length_mm == pytest.approx(18.0 - 3.375)
    assert midscala.position == "mid-scala" and midscala.manufacturer == "Advanced Bionics"
    assert "ZH-ECochG" in flex16.source and "ZH-ECochG" in midscala.source


@pytest.mark.parametrize("name,key", [
    ("flex28", "flex28"), ("FLEX28", "flex28"), ("FLEX SOFT", "flexsoft"), ("Flex 24", "flex24"),
    ("CI632", "slim_modiolar"), ("ci532", "slim_modiolar"), ("Slim Straight", "slim_straight"),
    ("slim straight (ci422/ci522/ci622)", "slim_straight"), ("contour-advance", "contour_advance"),
    ("HiFocus SlimJ", "slimj"), (" SLIMJ ", "slimj"), ("Mid-Scala", "midscala"),
    ("HiFocus Mid-Scala", "midscala"), ("hifocus ms", "midscala"), ("Flex 16", "flex16"), ("FLEX16", "flex16")])
def test_get_by_key_name_or_alias(name, key):
    assert C.get(name) is C.ARRAYS[key]


def test_get_passes_a_model_through():
    a = C.ARRAYS["flex20"]
    assert C.get(a) is a


def test_unknown_array_lists_the_known_ones():
    with pytest.raises(CochleaAIError) as err:
        C.get("FLEX99")
    message = str(err.value)
    assert "FLEX99" in message
    for a in C.ARRAYS.values():
        assert a.key in message and a.name in message


def test_manufacturer_numbering():
    assert set(C.CONTACTS_NUMBERED_FROM) == set(C.MANUFACTURERS)
    assert {v for v in C.CONTACTS_NUMBERED_FROM.values() if v is not None} <= {"apex", "base"}
    assert C.CATALOGUE_CONTACT_ONE == "apex"
    # Cochlear counts from the base: the most apical of 22 contacts is its electrode 22
    assert C.manufacturer_contact_number("slim_straight", 1) == 22
    assert C.manufacturer_contact_number("slim_straight", 22) == 1
    assert C.manufacturer_contact_number("slimj", 1) == 1
    with pytest.raises(CochleaAIError):
        C.manufacturer_contact_number("slimj", 17)


# ------------------------------------------------------------------------ Greenwood
def test_greenwood_anchors():
    # 165.4 (10^0 - 0.88) and 165.4 (10^2.1 - 0.88)
    assert L.greenwood_hz(0.0) == pytest.approx(165.4 * 0.12)
    assert L.greenwood_hz(0.0) == pytest.approx(19.85, abs=0.01)
    assert L.greenwood_hz(1.0) == pytest.approx(165.4 * (10 ** 2.1 - 0.88))
    assert L.greenwood_hz(1.0) == pytest.approx(20677, abs=1)
    assert isinstance(L.greenwood_hz(0.5), float)


def test_greenwood_is_monotonic_and_inverts():
    x = np.linspace(0.0, 1.0, 201)
    f = L.greenwood_hz(x)
    assert f.shape == x.shape and np.all(np.diff(f) > 0)
    assert np.allclose(L.greenwood_fraction_from_apex(f), x)


# ------------------------------------------------------------------------ spiral ganglion
def test_spiral_ganglion_angle_map():
    assert L.spiral_ganglion_hz(0.0) == pytest.approx(17225.0)
    assert L.spiral_ganglion_hz(360.0) == pytest.approx(785.0)
    assert L.spiral_ganglion_hz(720.0) == pytest.approx(58.0)
    angles = np.linspace(0.0, 720.0, 145)
    f = L.spiral_ganglion_hz(angles)
    assert np.all(np.diff(f) < 0)
    # between two tabulated angles: the geometric mean halfway
    assert L.spiral_ganglion_hz(45.0) == pytest.approx(math.sqrt(17225.0 * 6193.0))
    # outside the table: its end values
    assert L.spiral_ganglion_hz(-10.0) == pytest.approx(17225.0)
    assert L.spiral_ganglion_hz(800.0) == pytest.approx(58.0)


def test_spiral_ganglion_cubic():
    # the published cubic maps 0 % to 0 % and 100 % to 100 %, rising in between
    assert L.spiral_ganglion_percent(0.0) == pytest.approx(0.0)
    assert L.spiral_ganglion_percent(100.0) == pytest.approx(100.0)
    assert L.spiral_ganglion_percent(50.0) == pytest.approx(1.43 * 50 + 0.0014 * 2500 - 5.7e-5 * 125000)
    x = np.linspace(0.0, 99.0, 100)
    assert np.all(np.diff(L.spiral_ganglion_percent(x)) > 0)
    y = np.array([5.0, 30.0, 60.0, 90.0])
    assert np.allclose(L.spiral_ganglion_percent(L.organ_of_corti_percent(y)), y, atol=1e-3)
    # the ends of the ganglion carry Greenwood's end frequencies
    assert L.spiral_ganglion_hz_at_fraction(0.0) == pytest.approx(L.greenwood_hz(1.0))
    assert L.spiral_ganglion_hz_at_fraction(1.0) == pytest.approx(L.greenwood_hz(0.0), rel=1e-3)


# ------------------------------------------------------------------------ duct length from A
def test_a_value_formulas_for_a_typical_cochlea():
    a = 9.0
    assert L.alexiades_cdl_organ_of_corti_mm(a) == pytest.approx(4.16 * 9 - 4)       # 33.44
    assert L.alexiades_cdl_lateral_wall_mm(a) == pytest.approx(4.16 * 9 - 2.7)       # 34.74
    assert L.alexiades_two_turn_organ_of_corti_mm(a) == pytest.approx(3.65 * 8)       # 29.2
    assert L.alexiades_two_turn_lateral_wall_mm(a) == pytest.approx(3.65 * 8.3)      # 30.295
    assert L.koch_organ_of_corti_mm(a) == pytest.approx(4.16 * 9 - 5.05)             # 32.39
    assert L.escude_lateral_wall_mm(a, 720.0) == pytest.approx(2.62 * 9 * math.log(1 + 720 / 235))
    assert L.escude_lateral_wall_mm(a, 720.0) == pytest.approx(33.06, abs=0.01)
    assert L.escude_lateral_wall_mm(a, 0.0) == 0.0
    # the lateral wall is longer than the organ of Corti, the whole duct longer than two turns
    assert L.alexiades_cdl_lateral_wall_mm(a) > L.alexiades_cdl_organ_of_corti_mm(a)
    assert L.alexiades_cdl_organ_of_corti_mm(a) > L.alexiades_two_turn_organ_of_corti_mm(a)
    assert L.alexiades_two_turn_lateral_wall_mm(a) > L.alexiades_two_turn_organ_of_corti_mm(a)
    grid = np.array([8.0, 9.0, 10.0])
    assert np.all(np.diff(L.alexiades_cdl_organ_of_corti_mm(grid)) > 0)
    assert np.all(np.diff(L.escude_lateral_wall_mm(9.0, np.array([90.0, 360.0, 900.0]))) > 0)


# ------------------------------------------------------------------------ cohorts
@pytest.mark.parametrize("key", sorted(L.COHORT_AID))
def test_cohort_entry(key):
    c = L.COHORT_AID[key]
    assert key in C.ARRAYS
    assert c["min_deg"] <= c["mean_deg"] <= c["max_deg"]
    assert c["statistic"] in ("mean", "median")
    assert c["spread"] in ("range", "interquartile range", "2.5-97.5 percentiles")
    assert c["sd_deg"] is None or c["sd_deg"] > 0
    assert c["n"] is None or c["n"] > 0
    assert c["citation"].strip()


@pytest.mark.parametrize("key", sorted(L.COHORT_AID_WITHOUT_RANGE))
def test_cohort_without_range(key):
    c = L.COHORT_AID_WITHOUT_RANGE[key]
    assert key in C.ARRAYS and key not in L.COHORT_AID
    assert 0 < c["mean_deg"] < 1080 and c["citation"].strip()


def test_citations_are_named():
    assert L.CITATIONS and all(isinstance(v, str) and v.strip() for v in L.CITATIONS.values())
    # every published depth a plan shows is among the page's sources
    cohorts = list(L.COHORT_AID.values()) + list(L.COHORT_AID_WITHOUT_RANGE.values())
    assert all(any(c["citation"].startswith(v) or v in c["citation"] for v in L.CITATIONS.values()) for c in cohorts)


def test_every_precurved_array_has_a_published_depth():
    # Contour Advance: 381 degrees on average (Landsberger et al. 2015), Slim Modiolar 395
    precurved = [k for k, a in C.ARRAYS.items() if a.position == "perimodiolar"]
    assert precurved and all(k in L.COHORT_AID_WITHOUT_RANGE for k in precurved)
    assert L.COHORT_AID_WITHOUT_RANGE["contour_advance"]["mean_deg"] == 381.0
    assert "Landsberger" in L.CITATIONS["cohort_contour_advance"]
