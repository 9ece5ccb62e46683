"""MARGAN's reach: the gain of its correction by distance from the metal (cochleaai.mar.margan.reach)."""
from __future__ import annotations

import numpy as np

from cochleaai.mar.margan.reach import MIN_VOXELS, band_gains, error_by_distance, reach_weight
from cochleaai.metrics import distance_from_mask

SPACING = (0.2, 0.2, 0.2)


def _case(rng, far_error: float):
    """A rod of metal; the true artifact fades with distance. The "network" removes it exactly
    within 2 mm and elsewhere adds an error of its own, ``far_error`` HU of noise."""
    metal = np.zeros((40, 60, 60), bool)
    metal[:, 29:31, 29:31] = True
    d = distance_from_mask(metal, SPACING)
    target = rng.normal(0.0, 50.0, metal.shape)
    artifact = 400.0 * np.exp(-d / 1.0)
    image = target + artifact
    output = np.where(d <= 2.0, target, image - artifact + rng.normal(0.0, far_error, metal.shape))
    return image, output, target, metal


def test_the_gain_is_one_where_the_correction_is_right_and_falls_where_it_only_adds_error():
    rng = np.random.default_rng(0)
    table = error_by_distance([_case(rng, 30.0) for _ in range(2)], SPACING)
    near = [r for r in table if r["hi"] <= 2.0]
    far = [r for r in table if r["lo"] >= 4.0 and r["voxels"] >= MIN_VOXELS]
    assert near and far
    assert all(r["gain"] == 1.0 and r["with_gain"] == r["output"] < r["input"] for r in near)
    # far away the artifact is e^-4 x 400 HU or less: the noise the network adds outweighs it
    assert all(r["gain"] < 0.3 for r in far)
    # with its gain no band ends up farther from the target than the input
    assert all(r["with_gain"] <= r["input"] + 0.05 for r in table if r["voxels"])
    # least squares: the chosen gain beats its neighbours in every band
    for r in far[:2]:
        assert r["with_gain"] < r["output"]


def test_the_weight_interpolates_the_gains_and_is_one_inside_the_metal():
    metal = np.zeros((5, 21, 21), bool)
    metal[:, 10, 10] = True
    gains = band_gains([{"lo": 0.0, "hi": 1.0, "voxels": MIN_VOXELS, "gain": 1.0},
                        {"lo": 1.0, "hi": 2.0, "voxels": MIN_VOXELS - 1, "gain": 0.0},      # too few voxels
                        {"lo": 2.0, "hi": 3.0, "voxels": MIN_VOXELS, "gain": 0.2},
                        {"lo": 3.0, "hi": 1e9, "voxels": MIN_VOXELS, "gain": 0.0}])
    assert gains == [[0.5, 1.0], [2.5, 0.2], [3.0, 0.0]]
    w = reach_weight(metal, SPACING, gains)
    assert np.all(w[metal] == 1.0)
    d = distance_from_mask(metal, SPACING)
    np.testing.assert_allclose(w[d == 1.0], 1.0 - 0.8 * (1.0 - 0.5) / 2.0, atol=1e-6)
    np.testing.assert_allclose(w[(d > 0) & (d <= 0.5)], 1.0)
    assert np.all(w[d >= 3.0] == 0.0)
