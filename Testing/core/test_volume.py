"""Volume geometry: index <-> physical, SimpleITK, resampling and cropping on known answers."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from cochleaai import CochleaAIError, Volume
from cochleaai.volume import lps_to_ras, ras_to_lps


def _oblique(shape=(12, 10, 8), spacing=(0.4, 0.5, 0.9)):
    direction = Rotation.from_rotvec([0.2, -0.4, 0.7]).as_matrix()
    return Volume(np.zeros(shape, np.float32), spacing, (10.0, -20.0, 5.0), direction)


def _ramp(volume, coeffs=(1.0, -2.0, 0.5), offset=3.0):
    """Fill a volume with a linear function of the physical position (exact under linear interpolation)."""
    grid = volume.physical_grid()
    return volume.copy((grid @ np.asarray(coeffs) + offset).astype(np.float64))


def test_index_physical_round_trip_and_matrix():
    v = _oblique()
    ijk = np.random.default_rng(0).uniform(-1, 9, (50, 3))
    np.testing.assert_allclose(v.physical_to_index(v.index_to_physical(ijk)), ijk, atol=1e-10)
    m = v.index_to_physical_matrix
    np.testing.assert_allclose(v.index_to_physical(ijk), ijk @ m[:3, :3].T + m[:3, 3], atol=1e-12)
    # voxel (0,0,0) is the origin; one step in i moves by spacing[0] along the first direction column
    np.testing.assert_allclose(v.index_to_physical([0, 0, 0]), v.origin)
    np.testing.assert_allclose(v.index_to_physical([1, 0, 0]) - v.origin, 0.4 * v.direction[:, 0])


def test_sitk_round_trip_keeps_geometry_and_axis_order():
    v = _ramp(_oblique())
    back = Volume.from_sitk(v.to_sitk())
    assert back.same_geometry(v, tol=1e-9)
    np.testing.assert_array_equal(back.array, v.array)
    assert v.to_sitk().GetSize() == v.size == (8, 10, 12)


def test_lps_ras_flip():
    p = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_allclose(lps_to_ras(p), [[-1.0, -2.0, 3.0]])
    np.testing.assert_allclose(ras_to_lps(lps_to_ras(p)), p)


def test_resample_like_is_exact_for_a_linear_field():
    v = _ramp(_oblique((20, 18, 16)))
    target = Volume.empty((6, 5, 4), 0.7, v.center - 1.0)
    out = v.resample_like(target, "linear")
    expected = _ramp(target).array
    np.testing.assert_allclose(out.array, expected, atol=1e-4)


def test_resample_isotropic_keeps_extent_and_centre():
    v = Volume(np.zeros((10, 40, 30), np.float32), (0.3, 0.3, 1.2), (1, 2, 3))
    iso = v.resample_isotropic()
    assert np.allclose(iso.spacing, 0.3)
    assert iso.size == (30, 40, 40)
    np.testing.assert_allclose(iso.center, v.center, atol=1e-6)


def test_crop_mm_centres_the_box_and_samples_the_image():
    v = _ramp(_oblique((30, 30, 30), (0.5, 0.5, 0.5)))
    centre = v.center + np.array([0.5, -0.3, 0.2])
    crop = v.crop_mm(centre, (4.0, 3.0, 2.0))
    assert crop.size == (8, 6, 4)
    np.testing.assert_allclose(crop.center, centre, atol=1e-9)
    np.testing.assert_allclose(crop.array, _ramp(crop).array, atol=1e-4)
    # outside the image: default value
    far = v.crop_mm(v.center + 100.0, (2.0, 2.0, 2.0), default_value=-1000)
    assert np.all(far.array == -1000)


def test_contains():
    v = Volume.empty((4, 4, 4), 1.0)
    assert v.contains([[0, 0, 0], [3, 3, 3]]).all()
    assert not v.contains([[5, 0, 0]]).any()


def test_bad_input_is_refused():
    with pytest.raises(CochleaAIError):
        Volume(np.zeros((4, 4)))
    with pytest.raises(CochleaAIError):
        Volume(np.zeros((2, 2, 2)), spacing=(1, -1, 1))
    with pytest.raises(CochleaAIError):
        Volume(np.zeros((2, 2, 2)), direction=np.ones((3, 3)))
    with pytest.raises(CochleaAIError):
        Volume(np.full((2, 2, 2), np.nan)).check_finite()
    with pytest.raises(CochleaAIError):
        Volume.empty((2, 2, 2), 1.0).resample_like(Volume.empty((2, 2, 2), 1.0), "cubic-ish")


def test_copy_does_not_alias():
    v = _oblique()
    c = v.copy()
    c.array[0, 0, 0] = 7
    c.origin[0] = 99
    assert v.array[0, 0, 0] == 0 and v.origin[0] == 10.0


def test_bspline_crop_reads_only_the_voxels_around_the_box():
    """A B-spline resampling cuts the source down to the box and a margin first: the values
    stay those of the whole-image resampling, and a full clinical CT is not prefiltered whole."""
    import time
    from cochleaai.volume import BSPLINE_MARGIN_VOXELS

    rng = np.random.default_rng(3)
    direction = Rotation.from_rotvec([0.2, -0.1, 0.3]).as_matrix()
    big = Volume(rng.normal(0.0, 500.0, (120, 140, 130)).astype(np.float32), (0.3, 0.25, 0.4),
                 (-10.0, 4.0, 2.0), direction)
    centre = big.center + np.array([1.0, -2.0, 0.5])
    part = big.crop_mm(centre, (6, 5, 7), spacing=0.2, direction=np.eye(3), interpolation="bspline")
    box = Volume.empty(part.shape, part.spacing, part.origin, part.direction)
    cut = big.around(box, BSPLINE_MARGIN_VOXELS)
    assert cut.array.size < 0.05 * big.array.size and np.shares_memory(cut.array, big.array)
    import SimpleITK as sitk
    whole = sitk.GetArrayFromImage(sitk.Resample(big.to_sitk(), box.to_sitk(), sitk.Transform(),
                                                 sitk.sitkBSpline, 0.0))
    assert np.max(np.abs(part.array - whole)) <= 1e-3 * np.ptp(big.array)
    # a box half outside the image: the same values, the outside at the default
    edge = big.crop_mm(big.index_to_physical([0, 0, 0]), (4, 4, 4), spacing=0.2, direction=np.eye(3),
                       interpolation="bspline", default_value=-7.0)
    edge_box = Volume.empty(edge.shape, edge.spacing, edge.origin, edge.direction)
    edge_whole = sitk.GetArrayFromImage(sitk.Resample(big.to_sitk(), edge_box.to_sitk(), sitk.Transform(),
                                                      sitk.sitkBSpline, -7.0))
    assert np.max(np.abs(edge.array - edge_whole)) <= 1e-3 * np.ptp(big.array)
    assert (edge.array == -7.0).any()
    # a full clinical CT: the 13 mm box at 0.2 mm takes well under a second
    ct = Volume(np.zeros((400, 512, 512), np.int16), (0.3, 0.3, 0.3))
    t0 = time.perf_counter()
    ct.crop_mm(ct.center, (13, 13, 13), spacing=0.2, direction=np.eye(3), interpolation="bspline")
    assert time.perf_counter() - t0 < 2.0
