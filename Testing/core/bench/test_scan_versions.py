"""Development scans re-imaged as other scanners (cochleaai.bench.scan_versions): analytic cases."""
import numpy as np

from cochleaai.bench.scan_versions import VERSIONS, ScanVersion, blur_and_sample, degrade, label_through_grid
from cochleaai.volume import Volume


def ball(radius_mm=3.0, spacing=0.1, size=80):
    v = Volume.empty((size, size, size), spacing, origin=(0, 0, 0))
    centre = np.full(3, (size - 1) * spacing / 2)
    inside = np.linalg.norm(v.physical_grid() - centre, axis=-1) <= radius_mm
    return v.copy(inside.astype(np.uint8)), centre


def test_a_version_has_its_voxels_grey_map_and_shading_and_leaves_the_input_alone():
    ct = Volume.empty((40, 50, 60), (0.15, 0.15, 0.2), origin=(1, 2, 3)).copy(np.full((40, 50, 60), 1000.0, np.float32))
    before = ct.array.copy()
    version = ScanVersion("test", (0.3, 0.3, 0.6), noise=10.0, grey_scale=0.5, grey_offset=100.0, shading=200.0)
    out = degrade(ct, version, np.random.default_rng(0))
    assert np.array_equal(ct.array, before)
    assert np.allclose(out.spacing, (0.3, 0.3, 0.6))
    assert np.allclose(out.size * out.spacing, ct.size * ct.spacing, atol=0.6)     # the same field of view
    # a uniform 1000 HU: 0.5 * 1000 + 100 on average, the ramp rising by 200 along x
    assert abs(out.array.mean() - 600.0) < 2.0
    left, right = out.array[..., 0].mean(), out.array[..., -1].mean()
    assert abs((right - left) - 200.0) < 5.0
    assert abs(np.std(out.array[..., out.shape[2] // 2]) - 10.0) < 1.0            # the noise, one column


def test_blur_keeps_a_uniform_image_and_the_ceiling_keeps_a_ball():
    flat = Volume.empty((30, 30, 30), 0.1).copy(np.full((30, 30, 30), 7.0, np.float32))
    assert np.allclose(blur_and_sample(flat, (0.5, 0.5, 0.5)).array, 7.0, atol=1e-4)
    mask, _ = ball()
    for spacing, tol in (((0.25,) * 3, 0.05), ((0.5,) * 3, 0.1)):
        seen = label_through_grid(mask, spacing)
        volume = seen.array.sum() * np.prod(seen.spacing)
        assert abs(volume / (4 / 3 * np.pi * 27.0) - 1) < tol
        assert set(np.unique(seen.array)) <= {0, 1}


def test_the_benchmark_runs_clinical_and_cone_beam_versions():
    names = [v.name for v in VERSIONS]
    assert [tuple(v.spacing_mm) for v in VERSIONS] == [(0.3, 0.3, 0.6), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)]
    cone = VERSIONS[names.index("cone-beam-like 0.25 mm")]
    assert cone.grey_scale != 1.0 and cone.shading > 0 and all(v.noise > 0 for v in VERSIONS)
