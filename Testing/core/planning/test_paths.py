"""Where an array runs in a model cochlea: properties that must hold for any shape."""
from __future__ import annotations

import types

import numpy as np
import pytest

from cochleaai.planning import catalogue, literature, paths
from cochleaai.shape import CochleaModel, default_params
from cochleaai.shape.measures import clinical_measures
from cochleaai.shape.params import deformable_of

pytest.importorskip("torch")


def _array(position="lateral wall", insertion=24.0, n=12, pitch=1.9, tip=0.5):
    return types.SimpleNamespace(key="test", position=position, insertion_length_mm=insertion, n_contacts=n,
                                 pitch_mm=pitch, active_length_mm=pitch * (n - 1), tip_offset_mm=tip)


@pytest.fixture(scope="module")
def lengths():
    return paths.cumulative_lengths(deformable_of(default_params()))


def test_the_organ_of_corti_has_the_length_the_measures_give(lengths):
    measures = clinical_measures(default_params())
    assert lengths["organ of Corti"][-1] == pytest.approx(measures["cdl_organ_of_corti_mm"], rel=2e-3)
    # the outer path is the longer; precurved arrays run on the scala tympani's centroid
    assert lengths["lateral wall"][-1] > lengths["mid-scala"][-1]
    np.testing.assert_array_equal(lengths["perimodiolar"], lengths["mid-scala"])


def test_precurved_arrays_land_near_their_published_depths_in_the_mean_cochlea(lengths):
    # Contour Advance 381 and Slim Modiolar 395 degrees on average (literature.COHORT_AID_WITHOUT_RANGE);
    # a path against the modiolar wall put them at 759 and 645 degrees
    for key in ("contour_advance", "slim_modiolar"):
        got = paths.full_insertion(catalogue.ARRAYS[key], lengths)["apical_deg"]
        assert abs(got - literature.COHORT_AID_WITHOUT_RANGE[key]["mean_deg"]) < 40, key


def test_the_tip_sits_where_the_path_has_run_the_insertion_length(lengths):
    for position in paths.SECTION_OF_POSITION:
        got = paths.full_insertion(_array(position, insertion=17.0, n=8), lengths)
        assert paths.length_at_angle(lengths[position], got["tip_deg"]) == pytest.approx(17.0, abs=0.01)
        # contacts, apical first, at their pitch along the path
        s = paths.length_at_angle(lengths[position], got["contact_deg"])
        np.testing.assert_allclose(-np.diff(s), 1.9, atol=0.01)
        assert got["apical_deg"] == got["contact_deg"][0] < got["tip_deg"]
        assert not got["over_inserted"] and got["intracochlear"].all()


def test_deeper_insertion_covers_more_and_a_short_array_leaves_contacts_outside(lengths):
    shallow, deep = (paths.full_insertion(_array(insertion=L), lengths) for L in (16.0, 28.0))
    assert deep["apical_deg"] > shallow["apical_deg"] and deep["coverage_fraction"] > shallow["coverage_fraction"]
    assert 0.0 < shallow["coverage_fraction"] < deep["coverage_fraction"] < 1.0
    # 12 contacts 1.9 mm apart on 15 mm: the basal ones stay outside the round window
    short = paths.full_insertion(_array(insertion=15.0), lengths)
    assert short["intracochlear"][:7].all() and not short["intracochlear"][-1]
    assert np.isnan(short["contact_deg"][-1]) and np.isnan(short["contact_oc_fraction"][-1])


def test_an_array_longer_than_the_duct_is_flagged_and_stops_at_the_apex(lengths):
    got = paths.full_insertion(_array(insertion=60.0), lengths)
    assert got["over_inserted"] and got["tip_deg"] == pytest.approx(np.degrees(paths.angles_rad()[-1]))


def test_a_bigger_cochlea_puts_the_same_array_less_deep():
    small = default_params()
    large = small.copy()
    large[0] *= 1.15                     # a: the radial size of the spiral
    got = [paths.full_insertion(_array(insertion=24.0), paths.cumulative_lengths(deformable_of(t)))
           for t in (small, large)]
    assert got[1]["apical_deg"] < got[0]["apical_deg"]
    assert CochleaModel(large).duct_length() > CochleaModel(small).duct_length()
