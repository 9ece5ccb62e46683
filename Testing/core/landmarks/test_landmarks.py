"""One-shot landmarks: the parts against analytic answers (no trained model needed)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cochleaai.errors import CochleaAIError  # noqa: E402
from cochleaai.io import sha256_of  # noqa: E402
from cochleaai.landmarks import align, localise, model_io, patches  # noqa: E402
from cochleaai.landmarks.training import train_oneshot  # noqa: E402
from cochleaai.landmarks.unet import SliceUNet, UNetConfig  # noqa: E402
from cochleaai.markups import Markups
from cochleaai.progress import Cancelled  # noqa: E402
from cochleaai.volume import Volume  # noqa: E402
from landmark_cases import TINY, blobs, tiny_case  # noqa: E402


def _rotation(axis, deg):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.radians(deg)
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


# ----------------------------------------------------------------------------- network
def test_unet_keeps_the_slice_size_and_refuses_odd_sizes():
    net = SliceUNet(UNetConfig(channels=4, depth_channels=8)).eval()
    with torch.no_grad():
        out = net(torch.zeros(3, 1, 32, 48))
    assert out.shape == (3, 1, 32, 48)
    # the head starts at "background": a blank slice is given a low probability
    assert float(torch.sigmoid(out).max()) < 0.2
    with pytest.raises(CochleaAIError):
        net(torch.zeros(1, 1, 31, 32))


def test_orthogonal_stacks_round_trip_and_cut_the_right_axes():
    cube = np.arange(4 * 6 * 8, dtype=float).reshape(4, 6, 8)
    stacks = patches.orthogonal_stacks(cube)
    assert stacks[0][2].shape == (6, 8) and stacks[1][2].shape == (4, 8) and stacks[2][2].shape == (4, 6)
    np.testing.assert_array_equal(stacks[1][3], cube[:, 3, :])
    np.testing.assert_array_equal(stacks[2][5], cube[:, :, 5])
    for a, b in zip(patches.from_stacks(stacks), [cube] * 3):
        np.testing.assert_array_equal(a, b)


def test_rotated_patch_samples_a_ramp_along_its_own_axes():
    vol = Volume.empty((40, 40, 40), 0.5, (-10, -10, -10))
    vol = vol.copy(vol.physical_grid()[..., 0].astype(np.float32))        # value = x (LPS mm)
    R = _rotation((0, 0, 1), 90)                                          # patch i-axis -> LPS +y
    cube = patches.sample_patch(patches.as_sitk(vol), (1.0, 2.0, 0.0), R, 8, 0.5, 0.0)
    # along the patch's i axis x stays 1; along its j axis (LPS -x) x decreases by 0.5 a voxel
    np.testing.assert_allclose(cube.array[4, 4, :], 1.0 - 0.5 * (4 - 3.5), atol=1e-4)
    np.testing.assert_allclose(np.diff(cube.array[4, :, 4]), -0.5, atol=1e-4)


def test_a_box_of_any_size_samples_the_image_at_its_own_voxel_centres():
    """The localisation's whole-image box and the cubes share one sampler: a (nx, ny, nz)
    box is a grid of that size, and a linear ramp is sampled exactly at its voxel centres."""
    vol = Volume.empty((40, 40, 40), 0.5, (-10, -10, -10))
    pts = vol.physical_grid()
    vol = vol.copy((pts[..., 0] + 2 * pts[..., 1] - 3 * pts[..., 2]).astype(np.float32))
    R = _rotation((1, 1, 0), 30)
    box = patches.sample_patch(patches.as_sitk(vol), (1.0, -2.0, 0.5), R, (6, 8, 10), 0.5, 0.0)
    assert box.shape == (10, 8, 6) and np.allclose(box.direction, R) and np.allclose(box.spacing, 0.5)
    np.testing.assert_allclose(box.center, (1.0, -2.0, 0.5), atol=1e-9)
    g = box.physical_grid()
    np.testing.assert_allclose(box.array, g[..., 0] + 2 * g[..., 1] - 3 * g[..., 2], atol=1e-3)
    cube = patches.sample_patch(patches.as_sitk(vol), (1.0, -2.0, 0.5), R, 6, 0.5, 0.0)
    assert cube.shape == (6, 6, 6)
    np.testing.assert_allclose(cube.array, box.array[2:8, 1:7, :], atol=1e-4)   # same centre, nested


def test_batch_file_names_list_volumes_and_keep_equal_stems_apart(tmp_path):
    from cochleaai import io

    for name in ("a/ct.nrrd", "a/ct.seg.nrrd", "a/labels.seg.nhdr", "a/points.mrk.json", "a/notes.txt",
                 "b/ct.nii.gz", "b/ear.mha"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    files = io.volume_files([tmp_path / "a", tmp_path / "b", tmp_path / "c.nrrd"])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["a/ct.nrrd", "b/ct.nii.gz", "b/ear.mha",
                                                                   "c.nrrd"]
    assert io.volume_files(str(tmp_path / "a")) == [tmp_path / "a" / "ct.nrrd"]
    assert [io.file_stem(f) for f in files] == ["ct", "ct", "ear", "c"]
    assert io.file_stem("scan.v2.NII.GZ") == "scan.v2" and io.file_stem("x.seg.nrrd") == "x.seg"
    # the folder's name goes in front only where two stems clash
    assert io.unique_stems(files) == ["a_ct", "b_ct", "ear", "c"]


# --------------------------------------------------------------------------- alignment
def test_inertia_frame_of_an_ellipsoid_cloud():
    rng = np.random.default_rng(0)
    R = _rotation((1, 2, 3), 40)
    pts = rng.normal(size=(20000, 3)) * [3.0, 2.0, 1.0]
    centre, axes, values = align.inertia_frame(pts @ R.T + [5, -2, 1], np.ones(len(pts)))
    np.testing.assert_allclose(centre, [5, -2, 1], atol=0.1)
    np.testing.assert_allclose(values, [9, 4, 1], rtol=0.05)
    np.testing.assert_allclose(np.abs(np.sum(axes * R, axis=0)), 1.0, atol=0.01)   # same axes up to sign
    assert np.linalg.det(axes) == pytest.approx(1.0)
    with pytest.raises(CochleaAIError):
        align.inertia_frame(pts, np.zeros(len(pts)))


def test_candidate_rotations_are_proper():
    for rots, n in ((align.sign_flips(), 4), (align.cube_rotations(), 24)):
        assert len(rots) == n
        for q in rots:
            np.testing.assert_allclose(q @ q.T, np.eye(3), atol=1e-12)
            assert np.linalg.det(q) == pytest.approx(1.0)
    assert len(align.candidate_rotations([9, 4, 1], [9, 4, 1])) == 4
    assert len(align.candidate_rotations([9, 8.5, 1], [9, 4, 1])) == 24


def test_sign_ambiguity_is_resolved_by_image_similarity():
    """An asymmetric object turned by 180 degrees about its long axis (plus 20 degrees about
    another): the eigenvectors alone cannot tell, the patch comparison must."""
    from cochleaai.landmarks.detect import ranked_starts

    grid = Volume.empty((56, 56, 56), 0.5, (-14, -14, -14))
    centres = np.array([[-5.0, 0, 0], [0.0, 0, 0], [5.0, 0, 0], [4.0, 2.5, 0.0], [-4.0, 0.0, 1.5]])
    radii = [2.2, 2.6, 1.8, 1.2, 1.0]
    ref, ref_mask = blobs(grid, centres, radii)
    c_ref, ax_ref, val_ref = align.mask_frame(ref, ref_mask)
    true_R = _rotation((0, 0, 1), 20) @ _rotation(ax_ref[:, 0], 180)
    moved = (centres - c_ref) @ true_R.T + c_ref + [1.0, -0.5, 0.5]
    tgt, tgt_mask = blobs(grid, moved, radii)
    c_t, ax_t, val_t = align.mask_frame(tgt, tgt_mask)
    n, h = 40, 0.5
    ref_patch = patches.sample_patch(patches.as_sitk(ref), c_ref, ax_ref, n, h, -1000.0)
    model = SimpleNamespace(patch=ref_patch.array, patch_volume=ref_patch.copy, window=patches.DEFAULT_WINDOW,
                            centre=c_ref, axes=ax_ref, eigenvalues=val_ref, mirror=False)
    ranked = ranked_starts(model, patches.as_sitk(tgt), c_t, ax_t, val_t)[1:]      # after the pose prior
    scores = [r[0] for r in ranked]
    matrix = np.array(ranked[0][1].GetMatrix()).reshape(3, 3)
    angle = np.degrees(np.arccos(np.clip((np.trace(matrix.T @ true_R) - 1) / 2, -1, 1)))
    assert angle < 3.0, f"chose a rotation {angle:.1f} degrees from the truth (scores {scores})"
    assert scores[0] > 0.9 and scores[1] < scores[0] - 0.02


# -------------------------------------------------------------------------- localisation
class _Threshold(torch.nn.Module):
    """A stand-in 'network': logit = 20 x (normalised intensity - 0), i.e. bone -> structure."""

    def forward(self, x):
        return 20.0 * x


def test_iterative_centre_of_mass_finds_a_ball_far_from_the_image_centre():
    grid = Volume.empty((60, 70, 80), 0.4, (-16, -14, -12))
    true_centre = np.array([7.0, -6.0, 5.5])
    image, _ = blobs(grid, [true_centre], [2.0])
    model = SimpleNamespace(net=_Threshold(), slice_size=32, slice_spacing=0.4,
                            window=patches.DEFAULT_WINDOW, structure="ball")
    loc = localise.localise(model, patches.as_sitk(image), image, global_pass=False)
    # 32 x 0.4 mm cubes from the image centre see only part of the ball at first
    assert loc.converged and loc.iterations >= 2
    np.testing.assert_allclose(loc.centre, true_centre, atol=0.1)
    blank = grid.copy(np.full(grid.shape, -1000.0, np.float32))
    with pytest.raises(localise.StructureNotFound):
        localise.localise(model, patches.as_sitk(blank), blank)


# --------------------------------------------------------------------------- training
def test_training_lowers_the_validation_loss_and_round_trips(tmp_path):
    ref, ref_mask, lm, val, val_mask = tiny_case()
    before = [a.copy() for a in (ref.array, ref_mask, lm.points, val.array, val_mask)]
    fractions = []
    model = train_oneshot(ref, ref_mask, lm, val, val_mask, TINY, seed=1,
                          progress=lambda f, m: fractions.append(f))
    for a, b in zip(before, (ref.array, ref_mask, lm.points, val.array, val_mask)):
        np.testing.assert_array_equal(a, b)                                  # inputs untouched
    hist = model.card["training"]["history_step_train_val"]
    assert hist[0][0] == 0                                                   # the untrained start
    assert model.card["training"]["best_validation_bce"] < 0.8 * hist[0][2]
    assert fractions[-1] == 1.0 and all(b >= a for a, b in zip(fractions, fractions[1:]))
    # the reference frame: the network's product map, else (undertrained) the mask's
    mask_centre = ref.index_to_physical(np.argwhere(ref_mask)[:, ::-1].mean(0))
    assert np.linalg.norm(model.centre - mask_centre) < 1.0
    pt = model_io.save_model(model, tmp_path / "tiny")
    card = json.loads(pt.with_suffix(".json").read_text())
    assert card["sha256"] == sha256_of(pt) and card["reference"]["landmark_labels"] == ["top", "knob"]
    again = model_io.load_model(pt)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again.net(x), model.net.eval()(x))
    np.testing.assert_array_equal(again.patch, model.patch)
    # a damaged weights file is refused
    data = bytearray(pt.read_bytes())
    data[-10] ^= 0xFF
    pt.write_bytes(bytes(data))
    with pytest.raises(CochleaAIError, match="checksum"):
        model_io.load_model(pt)


def test_training_can_be_cancelled():
    ref, ref_mask, lm, val, val_mask = tiny_case()

    def stop(fraction, message):
        if fraction > 0.0:
            raise Cancelled("test")
    with pytest.raises(Cancelled):
        train_oneshot(ref, ref_mask, lm, val, val_mask, TINY, progress=stop)


def test_training_refuses_bad_input():
    ref, ref_mask, lm, val, val_mask = tiny_case()
    cases = [
        dict(reference_mask=np.zeros_like(ref_mask)),                              # empty mask
        dict(landmarks=Markups(np.array([[50.0, 0, 0]]), ["far"])),                # outside the image
        dict(landmarks=Markups(np.zeros((0, 3)), [])),                             # no landmarks
        dict(reference=ref.copy(np.where(ref_mask, np.nan, ref.array).astype(np.float32))),  # NaN
        dict(reference=Volume(np.zeros((1, 40, 40), np.float32))),                 # a 2D image
        dict(reference=ref.copy(ref.array.astype(np.complex64))),                  # wrong pixel type
        dict(validation_mask=np.zeros((3, 3, 3), bool)),                           # wrong grid
    ]
    base = dict(reference=ref, reference_mask=ref_mask, landmarks=lm, validation=val, validation_mask=val_mask)
    for case in cases:
        args = {**base, **case}
        with pytest.raises(CochleaAIError):
            train_oneshot(args["reference"], args["reference_mask"], args["landmarks"], args["validation"],
                          args["validation_mask"], TINY)


def test_missing_or_broken_model_files(tmp_path):
    with pytest.raises(CochleaAIError, match="does not exist"):
        model_io.load_model(tmp_path / "none.pt")
    (tmp_path / "lonely.pt").write_bytes(b"not a model")
    with pytest.raises(CochleaAIError, match="card"):
        model_io.load_model(tmp_path / "lonely.pt")
    (tmp_path / "lonely.json").write_text("{not json")
    with pytest.raises(CochleaAIError, match="JSON"):
        model_io.load_model(tmp_path / "lonely.pt")


def test_logic_trains_from_mrml_nodes_and_leaves_the_scene_alone(tmp_path):
    pytest.importorskip("slicer")
    import sys
    from pathlib import Path

    from cochleaai.segments import COCHLEA
    from cochleaai.slicer import mrml

    folder = str(Path(__file__).resolve().parents[3] / "OneShotLandmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    from OneShotLandmarksLib.logic import OneShotLandmarksLogic

    ref, ref_mask, lm, val, val_mask = tiny_case()
    scene = mrml.new_scene()
    ref_node = mrml.volume_to_node(scene, ref, "Reference")
    val_node = mrml.volume_to_node(scene, val, "Validation")
    ref_seg = mrml.segmentation_from_masks(scene, [(COCHLEA, ref_mask)], ref, "Reference seg")
    val_seg = mrml.segmentation_from_masks(scene, [(COCHLEA, val_mask)], val, "Validation seg")
    lm_node = mrml.markups_from_points(scene, lm)
    count = scene.GetNumberOfNodes()
    logic = OneShotLandmarksLogic()
    with pytest.raises(CochleaAIError, match="segment named"):
        logic.train(scene, ref_node, ref_seg, lm_node, val_node, val_seg, segment_name="Stapes", config=TINY)
    model = logic.train(scene, ref_node, ref_seg, lm_node, val_node, val_seg, config=TINY,
                        output_path=tmp_path / "m.pt")
    assert scene.GetNumberOfNodes() == count and logic.model is model
    assert model.labels == ["top", "knob"] and (tmp_path / "m.json").is_file()
    np.testing.assert_allclose(model.landmarks, lm.points, atol=1e-6)


# ------------------------------------------------------------- translation search, refill
#: Four asymmetric blobs (centres, radii in mm) for the registration tests.
_FOUR_BLOBS = (np.array([[-3.0, 0, 0], [0.0, 1.0, 0], [3.0, -1.0, 1.0], [1.0, 2.5, -2.0]]), [1.8, 1.5, 1.2, 1.0])


def _shifted_blobs(grid, shift):
    """The four blobs on ``grid``, their mask, and the same blobs moved by ``shift``."""
    centres, radii = _FOUR_BLOBS
    ref, mask = blobs(grid, centres, radii)
    return ref, mask, blobs(grid, centres + shift, radii)[0]


def test_the_translation_search_recovers_a_shift_beyond_the_rigid_capture_range():
    """The same blobs 4 mm away from where the start pose puts them: the FFT search finds
    the shift to within its grid (0.6 mm) and scores the match near 1."""
    import SimpleITK as sitk

    from cochleaai.landmarks.register import search_translation

    grid = Volume.empty((70, 70, 70), 0.4, (-14, -14, -14))
    shift = np.array([4.0, -2.5, 3.0])
    ref, _, tgt = _shifted_blobs(grid, shift)
    centres, radii = _FOUR_BLOBS
    fixed = patches.sample_patch(patches.as_sitk(ref), np.zeros(3), np.eye(3), 36, 0.3, -1000.0)
    norm = lambda v: v.copy(patches.normalise(v.array))  # noqa: E731
    start = sitk.Euler3DTransform()
    pose, score = search_translation(norm(fixed), norm(tgt).to_sitk(), start, search_mm=6.0)
    np.testing.assert_allclose(pose.GetTranslation(), shift, atol=0.61)
    assert score > 0.85
    # with the rotation part of a start pose, the found shift is taken along the turned axes
    R = _rotation((0, 0, 1), 90)
    turned, _ = blobs(grid, centres @ R.T + shift, radii)
    start = sitk.Euler3DTransform()
    start.SetMatrix([float(v) for v in R.reshape(-1)])
    start.SetTranslation([float(v) for v in shift + [1.5, 1.0, -1.0]])     # 2 mm off
    pose, score = search_translation(norm(fixed), norm(turned).to_sitk(), start, search_mm=6.0)
    np.testing.assert_allclose(pose.GetTranslation(), shift, atol=0.61)
    assert score > 0.85


def _blob_pair_model():
    """A reference patch of asymmetric blobs, and a target holding them shifted by 1.5 mm."""
    import SimpleITK as sitk

    grid = Volume.empty((56, 56, 56), 0.4, (-11, -11, -11))
    shift = np.array([1.5, -1.0, 0.5])
    ref, ref_mask, tgt = _shifted_blobs(grid, shift)
    n, h = 40, 0.3
    patch = patches.sample_patch(patches.as_sitk(ref), np.zeros(3), np.eye(3), n, h, -1000.0)
    mask = patches.sample_patch(patches.as_sitk(ref.copy(ref_mask.astype(np.float32))), np.zeros(3), np.eye(3),
                                n, h, 0.0).array > 0.5
    model = SimpleNamespace(patch=patch.array, patch_volume=patch.copy, window=patches.DEFAULT_WINDOW,
                            patch_mask=mask, patch_spacing=h)
    truth = sitk.Euler3DTransform()
    truth.SetTranslation([float(v) for v in shift])
    wrong = sitk.Euler3DTransform()
    wrong.SetRotation(0.0, 0.0, float(np.pi))       # a half turn: converges elsewhere
    return model, patches.as_sitk(tgt), truth, wrong, shift


def test_an_inadmissible_pose_loses_to_an_admissible_one_whatever_the_match():
    from cochleaai.landmarks.register import register_patch

    model, target, truth, wrong, shift = _blob_pair_model()
    best = register_patch(model, target, [wrong, truth], deformable=False)
    np.testing.assert_allclose(best.rigid.GetTranslation(), shift, atol=0.2)
    assert best.start == 1 and best.admissible and best.ncc_before > 0.9
    # the right pose declared inadmissible (as if it put a landmark out of the image)
    near_truth = lambda pose: np.linalg.norm(np.subtract(pose.GetTranslation(), shift)) < 0.5  # noqa: E731
    other = register_patch(model, target, [wrong, truth], deformable=False, admissible=lambda p: not near_truth(p))
    assert other.start == 0 and other.admissible and other.ncc_before < best.ncc_before
    # nothing admissible: the best match is kept and says so
    none = register_patch(model, target, [wrong, truth], deformable=False, admissible=lambda p: False)
    assert none.start == 1 and not none.admissible


def test_screening_many_starts_keeps_the_right_one():
    import SimpleITK as sitk

    from cochleaai.landmarks.register import register_patch

    model, target, truth, wrong, shift = _blob_pair_model()
    starts = []
    for k, angle in enumerate((0.5 * np.pi, np.pi, 1.5 * np.pi)):
        tf = sitk.Euler3DTransform()
        tf.SetRotation(float(angle), 0.0, 0.0) if k % 2 else tf.SetRotation(0.0, 0.0, float(angle))
        starts.append(tf)
    starts.insert(2, truth)
    reg = register_patch(model, target, starts, deformable=False, screen=1)
    assert reg.start == 2
    np.testing.assert_allclose(reg.rigid.GetTranslation(), shift, atol=0.2)


def test_retry_starts_leave_out_the_poses_already_tried():
    import SimpleITK as sitk

    from cochleaai.landmarks.detect import _retry_starts

    def pose(x):
        tf = sitk.Euler3DTransform()
        tf.SetTranslation([float(x), 0.0, 0.0])
        return tf

    ranked = [(0.9, pose(0), pose(10), "a"), (0.8, pose(1), pose(11), "b"), (0.7, pose(2), pose(12), "c")]
    names = [n for _, n in _retry_starts(ranked, [pose(0), pose(12)], 10)]
    assert names == ["b", "c", "a without the translation search", "b without the translation search"]
    assert [n for _, n in _retry_starts(ranked, [pose(1.1)], 10, search_only=True)] == ["a", "c"]
    assert len(_retry_starts(ranked, [], 2)) == 2


def test_refilling_the_structure_turns_a_drained_lumen_into_a_fluid_filled_one():
    """A drained lumen (-750 HU) in bone: the refill map changes its core to the drawn
    grey value, leaves the bone away from it alone and keeps a smooth edge."""
    from cochleaai.landmarks.patches import sample_patch
    from cochleaai.landmarks.training import _fill_map

    grid = Volume.empty((40, 40, 40), 0.2, (-4, -4, -4))
    pts = grid.physical_grid()
    r = np.linalg.norm(pts, axis=-1)
    mask = r <= 2.0
    image = grid.copy(np.where(mask, -750.0, 1800.0).astype(np.float32))
    before = image.array.copy()
    fill, lumen = _fill_map(image, mask)
    np.testing.assert_array_equal(image.array, before)
    assert lumen == pytest.approx(-750.0)
    soft = sample_patch(fill, grid.center, grid.direction, 40, 0.2, 0.0).array
    refilled = image.array + (200.0 - lumen) * soft
    assert np.median(refilled[r <= 1.0]) == pytest.approx(200.0, abs=5.0)
    np.testing.assert_allclose(refilled[r >= 3.5], 1800.0, atol=1.0)
    edge = refilled[(r > 1.9) & (r < 2.1)]
    assert 200.0 < edge.mean() < 1800.0                                 # partial volume kept
