"""Post-ops that keep the real image: the artifact injected into the pre-op, the simulated scan
without the implant beside it, and the measures that say how close a pair is to a real scan."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import real_specimen, requires_real_ct
from scipy import ndimage

from cochleaai import CochleaAIError
from cochleaai.bench.pair_realism import measure_case
from cochleaai.metrics import edge_sharpness, fine_noise_sd
from cochleaai.phantom.core import make_phantom
from cochleaai.simulation.ct import ScanConfig, inject_artifact, simulate_postop
from cochleaai.simulation.pairs import PairSpec, plan_pairs, real_preop, simulate_pair
from cochleaai.simulation.projector import FanBeamGeometry
from cochleaai.volume import Volume

FAST = ScanConfig(geometry=FanBeamGeometry(n_views=360))


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(0, fov="roi")


def test_injection_adds_the_difference_of_the_two_scans_and_clips():
    pre = Volume(np.full((4, 5, 6), 100, np.int16), 0.2)
    without = Volume(np.full((4, 5, 6), 40.0, np.float32), 0.2)
    with_metal = without.copy(without.array.copy())
    with_metal.array[1, 2, 3] = 3040.0                      # +3000: clipped at the scanner's top
    with_metal.array[0, 0, 0] = -2000.0                     # a dark streak, clipped at the bottom
    with_metal.array[2, 2, 2] = 40.4                        # rounds away
    out = inject_artifact(pre, with_metal.copy(with_metal.array - without.array))
    expected = np.full((4, 5, 6), 100, np.int16)
    expected[1, 2, 3], expected[0, 0, 0] = 3071, -1024
    np.testing.assert_array_equal(out.array, expected)
    assert out.array.dtype == np.int16 and out.same_geometry(pre)
    assert (pre.array == 100).all()                          # the input is untouched
    with pytest.raises(CochleaAIError, match="one grid"):
        inject_artifact(pre, Volume(np.zeros((4, 5, 7), np.float32), 0.2))


def test_injected_postop_keeps_the_preop_away_from_the_metal_and_the_artifact_near_it(phantom):
    before = phantom.ct.array.copy()
    injected = simulate_postop(phantom.ct, phantom.model, "flex28", depth_deg=450.0, seed=3, config=FAST)
    simulated = simulate_postop(phantom.ct, phantom.model, "flex28", depth_deg=450.0, seed=3, config=FAST,
                                artifact_mode="simulated")
    np.testing.assert_array_equal(phantom.ct.array, before)
    assert injected.artifact_mode == "injected" and simulated.artifact_mode == "simulated"
    # the same draws: both runs simulate the same scans
    np.testing.assert_array_equal(injected.clean.array, simulated.clean.array)
    artifact_injected = injected.postop.array.astype(np.int32) - before
    artifact_simulated = simulated.postop.array.astype(np.int32) - simulated.clean.array
    unclipped = np.ones(before.shape, bool)
    for image in (injected.postop, simulated.postop, simulated.clean):
        unclipped &= (image.array > -1024) & (image.array < 3071)
    assert unclipped.mean() > 0.9
    assert np.abs(artifact_injected - artifact_simulated)[unclipped].max() <= 2      # rounding only
    # away from the metal the injected post-op is the pre-op, far closer to it than the simulated scan
    far = ndimage.distance_transform_edt(~injected.metal.array.astype(bool), sampling=0.2) > 5.0
    rms = {name: float(np.sqrt(np.mean((sim.postop.array[far].astype(float) - before[far]) ** 2)))
           for name, sim in (("injected", injected), ("simulated", simulated))}
    assert rms["injected"] < 0.25 * rms["simulated"]
    assert (injected.postop.array[injected.metal.array.astype(bool)] >= 3000).mean() > 0.5


def test_simulated_mode_without_the_clean_scan_is_the_old_single_scan(phantom):
    one = simulate_postop(phantom.ct, phantom.model, "flex28", depth_deg=450.0, seed=3, config=FAST,
                          artifact_mode="simulated", clean_scan=False)
    two = simulate_postop(phantom.ct, phantom.model, "flex28", depth_deg=450.0, seed=3, config=FAST,
                          artifact_mode="simulated")
    assert one.clean is None and "scan_without_implant" not in one.seconds
    np.testing.assert_array_equal(one.postop.array, two.postop.array)
    with pytest.raises(CochleaAIError, match="artifact mode"):
        simulate_postop(phantom.ct, phantom.model, "flex28", seed=3, config=FAST, artifact_mode="real")


def test_injected_pairs_train_towards_the_anatomy_itself(phantom):
    target, postop, sim, info = simulate_pair(phantom.ct, phantom.model, 11, {"source": "phantom"},
                                              artifact_mode="injected")
    np.testing.assert_array_equal(target.array, phantom.ct.array)
    assert info["artifact_mode"] == "injected" and postop.same_geometry(target)
    spec = plan_pairs(2, seed=1, artifact_mode="injected")[1]
    assert PairSpec.parse(spec.text()) == spec and spec.artifact_mode == "injected"
    assert PairSpec.parse('{"index": 0, "seed": 1, "source": "phantom:1"}').artifact_mode == "simulated"
    with pytest.raises(CochleaAIError, match="artifact mode"):
        plan_pairs(2, artifact_mode="blurred")


def test_fine_noise_reads_the_noise_and_not_the_edges():
    rng = np.random.default_rng(0)
    step = np.zeros((40, 40, 40))
    step[:, :, 20:] = 2000.0
    noisy = step + rng.normal(0.0, 30.0, step.shape)
    assert fine_noise_sd(step) == 0.0
    assert fine_noise_sd(noisy) == pytest.approx(30.0, rel=0.08)
    # smoothing removes fine noise; a mask restricts the estimate
    assert fine_noise_sd(ndimage.gaussian_filter(noisy, 1.0)) < 0.3 * fine_noise_sd(noisy)
    left = np.zeros(step.shape, bool)
    left[:, :, :15] = True
    assert fine_noise_sd(noisy, left) == pytest.approx(30.0, rel=0.08)
    with pytest.raises(CochleaAIError, match="empty"):
        fine_noise_sd(noisy, np.zeros(step.shape, bool))


def test_edge_sharpness_is_the_steepest_gradient_in_physical_units():
    step = np.zeros((20, 20, 20))
    step[:, :, 10:] = 2000.0
    # central differences spread the 2000 HU step over two samples of the x spacing
    assert edge_sharpness(step, spacing=(0.2, 0.5, 0.5)) == pytest.approx(1000.0 / 0.2)
    assert edge_sharpness(Volume(step.astype(np.float32), (0.4, 0.5, 0.5))) == pytest.approx(1000.0 / 0.4)
    blurred = ndimage.gaussian_filter(step, 1.5)
    assert edge_sharpness(blurred, spacing=0.2) < 0.6 * edge_sharpness(step, spacing=0.2)


@requires_real_ct
def test_on_a_real_scan_injection_keeps_its_noise_and_sharpness():
    """Measured on a real specimen: the simulated scanner halves the fine noise and blurs the
    edges; the injected post-op keeps both within 10 % of the real scan away from the metal."""
    spec = real_specimen("T01")
    preop, theta, _ = real_preop(spec.folder, jitter_mm=0.0)
    f = measure_case(preop, theta, 0, FAST)
    for what in ("noise_sd_far", "sharpness_far"):
        assert abs(f[f"{what}_injected"] / f[f"{what}_preop"] - 1.0) < 0.1
        assert f[f"{what}_clean"] / f[f"{what}_preop"] < 0.75
    assert f["rms_vs_preop_far_injected"] < 0.25 * f["rms_vs_preop_far_simulated"]
    assert f["artifact_rms_near_injected"] == pytest.approx(f["artifact_rms_near_simulated"], rel=0.1)
