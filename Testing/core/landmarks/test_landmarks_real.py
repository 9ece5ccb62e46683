"""One-shot landmarks across ears, grey scales and references: analytic properties, and the
shipped real-CT model on the real development specimens it was not trained on."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from conftest import real_specimen, requires_real_ct  # noqa: E402
from landmark_cases import TINY, tiny_case  # noqa: E402

from cochleaai.errors import CochleaAIError  # noqa: E402
from cochleaai.landmarks import model_io, patches  # noqa: E402
from cochleaai.landmarks.detect import Detection, fuse_detections, pose_prior  # noqa: E402
from cochleaai.landmarks.training import train_oneshot  # noqa: E402
from cochleaai.markups import Markups


@pytest.fixture(scope="module")
def tiny_model():
    ref, ref_mask, lm, val, val_mask = tiny_case()
    return train_oneshot(ref, ref_mask, lm, None, None, TINY, seed=2, side="left")


def test_the_mirrored_reference_is_the_other_ear_and_mirroring_twice_gives_it_back(tiny_model):
    m = tiny_model
    mirror = m.mirrored()
    assert mirror.side == "right" and mirror.mirror and mirror.labels == m.labels      # names carry over
    np.testing.assert_array_equal(mirror.patch, m.patch[:, :, ::-1])
    # the landmarks are reflected through the plane through the centre normal to the first axis
    a = m.axes[:, 0]
    np.testing.assert_allclose((mirror.landmarks - m.centre) @ a, -((m.landmarks - m.centre) @ a), atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(mirror.landmarks - m.centre, axis=1),
                               np.linalg.norm(m.landmarks - m.centre, axis=1), atol=1e-9)
    back = mirror.mirrored()
    np.testing.assert_allclose(back.landmarks, m.landmarks, atol=1e-9)
    np.testing.assert_array_equal(back.patch, m.patch)
    assert back.side == "left" and not back.mirror
    assert m.for_side("left") is m and m.for_side("right").mirror and m.for_side(None) is m
    with pytest.raises(CochleaAIError, match="left, right or auto"):
        m.for_side("up")


def test_the_pose_prior_of_the_mirror_is_the_left_right_mirror_image(tiny_model):
    """Turning the mirrored reference by the prior gives the reference reflected through the
    body's midsagittal plane (LPS x), the pose of the other ear in a scan of the same patient."""
    m = tiny_model
    mirror = m.mirrored()
    R = pose_prior(mirror)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    turned = (mirror.landmarks - m.centre) @ R.T
    np.testing.assert_allclose(turned, (m.landmarks - m.centre) * [-1.0, 1.0, 1.0], atol=1e-9)
    np.testing.assert_array_equal(pose_prior(m), np.eye(3))


def test_grey_values_that_are_not_hu_are_mapped_onto_the_reference_scale():
    rng = np.random.default_rng(0)
    hu = np.concatenate([np.full(2000, -1000.0), rng.uniform(-900, 2600, 100_000)])
    anchors = patches.intensity_anchors(hu)
    assert patches.looks_like_hu(anchors)
    assert patches.hu_mapping(anchors, [-1000.0, 2300.0]) == (1.0, 0.0)        # HU stays HU
    cbct = 0.6 * hu + 1500.0                                                    # another scanner's scale
    gain, offset = patches.hu_mapping(patches.intensity_anchors(cbct), anchors)
    assert not patches.looks_like_hu(patches.intensity_anchors(cbct))
    np.testing.assert_allclose(cbct * gain + offset, hu, atol=1e-6)


def _detection(points, confidence=0.8):
    return Detection(landmarks=Markups(np.asarray(points, float), ["a", "b"]), confidence=confidence,
                     flagged=False, centre=np.zeros(3))


def test_several_references_are_fused_by_the_median_and_their_spread_flags_disagreement():
    truth = np.array([[0.0, 0, 0], [10, 0, 0]])
    agree = [_detection(truth + d) for d in ([0.1, 0, 0], [-0.1, 0, 0], [0, 0.1, 0])]
    fused = fuse_detections(agree)
    np.testing.assert_allclose(fused.landmarks.points, truth + [0, 0, 0], atol=1e-9)
    assert fused.details["spread_mm"] == pytest.approx(0.1) and not fused.flagged
    # one reference far off: the median ignores it, and one in three does not make a spread
    outlier = agree[:2] + [_detection(truth + [8.0, 0, 0])]
    fused = fuse_detections(outlier)
    assert np.abs(fused.landmarks.points - truth).max() <= 0.1 + 1e-9 and not fused.flagged
    # references that disagree among themselves: flagged
    split = [_detection(truth + [s, 0, 0]) for s in (-3.0, 0.0, 3.0)]
    fused = fuse_detections(split)
    assert fused.flagged and "disagree" in fused.reason and fused.row("v")["spread_mm"] == pytest.approx(3.0)
    with pytest.raises(CochleaAIError, match="same landmarks"):
        fuse_detections([agree[0], Detection(landmarks=Markups(truth, ["x", "y"]), confidence=1.0,
                                             flagged=False)])


def test_a_reference_whose_landmarks_and_mask_disagree_is_refused():
    ref, ref_mask, lm, _, _ = tiny_case()
    far = Markups(np.array([[0.0, 0.0, 2.5], [-9.0, -9.0, -9.0]]), ["top", "corner"])   # in the image
    with pytest.raises(CochleaAIError, match="do not agree"):
        train_oneshot(ref, ref_mask, far, None, None, TINY)
    with pytest.raises(CochleaAIError, match="together"):
        train_oneshot(ref, ref_mask, lm, ref, None, TINY)


# ------------------------------------------------------------------ real CT
def _shipped():
    path = model_io.default_model_path()
    if not path.is_file():
        pytest.skip("the shipped real-CT model is missing")
    torch.set_num_threads(1)
    return model_io.load_model(path)


@requires_real_ct
def test_shipped_model_card_names_its_data_and_licence():
    card = json.loads(model_io.default_model_path().with_suffix(".json").read_text())
    data = card["training"]["data"]
    assert "10.1016/j.dib.2019.104782" in data["citation"] and data["licence"]
    assert card["reference"]["side"] in ("left", "right")
    assert card["reference"]["landmark_labels"] == ["center", "apex", "round_window", "oval_window", "vestibule"]
    assert card["figures"]["leave_one_reference_out"]["success_rate"] >= 0.0
    assert model_io.default_model_path().stat().st_size < 5e6


#: Targets not used to make the shipped model: the other ear, and the other lumen (air/fluid).
REAL_TARGETS = ("F03", "T02", "F01")


@requires_real_ct
@pytest.mark.parametrize("target_id", REAL_TARGETS)
def test_shipped_model_places_the_expert_landmarks_on_real_specimens(target_id):
    from cochleaai.bench.landmarks_real import truth
    from cochleaai.landmarks.detect import detect_landmarks

    model = _shipped()
    assert target_id != model.card["training"]["data"]["specimen"]
    spec = real_specimen(target_id)
    ct = spec.ct()
    before = ct.array.copy()
    det = detect_landmarks(model, ct, side=spec.side)
    np.testing.assert_array_equal(ct.array, before)                       # the input is untouched
    errors = np.linalg.norm(det.landmarks.points - truth(spec), axis=1)
    assert errors.max() < 2.0, dict(zip(det.landmarks.labels, errors.round(2)))
    assert not det.flagged, det.reason
    assert det.details["mirrored"] == (spec.side != model.side)


@requires_real_ct
def test_cone_beam_grey_values_give_the_same_landmarks_as_hu():
    from cochleaai.landmarks.detect import detect_landmarks

    model = _shipped()
    spec = real_specimen("F03")
    ct = spec.ct()
    hu = detect_landmarks(model, ct, side=spec.side)
    cbct = ct.copy((ct.array.astype(np.float32) * 0.8 + 1000.0).astype(np.float32))
    grey = detect_landmarks(model, cbct, side=spec.side)
    assert grey.details["grey_value_gain"] == pytest.approx(1.25, rel=0.05)
    assert np.linalg.norm(grey.landmarks.points - hu.landmarks.points, axis=1).max() < 0.3


@requires_real_ct
def test_bench_landmarks_real_quick_run_on_two_specimens(tmp_path):
    """The benchmark end to end on a two-specimen folder, with a short training."""
    from cochleaai.bench import landmarks_real

    for sid in ("T01", "F01"):
        shutil.copytree(real_specimen(sid).folder, tmp_path / sid)
    figures = landmarks_real.run(data=tmp_path, reference="T01", max_steps=30)
    assert figures["references"] == ["T01"] and figures["volumes"] == 1
    assert set(figures["mean_error_mm_by_landmark"]) == set(landmarks_real.LABELS)
    assert 0.0 <= figures["success_rate"] <= 1.0 and figures["sec_per_volume"] > 0
    assert np.isfinite(figures["baseline_mean_error_mm"]) and figures["train_sec_median"] > 0
    assert figures["pairs"][0]["target"] == "F01"
    with pytest.raises(CochleaAIError, match="not among"):
        landmarks_real.run(data=tmp_path, reference="X99")
