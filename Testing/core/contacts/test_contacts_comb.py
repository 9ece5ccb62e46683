"""Contacts of a fine-pitch array set at its pitch along its metal (cochleaai.contacts.comb)."""
import numpy as np
import pytest

from cochleaai.contacts.detect import detect_contacts
from cochleaai.errors import CochleaAIError
from cochleaai.simulation.arrays import get_array
from cochleaai.volume import Volume


def _spiral_array(n_contacts=14, pitch=0.9, tip_offset=0.3, blur_mm=0.3):
    """A saturated plateau along a planar spiral: contact bands every ``pitch`` from the tip,
    blurred and clipped to 3071 HU as platinum is; returns the volume, its mask and the true
    contact centres (contact 1 = most apical)."""
    from scipy.ndimage import gaussian_filter

    sp = 0.2
    vol = Volume.empty((14, 70, 70), sp, origin=(-6.9, -6.9, -1.3))
    # the spiral's radius grows from 2.2 mm at the tip outwards; arc length from the tip
    t = np.linspace(0.0, 2.6 * np.pi, 4000)
    r = 2.2 + 0.35 * t
    path = np.stack([r * np.cos(t), r * np.sin(t), np.zeros_like(t)], 1)
    # the lead leaves the field of view straight along the spiral's last tangent
    tangent = (path[-1] - path[-2]) / np.linalg.norm(path[-1] - path[-2])
    path = np.concatenate([path, path[-1] + np.arange(0.01, 6.0, 0.01)[:, None] * tangent])
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    u = tip_offset + pitch * np.arange(n_contacts)
    centres = np.stack([np.interp(u, s, path[:, a]) for a in range(3)], 1)
    grid = vol.physical_grid().reshape(-1, 3)
    from scipy.spatial import cKDTree

    d, i = cKDTree(path).query(grid)
    along = s[i]
    on_band = (d <= 0.25) & (np.min(np.abs(along[:, None] - u[None, :]), axis=1) <= 0.15)
    on_wire = (d <= 0.1) & (along >= u[0])
    metal = (60000.0 * on_band + 30000.0 * on_wire).reshape(vol.shape).astype(np.float32)
    img = np.minimum(gaussian_filter(metal, blur_mm / sp) + 40.0, 3071.0)
    return vol.copy(img.astype(np.float32)), img >= 3000.0, centres


def test_fine_pitch_contacts_are_set_at_the_pitch_along_the_plateau():
    vol, mask, truth = _spiral_array()
    before = vol.array.copy()
    # the comb itself; the refiner, learned on simulated CT, is tested apart
    found = detect_contacts(vol, mask, array="slim22", max_contacts=len(truth), refiner=None)
    assert np.array_equal(vol.array, before)                     # the input is not modified
    assert len(found) == len(truth)
    d = np.linalg.norm(found.points - truth, axis=1)             # numbered from the apex
    assert np.median(d) < 0.15 and d[1:].max() < 0.25, d
    # the first contact's distance from the metal's end is set for the simulator's blooming,
    # which this blur exceeds; the deep spots correct the rest
    assert d[0] < 0.45, d
    assert found.labels[0] == "E1"


def test_the_comb_beats_the_deep_spots_on_a_plateau():
    from scipy.spatial import cKDTree

    vol, mask, truth = _spiral_array()
    comb = cKDTree(detect_contacts(vol, mask, array="slim22", max_contacts=len(truth)).points).query(truth)[0]
    spots = cKDTree(detect_contacts(vol, mask, max_contacts=len(truth)).points).query(truth)[0]
    assert np.percentile(comb, 95) < np.percentile(spots, 95)


def test_a_wide_pitch_array_keeps_the_deep_spots_and_a_speck_falls_back():
    vol, mask, truth = _spiral_array()
    spots = detect_contacts(vol, mask, max_contacts=len(truth)).points
    wide = detect_contacts(vol, mask, array="flex28", max_contacts=len(truth)).points
    assert np.allclose(spots, wide)
    speck = np.zeros(vol.shape, bool)
    speck[7, 35, 35] = True
    assert len(detect_contacts(vol, speck, array=get_array("slim22"))) == 1


def test_bad_input_is_refused():
    vol, mask, _ = _spiral_array()
    with pytest.raises(CochleaAIError):
        detect_contacts(vol, mask[:-1], array="slim22")
    with pytest.raises(CochleaAIError):
        detect_contacts(vol, mask, array="no-such-array")
