"""The cochlea segmentation pipeline: known answers on phantoms, measures, pose, QC, bad input."""
import numpy as np
import pytest

from cochleaai import CochleaAIError
from cochleaai.metrics import dice
from cochleaai.phantom.core import make_phantom
from cochleaai.planning import interval_scale
from cochleaai.planning.interval_scale import load_interval_scale
from cochleaai.planning.plan import plan_insertions
from cochleaai.segmentation import pipeline
from cochleaai.segmentation.appearance import AppearanceModel, StudentMixture
from cochleaai.segmentation.logistic import FitConfig, fit_logistic_shape
from cochleaai.segmentation.pipeline import relabel, segment
from cochleaai.segmentation.pose import initial_theta, parse_points
from cochleaai.segmentation.quality import CAPSULE_SUSPECT_HU, capsule_contrast, quality_score, suspect_reasons
from cochleaai.segmentation.config import COCHLEA_ALONE_DEG, CYLINDER_LABEL_WEDGE_DEG, SegmentConfig
from cochleaai.segmentation.shapes import CochleaShape, Sphere
from cochleaai.shape import CochleaModel, default_params
from cochleaai.shape.measures import clinical_measures, measure_summaries
from cochleaai.shape.params import posterior_thetas
from cochleaai.shape.rotation import rotation_matrix
from cochleaai.volume import Volume


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(seed=7, fov="roi")


@pytest.fixture(scope="module")
def result(phantom):
    # labelled like the phantom's truth: the cochlea alone
    return segment(phantom.ct, settings=SegmentConfig(samples=40, vestibule_wedge_deg=COCHLEA_ALONE_DEG))


def _truth_on(result, ph):
    return ph.ct.copy(ph.mask("Cochlea").astype(np.uint8)).resample_like(result.roi, "nearest").array > 0


def test_phantom_fit_recovers_the_true_cochlea(phantom, result):
    truth = _truth_on(result, phantom)
    assert dice(result.ssi.array > 0, truth) >= 0.8          # a failed fit scores below 0.3
    assert dice(result.sroi.array > 0, truth) >= 0.6
    # the fitted lateral-wall length is within 10 % of the truth's
    true_cdl = clinical_measures(np.asarray(phantom.truth["theta"]))["cdl_lateral_wall_mm"]
    assert abs(result.measures["cdl_lateral_wall_mm"]["value"] - true_cdl) < 0.1 * true_cdl


def test_the_measures_carry_the_plan_s_calibrated_spread(phantom, result):
    """The posterior alone held none of the phantoms' true duct lengths in its 95 % interval;
    the segmentation's measures take the implant plan's calibrated spread, and their value is
    the fitted shape's."""
    truth = clinical_measures(np.asarray(phantom.truth["theta"]))
    fitted = clinical_measures(result.theta)
    narrow = measure_summaries(posterior_thetas(result.theta, result.covariance, 40, 0, 1.0))
    assert result.interval_scale == load_interval_scale() > 1
    for name in ("cdl_lateral_wall_mm", "cdl_organ_of_corti_mm"):
        m = result.measures[name]
        assert m["value"] == pytest.approx(fitted[name])
        assert m["std"] > 3 * narrow[name]["std"]
        assert m["low"] <= truth[name] <= m["high"]          # this phantom's truth is inside
    # the plan from the same fit gives the same spread for the same measure
    plan = plan_insertions(result.theta, result.covariance, samples=40)
    assert plan.measures["cdl_organ_of_corti_mm"]["sd"] == pytest.approx(
        result.measures["cdl_organ_of_corti_mm"]["sd"], rel=0.35)


def test_the_vestibule_wedge_costs_dice_where_the_label_is_the_cochlea_alone(phantom, result):
    # the phantom's truth calls the lumen past the round window vestibule: the default wedge,
    # made for the cylinder-cut labels of real CT, labels it too
    wedged = segment(phantom.ct, settings=SegmentConfig(samples=0))
    assert SegmentConfig().vestibule_wedge_deg == CYLINDER_LABEL_WEDGE_DEG
    truth = _truth_on(result, phantom)
    plain_dice, wedge_dice = dice(result.sroi.array > 0, truth), dice(wedged.sroi.array > 0, truth)
    assert wedge_dice < plain_dice - 0.02
    assert (wedged.sroi.array > 0).sum() > (result.sroi.array > 0).sum()
    assert dice(wedged.sroi.array > 0, result.sroi.array > 0) > 0.9     # the same cochlea, plus the wedge


def test_a_damaged_interval_table_stops_the_segmentation_before_the_fit(tmp_path, monkeypatch, phantom):
    damaged = tmp_path / "plan-intervals.json"
    damaged.write_text("{\"scale\": ", encoding="utf-8")
    monkeypatch.setattr(interval_scale, "INTERVAL_FILE", damaged)
    monkeypatch.setattr(pipeline, "fit_logistic_shape", lambda *a, **k: pytest.fail("fitted before the check"))
    with pytest.raises(CochleaAIError, match="calibrate-plan"):
        pipeline.segment(phantom.ct, settings=SegmentConfig(samples=10))
    with pytest.raises(CochleaAIError, match="interval scale"):
        SegmentConfig(interval_scale=0.5).check()


def test_start_far_off_in_position_and_shape_still_finds_the_cochlea(phantom, result):
    """A start 1.45 mm off along the modiolar axis and 1.3 mm across it (inside the allowed
    pose range), with a wrong size and height profile, locks onto the wrong turn without the
    start search. (With the calibrated, wider duct a start 1.3 mm up the axis no longer does.)"""
    start = result.initial_theta.copy()
    start[[0, 2, 3]] = 3.4, -0.2, 1.0
    start[7:] += [1.0, 0.8, -1.45]
    far = segment(phantom.ct, settings=SegmentConfig(start=start, samples=0))
    truth = _truth_on(far, phantom)
    assert dice(far.ssi.array > 0, truth) >= 0.8
    unsearched = segment(phantom.ct, settings=SegmentConfig(start=start, samples=0, search_start=False))
    assert dice(unsearched.ssi.array > 0, truth) < dice(far.ssi.array > 0, truth)


@pytest.mark.parametrize("offset", [[1.4, -1.4, -1.4], [1.0, 0.8, -1.45]])
def test_start_far_off_across_and_along_the_axis_is_placed_on_the_cochlea(phantom, result, offset):
    """Starts near corners of the allowed translation range, with a wrong shape: the local
    search alone ends on the wrong place; the placement search finds the cochlea."""
    start = result.initial_theta.copy()
    start[[0, 2, 3]] = 3.4, 1.2, -0.6
    start[7:] += offset
    placed = segment(phantom.ct, settings=SegmentConfig(start=start, samples=0))
    truth = _truth_on(placed, phantom)
    assert dice(placed.ssi.array > 0, truth) >= 0.8          # the template fit: 0.88
    local = segment(phantom.ct, settings=SegmentConfig(start=start, samples=0, search_placement=False))
    assert dice(local.ssi.array > 0, truth) < 0.3


def test_the_cochlea_is_kept_where_the_likelihood_prefers_the_vestibule():
    """On phantom 1017 the likelihood of the model, under the starting mixtures and
    after the fit alike, is higher for a spiral over the vestibule than for the true
    cochlea; the capsule contrast keeps the cochlea."""
    ph = make_phantom(seed=1017, fov="roi")
    r = segment(ph.ct, settings=SegmentConfig(samples=0))
    assert dice(r.ssi.array > 0, _truth_on(r, ph)) >= 0.85


def test_capsule_contrast_known_values():
    g = np.stack(np.meshgrid(*[np.arange(-3.0, 3.01, 0.1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    r = np.linalg.norm(g, axis=1)
    S = 1.5 - r                                    # a sphere of radius 1.5 mm, positive inside
    fluid_in_bone = np.where(r <= 1.5, 0.0, 2000.0)
    assert capsule_contrast(fluid_in_bone, S) == pytest.approx(2000.0)
    # a sphere over a larger fluid space: fluid on both sides of the surface
    assert capsule_contrast(np.where(r <= 2.5, 0.0, 2000.0), S) == pytest.approx(0.0)
    # halfway: the shell is fluid up to 2.0 mm, bone beyond
    half = capsule_contrast(np.where(r <= 1.8, 0.0, 2000.0), S, shell_mm=0.6)
    assert 0.0 < half < 2000.0
    assert capsule_contrast(fluid_in_bone, S - 10.0) == -np.inf       # empty shape


def test_timings_cover_the_call(result):
    phases = ("preparation", "start_search", "em_fit", "maps_uncertainty_measures_qc")
    assert set(result.timings) == set(phases)
    assert all(v >= 0 for v in result.timings.values())
    assert sum(result.timings.values()) <= result.seconds + 1e-3


def test_outputs_are_consistent(phantom, result):
    for vol in (result.probability, result.shape_probability):
        assert vol.same_geometry(result.roi)
        assert 0.0 <= vol.array.min() and vol.array.max() <= 1.0
    # the entropy is largest (1 bit) where the shape probability is one half
    u = result.uncertainty.array
    assert 0.0 <= u.min() and u.max() <= 1.0 + 1e-6
    edge = np.abs(result.shape_probability.array - 0.5) < 0.1
    assert u[edge].mean() > u[~edge & (u > 0)].mean()
    # SSI is exactly where the shape function is non-negative
    assert np.array_equal(result.ssi.array > 0, result.shape_probability.array > 0.5) or \
        dice(result.ssi.array > 0, result.shape_probability.array > 0.5) > 0.95
    for stat in result.measures.values():
        assert np.isfinite(stat["value"]) and np.isfinite(stat["mean"]) and stat["std"] >= 0
        assert stat["low"] <= stat["high"]
    assert result.measures["cdl_lateral_wall_mm"]["value"] > result.measures["cdl_organ_of_corti_mm"]["value"] \
        > result.measures["cdl_centerline_mm"]["value"]
    pts, deg = result.scala_tympani_centerline(12)
    back, dist = result.angular_position(pts)
    np.testing.assert_allclose(back, deg, atol=0.2)
    assert np.isfinite(result.quality["qc_surface_mm"])


def test_input_volume_is_not_modified(phantom):
    before = phantom.ct.array.copy()
    segment(phantom.ct, settings=SegmentConfig(outer_iterations=1, samples=0))
    assert np.array_equal(before, phantom.ct.array)


def test_left_ear_is_fitted_as_a_mirrored_right_ear(phantom, result):
    flipped = phantom.ct.copy(phantom.ct.array[:, :, ::-1].copy())     # x mirrored about the centre
    left = segment(flipped, settings=SegmentConfig(side="left", samples=0))
    assert dice(left.ssi.array[:, :, ::-1] > 0, result.ssi.array > 0) > 0.9
    lm_right, lm_left = result.landmarks(), left.landmarks()
    mirrored_apex = lm_right["apex"] * np.array([-1, 1, 1]) + np.array([2 * result.roi.center[0], 0, 0])
    assert np.linalg.norm(lm_left["apex"] - mirrored_apex) < 0.5


def test_clinical_measures_known_values():
    m = clinical_measures(default_params())
    model = CochleaModel(default_params())
    # A-value: the basal turn measured through the modiolar axis spans the model's x extent
    assert abs(m["a_value_mm"] - model.extent_mm()[0]) < 0.3
    assert abs(m["cdl_centerline_mm"] - model.duct_length()) < 1e-3
    assert m["cdl_from_a_value_mm"] == pytest.approx(4.16 * m["a_value_mm"] - 4.0)
    bigger = default_params()
    bigger[0] += 0.4
    assert clinical_measures(bigger)["cdl_lateral_wall_mm"] > m["cdl_lateral_wall_mm"]
    posed = default_params(rotation=(0.3, -0.2, 0.1), translation=(5, 6, 7))
    assert clinical_measures(posed) == pytest.approx(m)


def test_initial_pose_from_points_recovers_a_known_pose():
    truth = default_params(rotation=(0.2, -0.3, 0.4), translation=(3.0, -2.0, 1.0))
    lm = CochleaModel(truth).landmarks()
    points = parse_points(["Center", "APEX", "round_window"], [lm["center"], lm["apex"], lm["round_window"]])
    assert set(points) == {"center", "apex", "round window"}
    th = initial_theta(points, np.zeros(3))
    np.testing.assert_allclose(rotation_matrix(th[4:7]), rotation_matrix(truth[4:7]), atol=1e-8)
    np.testing.assert_allclose(th[7:], truth[7:], atol=1e-8)
    # apex + round window: the apex-round window line is matched exactly
    th2 = initial_theta({"apex": lm["apex"], "round window": lm["round_window"]}, np.zeros(3))
    lm2 = CochleaModel(th2).landmarks()
    np.testing.assert_allclose(lm2["apex"], lm["apex"], atol=1e-6)
    np.testing.assert_allclose(lm2["round_window"], lm["round_window"], atol=1e-6)
    th3 = initial_theta({"center": lm["center"]}, np.zeros(3))
    np.testing.assert_allclose(CochleaModel(th3).landmarks()["center"], lm["center"], atol=1e-8)
    with pytest.raises(CochleaAIError):
        initial_theta({"apex": lm["apex"]}, np.zeros(3))


def test_quality_control_flags_a_shifted_result(phantom):
    ct = phantom.ct
    truth = ct.copy(phantom.mask("Cochlea").astype(np.uint8))
    shifted = ct.copy(np.roll(truth.array, 12, axis=2))                # 2.4 mm off: a duct width
    good, bad = quality_score(ct, truth, truth), quality_score(ct, shifted, shifted)
    assert good["qc_surface_mm"] < bad["qc_surface_mm"]
    assert not good["suspect"] and bad["suspect"]


def test_capsule_contrast_flags_a_spiral_off_the_cochlea(result):
    assert result.quality["capsule_contrast_hu"] > CAPSULE_SUSPECT_HU and not result.quality["suspect"]
    theta = result.theta.copy()
    theta[7:] += [1.6, 0.0, 0.0]
    S, _ = CochleaShape().evaluate(result.roi.physical_grid().reshape(-1, 3), theta)
    off = quality_score(result.roi, result.sroi, result.ssi, shape_values=S)
    assert off["capsule_contrast_hu"] < CAPSULE_SUSPECT_HU and off["suspect"]
    assert suspect_reasons(result.quality) == []
    (reason,) = suspect_reasons(off)
    assert "vestibule" in reason and f"{off['capsule_contrast_hu']:.0f} HU" in reason


def test_bfgs_shape_step_reaches_the_gauss_newton_answer():
    g = np.stack(np.meshgrid(*[np.linspace(-4, 4, 21)] * 3, indexing="ij"), -1).reshape(-1, 3)
    image = np.where(np.linalg.norm(g - [0.5, -0.3, 0.2], axis=1) < 2.2, 0.0, 1000.0)
    image += np.random.default_rng(0).normal(0, 50, image.shape)
    out = {}
    for step in ("gauss-newton", "bfgs"):
        # supervised appearance: dark sphere, bright background
        app = AppearanceModel(StudentMixture([1.0], [1000.0], [50.0], [30.0]),
                              StudentMixture([1.0], [0.0], [50.0], [30.0]), fixed=True)
        res = fit_logistic_shape(image, g, Sphere(), [1.5, 0, 0, 0],
                                 FitConfig(l_ref=0.3, outer_iterations=8, shape_step=step), appearance=app)
        out[step] = res.theta
    np.testing.assert_allclose(out["bfgs"], out["gauss-newton"], atol=0.05)
    # centre within 0.05 mm; radius within half the 0.4 mm sample spacing
    np.testing.assert_allclose(out["gauss-newton"][1:], [0.5, -0.3, 0.2], atol=0.05)
    assert abs(out["gauss-newton"][0] - 2.2) < 0.2


@pytest.mark.parametrize("case", ["labels", "nan", "flat", "tiny", "outside", "role"])
def test_bad_input_is_refused(phantom, case):
    ct = phantom.ct
    points = None
    if case == "labels":
        vol = phantom.labelmap()
    elif case == "nan":
        arr = ct.array.astype(np.float32)
        arr[5, 5, 5] = np.nan
        vol = ct.copy(arr)
    elif case == "flat":
        vol = Volume(ct.array[:1].copy(), ct.spacing, ct.origin, ct.direction)
    elif case == "tiny":
        vol = Volume(ct.array[:20, :20, :20].copy(), ct.spacing, ct.origin, ct.direction)
    elif case == "outside":
        vol, points = ct, {"center": ct.center + 100.0}
    else:
        vol, points = ct, {"middle": ct.center}
    with pytest.raises(CochleaAIError):
        segment(vol, points, SegmentConfig(outer_iterations=1, samples=0))


def test_uncalibrated_grey_values_still_segment(phantom, result):
    # a cone-beam-like scale: grey = 0.4 HU + 1200, stored as unsigned integers
    grey = np.clip(np.round(0.4 * phantom.ct.array.astype(float) + 1200.0), 0, None).astype(np.uint16)
    scaled = segment(phantom.ct.copy(grey), settings=SegmentConfig(samples=0))
    assert dice(scaled.ssi.array > 0, _truth_on(scaled, phantom)) >= 0.8
    assert dice(scaled.ssi.array > 0, result.ssi.array > 0) >= 0.85
    # the capsule contrast is reported in HU whatever the image's scale
    assert scaled.quality["capsule_contrast_hu"] == pytest.approx(result.quality["capsule_contrast_hu"], rel=0.15)


def test_the_vestibule_wedge_adds_the_vestibule_next_to_the_basal_end(phantom):
    """With ``vestibule_wedge_deg`` the label map also holds the lumen past the round window:
    on the phantom, whose vestibule joins the duct's basal end, what it adds is vestibule."""
    plain = segment(phantom.ct, settings=SegmentConfig(samples=0, vestibule_wedge_deg=COCHLEA_ALONE_DEG))
    wedge = segment(phantom.ct, settings=SegmentConfig(samples=0, vestibule_wedge_deg=45.0))
    a, b = plain.sroi.array > 0, wedge.sroi.array > 0
    assert np.array_equal(plain.theta, wedge.theta)           # the fit is the same
    assert not np.any(a & ~b)                                 # nothing is taken away
    added = b & ~a
    vestibule = phantom.ct.copy(phantom.mask("Vestibule and semicircular canals").astype(np.uint8))
    vestibule = vestibule.resample_like(wedge.roi, "nearest").array > 0
    assert added.sum() * 0.008 > 1.0                           # more than 1 mm3 (0.2 mm voxels)
    assert (added & vestibule).sum() >= 0.8 * added.sum()


@pytest.mark.parametrize("side", ["right", "left"])
def test_relabel_gives_what_segmenting_again_with_the_other_wedge_gives(phantom, side):
    """Switching the vestibule's wedge needs no new fit: relabelling the default result is the
    segmentation with the cochlea alone, voxel for voxel, quality control included (a left ear:
    the mirrored phantom), and relabelling back returns the default."""
    ct = phantom.ct if side == "right" else phantom.ct.copy(phantom.ct.array[:, :, ::-1].copy())
    default = segment(ct, settings=SegmentConfig(side=side, samples=0))
    alone = segment(ct, settings=SegmentConfig(side=side, samples=0, vestibule_wedge_deg=COCHLEA_ALONE_DEG))
    relabelled = relabel(default, COCHLEA_ALONE_DEG)
    assert np.array_equal(relabelled.sroi.array, alone.sroi.array)
    assert np.array_equal(relabelled.probability.array, alone.probability.array)
    assert relabelled.quality == alone.quality and relabelled.appearance["final"] == alone.appearance["final"]
    assert relabelled.vestibule_wedge_deg == COCHLEA_ALONE_DEG and default.vestibule_wedge_deg == CYLINDER_LABEL_WEDGE_DEG
    assert np.array_equal(relabelled.theta, default.theta) and relabelled.measures == default.measures
    back = relabel(relabelled, CYLINDER_LABEL_WEDGE_DEG)
    assert np.array_equal(back.sroi.array, default.sroi.array) and back.quality == default.quality
    assert (default.sroi.array > 0).sum() > (alone.sroi.array > 0).sum()      # the input result is kept


def test_relabel_refuses_what_it_cannot_redo(phantom):
    thesis_map = segment(phantom.ct, settings=SegmentConfig(samples=0, outer_iterations=1, label_map="shape-model"))
    with pytest.raises(CochleaAIError, match="lumen-wall"):
        relabel(thesis_map, 0.0)
    with pytest.raises(CochleaAIError, match="wedge"):
        relabel(thesis_map, 120.0)


def test_the_vestibule_wedge_is_checked():
    for bad in (-1.0, 91.0):
        with pytest.raises(CochleaAIError, match="wedge"):
            SegmentConfig(vestibule_wedge_deg=bad).check()
