"""cochleaai.phantom: the synthetic temporal-bone CT and its ground truth."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from scipy import ndimage

from cochleaai import Cancelled, CochleaAIError, Progress
from cochleaai.io import read_markups, read_seg_nrrd, read_volume
from cochleaai.phantom.core import INTENSITIES, make_phantom
from cochleaai.phantom.prior import PROFILE_CLASSES, sample_shape
from cochleaai.phantom.anatomy import R_REF
from cochleaai.phantom.anatomy import cochlea_outline
from cochleaai.segments import PHANTOM_SEGMENTS
from cochleaai.shape import CochleaModel
from cochleaai.shape.params import DEFORMABLE_LOWER, DEFORMABLE_UPPER, PARAM_NAMES


def _timed(seed, fov, **kw):
    start = time.perf_counter()
    ph = make_phantom(seed, fov, **kw)
    print(f"\nmake_phantom(seed={seed}, fov={fov!r}): {time.perf_counter() - start:.2f} s")
    return ph


@pytest.fixture(scope="module")
def roi():
    make_phantom(0, "roi")                     # warm-up: JIT caches and the shape table
    return _timed(0, "roi")


@pytest.fixture(scope="module")
def temporal():
    return _timed(0, "temporal")


# --------------------------------------------------------------------------- reproducibility

def test_same_seed_same_phantom_and_different_seeds_differ(roi):
    again = make_phantom(0, "roi")
    assert np.array_equal(again.ct.array, roi.ct.array)
    assert json.dumps(again.truth, sort_keys=True) == json.dumps(roi.truth, sort_keys=True)
    for (s1, m1), (s2, m2) in zip(again.segments, roi.segments):
        assert s1 == s2 and np.array_equal(m1, m2)
    other = make_phantom(1, "roi")
    assert not np.array_equal(other.ct.array, roi.ct.array)
    assert other.truth["theta"] != roi.truth["theta"]
    assert other.truth["seed"] == 1


# --------------------------------------------------------------------------- geometry and truth

def test_roi_geometry_and_truth(roi):
    ct = roi.ct
    assert ct.array.dtype == np.int16
    assert ct.size == (60, 50, 50) and ct.shape == (50, 50, 60)
    assert np.allclose(ct.spacing, 0.2) and np.allclose(ct.direction, np.eye(3))
    t = roi.truth
    json.dumps(t)                                             # serialisable
    for key in ("seed", "fov", "shape", "theta", "pose", "spacing", "size", "noise_hu", "psf_fwhm_mm",
                "intensities", "landmarks", "version"):
        assert key in t, key
    assert t["seed"] == 0 and t["fov"] == "roi" and t["size"] == [60, 50, 50]
    assert list(t["shape"]) == list(PARAM_NAMES)
    assert np.allclose(t["theta"], roi.model.theta)
    assert 0.4 <= t["psf_fwhm_mm"] <= 0.7 and 10.0 <= t["noise_hu"] <= 40.0
    # template pose: small rotation, cochlea bounding box centred in the ROI
    assert t["pose"]["rotation_angle_deg"] < 9.0
    idx = np.argwhere(roi.mask("Cochlea"))
    box_centre = ct.index_to_physical(((idx.min(0) + idx.max(0)) / 2.0)[::-1])
    assert np.linalg.norm(box_centre - ct.center) < 1.0
    assert set(t["segments"]) == {s.name for s in PHANTOM_SEGMENTS}


def test_label_masks_agree_with_the_model(roi):
    inside = roi.model.signed_distance(roi.ct.physical_grid()) > 0
    cochlea, st, sv = roi.mask("Cochlea"), roi.mask("Scala tympani"), roi.mask("Scala vestibuli")
    assert np.array_equal(cochlea, inside)
    assert np.array_equal(st | sv, cochlea)
    assert not np.any(st & sv)
    assert 0.7 < st.sum() / sv.sum() < 1.4
    assert [s for s, _ in roi.segments] == list(PHANTOM_SEGMENTS)
    for seg, m in roi.segments:
        assert m.dtype == bool and m.shape == roi.ct.shape and m.any(), seg.name
    # the capsule surrounds the fluid and excludes it; the IAC lies below the cochlea
    capsule = roi.mask("Otic capsule")
    assert not np.any(capsule & cochlea) and not np.any(capsule & roi.mask("Internal auditory canal"))
    assert np.all(ndimage.binary_dilation(cochlea, iterations=2) <= (capsule | cochlea | roi.mask(
        "Vestibule and semicircular canals") | roi.mask("Internal auditory canal")))
    labels = roi.labelmap()
    assert labels.array.dtype == np.uint8 and labels.same_geometry(roi.ct)
    assert np.all(labels.array[st] == 2) and np.all(labels.array[sv] == 3)
    assert set(np.unique(labels.array)) <= {0, 2, 3, 4, 5, 6}
    with pytest.raises(CochleaAIError):
        roi.mask("Spleen")


def test_intensities_follow_the_appearance_model(roi):
    a = roi.ct.array.astype(float)
    fluid = ndimage.binary_erosion(roi.mask("Cochlea"))
    capsule = ndimage.binary_erosion(roi.mask("Otic capsule"), iterations=2)
    # blur of a 0.8-1.5 mm duct inside 2000 HU bone lifts the fluid well above 0 HU
    assert -50.0 < a[fluid].mean() < 550.0
    assert abs(a[capsule].mean() - roi.truth["intensities"]["otic_capsule"]) < 300.0
    sharp = make_phantom(0, "roi", noise_hu=0, psf_fwhm_mm=0)
    s = sharp.ct.array.astype(float)
    assert 0.0 <= s[fluid].mean() < 250.0                    # fluid with the bony partition
    assert abs(s[capsule].mean() - sharp.truth["intensities"]["otic_capsule"]) < 50.0
    assert sharp.truth["noise_hu"] == 0.0 and sharp.truth["psf_fwhm_mm"] == 0.0
    # the partition: a thin brighter sheet between the scalae in the sharp image
    st, sv = sharp.mask("Scala tympani"), sharp.mask("Scala vestibuli")
    interface = (ndimage.binary_dilation(st) & sv) | (ndimage.binary_dilation(sv) & st)
    core = ndimage.binary_erosion(sharp.mask("Cochlea"), iterations=2)
    assert s[interface & core].mean() > s[core & ~interface].mean() + 100.0


def test_landmarks(roi):
    lm = roi.landmarks
    assert lm.kind == "point" and lm.labels == ["apex", "center", "round_window"]
    expected = roi.model.landmarks()
    for name in lm.labels:
        assert np.allclose(lm.point(name), expected[name])
        assert np.allclose(roi.truth["landmarks"][name], expected[name])
    assert np.all(roi.ct.contains(lm.points))
    centres = roi.ct.physical_grid()[roi.mask("Cochlea")]
    assert np.min(np.linalg.norm(centres - lm.point("apex"), axis=1)) < 1.0


def test_theta_override():
    theta4 = np.array([3.6, 0.14, 0.4, 0.1])
    ph = make_phantom(3, "roi", theta=theta4)
    assert np.allclose(ph.model.theta[:4], theta4) and ph.truth["shape_source"] == "given"
    theta10 = ph.model.theta.copy()
    again = make_phantom(3, "roi", theta=theta10)
    assert np.allclose(again.model.theta, theta10)
    assert np.array_equal(again.mask("Cochlea"), ph.mask("Cochlea"))


def test_hierarchical_supersampling_equals_plain_4x4x4():
    from cochleaai.phantom.render import Grid, coverage, subvoxel_offsets

    grid = Grid((14, 16, 18), (0.2, 0.25, 0.3), (-2.0, -1.5, -1.5))   # (z, y, x) shape, ITK spacing
    centre, radius = np.array([0.3, 0.2, 0.1]), 1.1

    def sphere(p):
        return radius - np.linalg.norm(p - centre, axis=-1)

    fraction, d = coverage(grid, grid.full, sphere)
    idx = np.argwhere(np.ones(grid.shape, dtype=bool))
    plain = (sphere(grid.subvoxel_points(grid.full, idx, subvoxel_offsets(4))) > 0).mean(axis=1)
    assert np.allclose(fraction.reshape(-1), plain.reshape(-1))
    assert abs(fraction.sum() * np.prod(grid.spacing) - 4.0 / 3.0 * np.pi * radius ** 3) < 0.05


# --------------------------------------------------------------------------- prior

def test_shape_prior_is_bounded_and_bimodal():
    rng = np.random.default_rng(123)
    samples = np.array([sample_shape(rng) for _ in range(4000)])
    assert samples.shape == (4000, 4)
    assert np.all(samples >= DEFORMABLE_LOWER) and np.all(samples <= DEFORMABLE_UPPER)
    low_cls, high_cls = PROFILE_CLASSES
    for column, (m_low, m_high) in ((0, (low_cls.a[0], high_cls.a[0])), (2, (low_cls.alpha[0], high_cls.alpha[0]))):
        x = samples[:, column]
        split = 0.5 * (m_low + m_high)
        assert abs(x[x < split].mean() - m_low) < 0.06
        assert abs(x[x >= split].mean() - m_high) < 0.06
        assert abs((x < split).mean() - low_cls.weight) < 0.05
        # two modes: the histogram dips between them
        counts, edges = np.histogram(x, bins=np.linspace(m_low - 0.3, m_high + 0.3, 25))
        centres = 0.5 * (edges[1:] + edges[:-1])
        dip = counts[np.argmin(np.abs(centres - split))]
        assert dip < 0.5 * counts[np.argmin(np.abs(centres - m_low))]
        assert dip < 0.5 * counts[np.argmin(np.abs(centres - m_high))]
    assert abs(samples[:, 1].mean() - 0.15) < 0.005
    # reproducible from a seed
    assert np.array_equal(sample_shape(7), sample_shape(np.random.default_rng(7)))


# --------------------------------------------------------------------------- files

def test_save_writes_four_readable_files(roi, tmp_path):
    paths = roi.save(tmp_path / "phantom")
    assert {p.name for p in paths.values()} == {"ct.nrrd", "labels.seg.nrrd", "landmarks.mrk.json", "truth.json"}
    assert all(p.exists() for p in paths.values())
    ct = read_volume(paths["ct"])
    assert ct.same_geometry(roi.ct) and np.array_equal(ct.array, roi.ct.array)
    reference, segments = read_seg_nrrd(paths["labels"])
    assert reference.same_geometry(roi.ct)
    read_back = {s.name: (s, m) for s, m in segments}
    assert set(read_back) == {s.name for s in PHANTOM_SEGMENTS}
    for seg, mask in roi.segments:
        assert read_back[seg.name][0].value == seg.value
        assert np.array_equal(read_back[seg.name][1], mask), seg.name
    markups = read_markups(paths["landmarks"])
    assert markups.labels == roi.landmarks.labels
    assert np.allclose(markups.points, roi.landmarks.points)
    truth = json.loads(paths["truth"].read_text())
    assert truth["seed"] == 0 and truth["fov"] == "roi"


# --------------------------------------------------------------------------- temporal field of view

def test_temporal_field_of_view(temporal):
    ct = temporal.ct
    extent = np.asarray(ct.size) * ct.spacing
    assert extent.max() >= 40.0 and np.allclose(ct.spacing, 0.3) and ct.array.dtype == np.int16
    # a non-template pose: rotated from the identity and from the reference orientation
    R = temporal.model.rotation
    assert np.linalg.norm(R - np.eye(3)) > 0.3 and np.linalg.norm(R - R_REF) > 0.1
    assert temporal.truth["fov"] == "temporal"
    # the whole cochlea lies inside the field of view, and so do the landmarks
    surface = temporal.model.to_image(cochlea_outline(temporal.model.theta[:4]))
    assert np.all(ct.contains(surface, margin_voxels=-2.0))
    assert np.all(ct.contains(temporal.landmarks.points))
    cochlea = temporal.mask("Cochlea")
    assert np.array_equal(cochlea, temporal.model.signed_distance(ct.physical_grid()) > 0)
    for name in ("Vestibule and semicircular canals", "Otic capsule", "Internal auditory canal"):
        assert temporal.mask(name).any(), name
    a = ct.array.astype(float)
    # distractors: air cells and middle ear near -1000 HU, temporal bone and otic capsule
    cells = [c for c in temporal.truth["surroundings"]["air_cells_lps"] if c[3] >= 1.0]
    assert cells, "expected mastoid air cells"
    grid = ct.physical_grid()
    core = np.zeros(ct.shape, dtype=bool)
    for x, y, z, r in cells:
        core |= np.linalg.norm(grid - np.array([x, y, z]), axis=-1) < r - 0.5
    assert core.sum() > 50
    assert a[core].mean() < -750.0
    capsule = ndimage.binary_erosion(temporal.mask("Otic capsule"), iterations=2)
    assert abs(a[capsule].mean() - temporal.truth["intensities"]["otic_capsule"]) < 300.0
    fluid = ndimage.binary_erosion(cochlea)
    assert -50.0 < a[fluid].mean() < 600.0
    assert np.mean(a < -900) > 0.01                          # air: middle ear, canal, outside
    bone = np.abs(a - temporal.truth["intensities"]["temporal_bone"]) < 150
    assert bone.mean() > 0.2                                 # temporal bone fills much of the view


# --------------------------------------------------------------------------- inputs and progress

@pytest.mark.parametrize("kwargs", [
    {"fov": "xyz"}, {"fov": 3}, {"seed": -1}, {"seed": "a"}, {"seed": 1.5}, {"seed": True},
    {"theta": [1.0, 2.0]}, {"theta": [9.0, 0.15, 0.6, 0.2]}, {"noise_hu": -1.0}, {"psf_fwhm_mm": float("nan")},
])
def test_bad_input_raises(kwargs):
    with pytest.raises(CochleaAIError):
        make_phantom(**kwargs)


def test_progress_reports_and_cancel():
    seen = []
    make_phantom(2, "roi", progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert len(seen) >= 5 and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert all(isinstance(m, str) for _, m in seen)
    job = Progress()
    job.cancel()
    with pytest.raises(Cancelled):
        make_phantom(2, "roi", progress=job)


def test_default_intensities_are_textbook_values():
    assert INTENSITIES["air"][0] == -1000.0
    assert INTENSITIES["otic_capsule"][0] == 2000.0
    assert INTENSITIES["temporal_bone"][0] == 600.0
    assert INTENSITIES["cochlear_fluid"][0] == 0.0 and INTENSITIES["bony_partition"][0] == 500.0
    model = CochleaModel()
    # the apex (cupula, on the modiolar axis) at the duct's apical end
    assert abs(model.signed_distance(model.landmarks()["apex"][None])[0]) < 0.3


def test_fluid_space_labels_do_not_overlap():
    ph = make_phantom(seed=2, fov="roi")
    cochlea = ph.mask("Cochlea")
    assert not np.any(cochlea & ph.mask("Vestibule and semicircular canals"))
    assert not np.any(cochlea & ph.mask("Otic capsule"))


@pytest.mark.parametrize("seed, fov", [(1, "roi"), (7, "roi"), (2, "temporal")])
def test_drawn_theta_is_the_recorded_truth(seed, fov):
    from cochleaai.phantom.core import drawn_theta

    theta = drawn_theta(seed, fov)
    assert theta.shape == (10,)
    np.testing.assert_array_equal(theta, make_phantom(seed, fov).truth["theta"])
    with pytest.raises(CochleaAIError, match="seed"):
        drawn_theta(-1, fov)
    with pytest.raises(CochleaAIError, match="field of view"):
        drawn_theta(seed, "whole-head")
