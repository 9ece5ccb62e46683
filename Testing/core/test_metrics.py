"""Known-answer tests for cochleaai.metrics."""
import warnings

import numpy as np
import pytest

from cochleaai import CochleaAIError, Volume
from cochleaai import metrics as M


# ------------------------------------------------------------------------ fixtures
def cube(shape, start, size):
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(s, s + n) for s, n in zip(start, size))] = True
    return m


def ball(shape_zyx, spacing_xyz, center_xyz, radius):
    """Voxels whose centre lies within ``radius`` mm of a point (array is z, y, x)."""
    sx, sy, sz = spacing_xyz
    nz, ny, nx = shape_zyx
    z, y, x = np.meshgrid(np.arange(nz) * sz, np.arange(ny) * sy, np.arange(nx) * sx,
                          indexing="ij")
    cx, cy, cz = center_xyz
    return (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius ** 2


def spheres(spacing=(0.5, 0.8, 1.25), r1=4.0, r2=7.0, extent=20.0):
    shape = tuple(int(round(extent / s)) + 1 for s in spacing[::-1])
    c = (extent / 2,) * 3
    return ball(shape, spacing, c, r1), ball(shape, spacing, c, r2), spacing


# --------------------------------------------------------------------------- Dice
def test_dice_offset_cubes_analytic():
    a = cube((20, 20, 20), (2, 2, 2), (10, 10, 10))
    b = cube((20, 20, 20), (4, 5, 2), (10, 10, 10))  # shifted by (2, 3, 0) voxels
    overlap = (10 - 2) * (10 - 3) * 10
    assert M.dice(a, b) == pytest.approx(2 * overlap / 2000)
    assert M.dice(a, a) == 1.0
    assert M.dice(a, ~a) == 0.0


def test_dice_label_and_empty():
    lab_a = np.zeros((6, 6, 6), np.uint8)
    lab_b = np.zeros((6, 6, 6), np.uint8)
    lab_a[1:3] = 1
    lab_b[1:3] = 1
    lab_a[4:6, :3] = 2
    lab_b[4:6, 3:] = 2
    assert M.dice(lab_a, lab_b, label=1) == 1.0
    assert M.dice(lab_a, lab_b, label=2) == 0.0
    assert M.dice(lab_a, lab_b) == pytest.approx(2 * 72 / (108 + 108))
    assert M.dice(lab_a, lab_b, label=7) == 1.0  # both empty
    assert M.dice(np.zeros((3, 3, 3)), np.zeros((3, 3, 3))) == 1.0


def test_dice_shape_mismatch_and_volumes():
    with pytest.raises(CochleaAIError, match="shape"):
        M.dice(np.ones((3, 3, 3)), np.ones((3, 3, 4)))
    a = Volume(cube((5, 5, 5), (1, 1, 1), (2, 2, 2)).astype(np.uint8), spacing=(1, 1, 2))
    assert M.dice(a, a.copy()) == 1.0
    moved = Volume(a.array, spacing=(1, 1, 2), origin=(5, 0, 0))
    with pytest.raises(CochleaAIError, match="different grids"):
        M.dice(a, moved)


# ----------------------------------------------------------------- surface distances
def test_directed_distance_respects_axis_order_of_spacing():
    # array axes are (z, y, x); spacing is (sx, sy, sz)
    a = np.zeros((8, 8, 8), bool)
    b = np.zeros((8, 8, 8), bool)
    a[1, 1, 1] = True
    b[1, 1, 4] = True  # 3 voxels along x
    assert M.hausdorff(a, b, spacing=(0.5, 1.0, 2.0)) == pytest.approx(1.5)
    b[:] = False
    b[3, 1, 1] = True  # 2 voxels along z
    assert M.hausdorff(a, b, spacing=(0.5, 1.0, 2.0)) == pytest.approx(4.0)
    vol_a = Volume(a.astype(np.uint8), spacing=(0.5, 1.0, 2.0))
    vol_b = Volume(b.astype(np.uint8), spacing=(0.5, 1.0, 2.0))
    assert M.hausdorff(vol_a, vol_b) == pytest.approx(4.0)
    assert M.hausdorff(vol_a, b) == pytest.approx(4.0)  # spacing from the Volume


def test_hausdorff_concentric_spheres_anisotropic():
    inner, outer, spacing = spheres()
    tol = max(spacing)
    hd = M.hausdorff(inner, outer, spacing)
    assert abs(hd - 3.0) <= tol
    assert M.hausdorff(outer, inner, spacing) == pytest.approx(hd)  # symmetric
    hd95 = M.hausdorff95(inner, outer, spacing)
    assert hd95 <= hd + 1e-12
    assert abs(hd95 - 3.0) <= tol
    msd = M.mean_surface_distance(inner, outer, spacing)
    assert abs(msd - 3.0) <= tol
    # wrong (reversed) spacing gives a clearly different answer: spacing really is used
    assert abs(M.hausdorff(inner, outer, spacing[::-1]) - 3.0) > tol


def test_surface_distances_shape_and_identity():
    inner, outer, spacing = spheres()
    d_ab, d_ba = M.surface_distances(inner, outer, spacing)
    assert d_ab.ndim == d_ba.ndim == 1 and d_ab.size > 0 and d_ba.size > d_ab.size
    assert M.mean_surface_distance(outer, outer, spacing) == 0.0
    assert M.hausdorff(outer, outer.copy(), spacing) == 0.0


def test_surface_distance_empty_masks():
    empty = np.zeros((6, 6, 6), bool)
    full = cube((6, 6, 6), (1, 1, 1), (3, 3, 3))
    assert M.hausdorff(empty, empty) == 0.0
    assert M.mean_surface_distance(empty, empty, 0.5) == 0.0
    with pytest.warns(RuntimeWarning, match="empty"):
        assert M.hausdorff(full, empty) == np.inf
    with pytest.warns(RuntimeWarning, match="empty"):
        assert M.mean_surface_distance(empty, full) == np.inf


def test_surface_distance_label_and_bad_spacing():
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[2:5, 2:5, 2:5] = 3
    other = np.zeros_like(lab)
    other[2:5, 2:5, 4:7] = 3
    assert M.hausdorff(lab, other, 1.0, label=3) == pytest.approx(2.0)
    with pytest.raises(CochleaAIError, match="spacing"):
        M.hausdorff(lab, other, spacing=(1.0, 1.0))
    with pytest.raises(CochleaAIError, match="spacing"):
        M.hausdorff(lab, other, spacing=(1.0, -1.0, 1.0))
    vol = Volume(lab, spacing=(1, 1, 2))
    with pytest.raises(CochleaAIError, match="disagrees"):
        M.hausdorff(vol, other, spacing=(1, 1, 1))
    with pytest.raises(CochleaAIError, match="percentile"):
        M.hausdorff(lab, other, percentile=120)


# ---------------------------------------------------------------- image fidelity
def test_psnr_known_mse():
    rng = np.random.default_rng(0)
    ref = rng.uniform(0, 100, size=(8, 8, 8))
    ref[0, 0, 0], ref[-1, -1, -1] = 0.0, 100.0  # range exactly 100
    signs = np.where(rng.random(ref.shape) < 0.5, -1.0, 1.0)
    test = ref + 2.0 * signs  # MSE = 4
    assert M.psnr(ref, test) == pytest.approx(10 * np.log10(100.0 ** 2 / 4.0))
    assert M.psnr(ref, test, data_range=4096) == pytest.approx(10 * np.log10(4096.0 ** 2 / 4.0))
    assert M.psnr(ref, ref) == np.inf
    with pytest.raises(CochleaAIError, match="constant"):
        M.psnr(np.ones((4, 4, 4)), np.zeros((4, 4, 4)))
    with pytest.raises(CochleaAIError, match="data_range"):
        M.psnr(ref, test, data_range=0)


def test_ssim_identity_and_noise():
    rng = np.random.default_rng(1)
    z, y, x = np.mgrid[0:16, 0:16, 0:16]
    ref = 1000.0 * np.sin(x / 3.0) * np.cos(y / 4.0) + 200.0 * z  # smooth HU-like image
    assert M.ssim(ref, ref) == pytest.approx(1.0)
    noisy_little = ref + rng.normal(0, 50, ref.shape)
    noisy_lot = ref + rng.normal(0, 500, ref.shape)
    s1, s2 = M.ssim(ref, noisy_little), M.ssim(ref, noisy_lot)
    assert 1.0 > s1 > s2
    # tiny images: the window shrinks to fit
    small = ref[:5, :5, :5]
    assert M.ssim(small, small) == pytest.approx(1.0)
    with pytest.raises(CochleaAIError, match="3 voxels"):
        M.ssim(ref[:2], ref[:2])


def test_rmse_with_mask():
    ref = np.zeros((6, 6, 6))
    test = np.full((6, 6, 6), 100.0)
    mask = np.zeros((6, 6, 6), bool)
    mask[1:3, 1:3, 1:3] = True
    test[mask] = 3.0
    assert M.rmse(ref, test, mask=mask) == pytest.approx(3.0)
    n_in = mask.sum()
    expected = np.sqrt((n_in * 9 + (216 - n_in) * 100 ** 2) / 216)
    assert M.rmse(ref, test) == pytest.approx(expected)
    with pytest.raises(CochleaAIError, match="empty"):
        M.rmse(ref, test, mask=np.zeros_like(mask))
    with pytest.raises(CochleaAIError, match="shape"):
        M.rmse(ref, test, mask=mask[:3])


# ---------------------------------------------------------------------- landmarks
def test_landmark_errors_345():
    pred = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    truth = np.array([[3.0, 4.0, 0.0], [1.0, 1.0, 13.0]])
    np.testing.assert_allclose(M.landmark_errors(pred, truth), [5.0, 12.0])
    errs = M.landmark_errors({"apex": (0, 0, 0), "rw": (1, 2, 3)},
                             {"rw": (1, 2, 3), "apex": (0, 3, 4)})
    assert errs == {"rw": 0.0, "apex": pytest.approx(5.0)}
    assert list(errs) == ["rw", "apex"]  # truth's order


def test_landmark_errors_bad_input():
    with pytest.raises(CochleaAIError, match="not predicted: \\['rw'\\]"):
        M.landmark_errors({"apex": (0, 0, 0)}, {"apex": (0, 0, 0), "rw": (1, 1, 1)})
    with pytest.raises(CochleaAIError, match="no ground truth for: \\['oval'\\]"):
        M.landmark_errors({"apex": (0, 0, 0), "oval": (1, 1, 1)}, {"apex": (0, 0, 0)})
    with pytest.raises(CochleaAIError, match="same way"):
        M.landmark_errors({"apex": (0, 0, 0)}, np.zeros((1, 3)))
    with pytest.raises(CochleaAIError, match="rows"):
        M.landmark_errors(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(CochleaAIError, match=r"\(N, 3\)"):
        M.landmark_errors(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(CochleaAIError, match="NaN"):
        M.landmark_errors(np.array([[np.nan, 0, 0]]), np.zeros((1, 3)))


def test_landmark_summary():
    s = M.landmark_summary(np.array([1.0, 2.0, 3.0, 10.0]), success_mm=2.0)
    assert set(s) == {"mean", "median", "p95", "max", "success_rate"}
    assert s["mean"] == pytest.approx(4.0)
    assert s["median"] == pytest.approx(2.5)
    assert s["max"] == 10.0
    assert s["p95"] == pytest.approx(np.percentile([1, 2, 3, 10], 95))
    assert s["success_rate"] == pytest.approx(0.5)
    assert M.landmark_summary({"a": 0.5, "b": 5.0})["success_rate"] == 0.5
    with pytest.raises(CochleaAIError):
        M.landmark_summary([])
    with pytest.raises(CochleaAIError):
        M.landmark_summary([1.0, -1.0])


# --------------------------------------------------------------- validation, purity
@pytest.mark.parametrize("fn", [M.dice, M.hausdorff, M.hausdorff95, M.mean_surface_distance,
                                M.psnr, M.ssim, M.rmse])
def test_nan_and_shape_mismatch_raise(fn):
    good = np.ones((8, 8, 8))
    good[0] = 0.0
    bad = good.copy()
    bad[2, 2, 2] = np.nan
    with pytest.raises(CochleaAIError, match="NaN"):
        fn(good, bad)
    with pytest.raises(CochleaAIError, match="NaN"):
        fn(bad, good)
    with pytest.raises(CochleaAIError, match="shape"):
        fn(good, good[:, :, :7])


def test_inputs_unchanged():
    inner, outer, spacing = spheres()
    la, lb = inner.astype(np.int16), outer.astype(np.int16)
    img = np.random.default_rng(2).normal(size=(8, 9, 10))
    img2 = img + 0.1
    mask = img > 0
    pred = np.array([[0.0, 0.0, 0.0]])
    truth_map = {"apex": [3.0, 4.0, 0.0]}
    keep = [a.copy() for a in (la, lb, img, img2, mask, pred)]
    flags = [a.flags.writeable for a in (la, lb, img, img2, mask, pred)]

    M.dice(la, lb)
    M.hausdorff(la, lb, spacing)
    M.mean_surface_distance(la, lb, spacing)
    M.surface_distances(la, lb, spacing)
    M.psnr(img, img2)
    M.ssim(img, img2)
    M.rmse(img, img2, mask=mask)
    M.landmark_errors(pred, pred + 1)
    M.landmark_errors({"apex": pred[0]}, truth_map)

    for before, after in zip(keep, (la, lb, img, img2, mask, pred)):
        np.testing.assert_array_equal(before, after)
        assert before.dtype == after.dtype
    assert flags == [a.flags.writeable for a in (la, lb, img, img2, mask, pred)]
    assert truth_map == {"apex": [3.0, 4.0, 0.0]}


def test_no_warning_for_ordinary_cases():
    inner, outer, spacing = spheres()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        M.hausdorff(inner, outer, spacing)
        M.psnr(inner.astype(float), outer.astype(float))


def test_hausdorff_agrees_with_simpleitk_and_ignores_direction():
    sitk = pytest.importorskip("SimpleITK")
    _, outer, spacing = spheres()
    shifted = np.roll(outer, 3, axis=2)  # 3 voxels along x
    rot = [[0, 1, 0], [0, 0, 1], [1, 0, 0]]
    va = Volume(outer.astype(np.uint8), spacing, direction=rot)
    vb = va.copy(shifted.astype(np.uint8))
    f = sitk.HausdorffDistanceImageFilter()
    f.Execute(va.to_sitk(), vb.to_sitk())
    assert M.hausdorff(va, vb) == pytest.approx(f.GetHausdorffDistance())
    assert M.hausdorff(va, vb) == pytest.approx(3 * spacing[0])
