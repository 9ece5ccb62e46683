"""Classic metal artifact reduction (LI, NMAR, BHC) and contact detection (cochleaai.simulation)."""
from __future__ import annotations

import numpy as np
import pytest

from cochleaai import CochleaAIError
from cochleaai.contacts.detect import detect_contacts
from cochleaai.mar.classic import interpolate_trace
from cochleaai.mar.dispatch import reduce_metal_artifacts
from cochleaai.mar.methods import METHODS
from cochleaai.volume import Volume


def test_trace_interpolation_is_linear_and_keeps_clean_samples():
    rows = np.array([[0.0, 1.0, 9.0, 9.0, 4.0, 5.0], [7.0, 7.0, 1.0, 2.0, 3.0, 4.0]], np.float32)
    trace = np.array([[False, False, True, True, False, False], [True, True, False, False, False, False]])
    out = interpolate_trace(rows, trace)
    np.testing.assert_allclose(out[0], [0, 1, 2, 3, 4, 5])
    np.testing.assert_allclose(out[1], [1, 1, 1, 2, 3, 4])          # nearest clean value at the edge


def _water_with_metal(metal=True):
    """A water cylinder in air with a 0.6 mm metal rod (the post-op image of a bare rod)."""
    n, sp = 48, 0.25
    y, x = (np.mgrid[0:n, 0:n] - (n - 1) / 2) * sp
    hu = np.where(np.hypot(x, y) < 5.0, 0.0, -1000.0)
    hu = np.repeat(hu[None], 6, 0).astype(np.float32)
    rod = np.zeros_like(hu, bool)
    if metal:
        rod[1:5] = np.hypot(x - 1.0, y + 0.5) < 0.3
        hu[rod] = 3071.0
    return Volume(hu, sp), rod


@pytest.mark.parametrize("method", sorted(METHODS))
def test_no_metal_is_the_identity(method):
    vol, _ = _water_with_metal(metal=False)
    before = vol.array.copy()
    res = reduce_metal_artifacts(vol, method)
    np.testing.assert_array_equal(res.image.array, before)
    assert not res.has_metal and "No metal" in res.messages[-1]
    np.testing.assert_array_equal(vol.array, before)


@pytest.mark.parametrize("method", ["li", "nmar"])
def test_inpainting_removes_the_metal_from_the_sinogram(method):
    """Around a bare rod in water the inpainted image is water again: the rod's own
    projection is what the trace repair removes, so nothing of it may spread around."""
    vol, rod = _water_with_metal()
    before = vol.array.copy()
    res = reduce_metal_artifacts(vol, method)
    np.testing.assert_array_equal(vol.array, before)
    img = res.image.array
    np.testing.assert_array_equal(img[rod], 3071.0)               # metal put back
    from scipy.ndimage import binary_dilation

    near = binary_dilation(rod, iterations=4) & ~binary_dilation(rod, iterations=1)
    n, sp = vol.shape[1], vol.spacing[0]
    y, x = (np.mgrid[0:n, 0:n] - (n - 1) / 2) * sp
    near &= np.hypot(x, y)[None] < 4.0
    assert near.sum() > 50
    assert np.abs(img[near]).mean() < 60.0
    np.testing.assert_array_equal(img[0], before[0])               # slices without metal untouched


def test_bhc_fits_a_path_length_polynomial():
    vol, rod = _water_with_metal()
    res = reduce_metal_artifacts(vol, "bhc")
    assert any("polynomial" in m for m in res.messages)
    assert np.all(np.isfinite(res.image.array))


def test_bad_requests():
    vol, rod = _water_with_metal()
    with pytest.raises(CochleaAIError, match="Unknown MAR method"):
        reduce_metal_artifacts(vol, "gan")
    bad = vol.copy()
    bad.array[0, 0, 0] = np.nan
    with pytest.raises(CochleaAIError, match="NaN"):
        reduce_metal_artifacts(bad)
    # a ROI that cuts through the rod
    with pytest.raises(CochleaAIError, match="border of the chosen ROI"):
        reduce_metal_artifacts(vol, roi=((0, 4), (0, 48), (0, 48)))
    res = reduce_metal_artifacts(vol, roi=((0, 6), (8, 40), (8, 40)))
    np.testing.assert_array_equal(res.image.array[:, :8], vol.array[:, :8])
    with pytest.raises(CochleaAIError):
        reduce_metal_artifacts(Volume(np.zeros((1, 5, 5), np.float32)))


def test_a_saturated_contact_is_found_at_the_centre_of_its_plateau():
    """Blooming clipped at the top of the CT scale (3071 HU), on a bone ramp: the plateau is
    flat, so its brightest voxel says nothing, but its deepest point is the contact."""
    from scipy.ndimage import gaussian_filter

    n, sp = 32, 0.2
    vol = Volume.empty((n, n, n), sp, origin=(-(n - 1) * sp / 2,) * 3)
    grid = vol.physical_grid()
    centre = np.array([0.13, -0.27, 0.09])
    metal = (np.linalg.norm(grid - centre, axis=-1) <= 0.25).astype(np.float32)
    bloom = gaussian_filter(metal, 2.0) * 4.0e5
    ramp = 800.0 + 300.0 * grid[..., 0]                  # denser bone towards +x
    img = np.minimum(bloom + ramp, 3071.0).astype(np.float32)
    vol = vol.copy(img)
    mask = img >= 3000.0
    assert mask.sum() > 100 and (img[mask] >= 3070).mean() > 0.5      # a plateau
    found = detect_contacts(vol, mask)
    assert len(found) == 1
    assert np.linalg.norm(found.points[0] - centre) < 0.1, found.points


def test_contacts_are_found_and_numbered_from_the_apex():
    """Bright blobs along a spiral: found at their centres and numbered from the inner end."""
    n, sp = 40, 0.2
    t = np.linspace(0.0, 3.0, 8)
    centres = np.stack([np.cos(t) * (3.0 - 0.6 * t), np.sin(t) * (3.0 - 0.6 * t), np.zeros_like(t)], 1)
    vol = Volume.empty((10, n, n), sp, origin=(-(n - 1) * sp / 2, -(n - 1) * sp / 2, -0.9))
    grid = vol.physical_grid()
    img = np.zeros(vol.shape, np.float32)
    for c in centres:
        img += 4000.0 * np.exp(-np.sum((grid - c) ** 2, -1) / (2 * 0.15 ** 2))
    vol = vol.copy(img)
    # the chain and its numbering; the refiner, learned on simulated CT, is tested apart
    found = detect_contacts(vol, img > 1500.0, refiner=None)
    assert len(found) == len(centres)
    d = np.linalg.norm(found.points - centres[::-1], axis=1)      # inner end (last t) first
    assert d.max() < 0.15
    assert found.labels[0] == "E1"
    assert len(detect_contacts(vol, np.zeros(vol.shape, bool))) == 0


def test_contacts_move_out_of_the_bend_and_a_straight_run_stays():
    from cochleaai.contacts.detect import out_of_the_bend

    t = np.linspace(0.0, 2.5, 10)
    arc = np.stack([2.0 * np.cos(t), 2.0 * np.sin(t), 0.1 * t], 1)
    moved = out_of_the_bend(arc, 0.06)
    radius = np.linalg.norm(moved[:, :2], axis=1)
    np.testing.assert_allclose(radius, 2.06, atol=0.005)
    np.testing.assert_allclose(moved[:, 2], arc[:, 2], atol=0.005)
    line = np.stack([t, 0.5 * t, np.zeros_like(t)], 1)
    np.testing.assert_array_equal(out_of_the_bend(line, 0.06), line)
    np.testing.assert_array_equal(out_of_the_bend(arc[:2], 0.06), arc[:2])


def test_a_contact_without_a_maximum_of_its_own_is_set_in_the_gap():
    from cochleaai.contacts.detect import _drop_shallow_ends, _fill_gaps

    def fill(points, depth, pitch, n):
        return _fill_gaps(_drop_shallow_ends(points, depth), pitch, n)

    chain = np.array([[0.0, 0, 0], [1.1, 0, 0], [3.3, 0, 0], [4.4, 0, 0], [9.0, 0, 0]])   # 2.2 missing
    depth = np.array([0.4, 0.42, 0.41, 0.39, 0.1])                  # the last on the thin lead
    filled = fill(chain, depth, 1.1, 16)
    np.testing.assert_allclose(filled[:, 0], [0.0, 1.1, 2.2, 3.3, 4.4])   # the lead's maximum drops out
    # no more than the array holds, and no deep maximum is dropped to make room
    np.testing.assert_allclose(fill(chain[:4], depth[:4], 1.1, 4)[:, 0], [0.0, 1.1, 3.3, 4.4])
    # a gap of four pitches is not a run of missing contacts: left as it is
    far = chain[[0, 1, 4]]
    np.testing.assert_array_equal(fill(far, np.array([0.4, 0.4, 0.4]), 1.1, 16), far)


def test_the_chain_is_numbered_away_from_the_lead():
    from cochleaai.contacts.detect import _lead_last

    chain = np.stack([np.arange(6.0), np.zeros(6), np.zeros(6)], 1)
    lead = np.stack([np.linspace(-2.5, -0.3, 40), np.zeros(40), np.zeros(40)], 1)   # runs on past point 0
    metal = np.concatenate([chain, lead])
    order = np.arange(6)
    np.testing.assert_array_equal(_lead_last(chain, order, metal), order[::-1])
    np.testing.assert_array_equal(_lead_last(chain, order, chain), order)          # no lead: kept


def test_grey_values_that_are_not_hu_are_refused_with_the_threshold_to_set():
    """A scan stored as (HU + 1024) x 16 puts bone and water above the HU metal threshold:
    the reduction stops and names a threshold, which then segments the rod alone."""
    vol, rod = _water_with_metal()
    scaled = vol.copy(((vol.array + 1024.0) * 16.0).astype(np.float32))
    before = scaled.array.copy()
    with pytest.raises(CochleaAIError, match=r"not Hounsfield units.*threshold above the bone, for example") as err:
        reduce_metal_artifacts(scaled, "li")
    np.testing.assert_array_equal(scaled.array, before)
    suggested = float(str(err.value).rsplit("example ", 1)[1].rstrip("."))
    res = reduce_metal_artifacts(scaled, "li", threshold_hu=suggested)
    np.testing.assert_array_equal(res.metal_mask, rod)


def test_a_dim_grey_scale_comes_back_unchanged_with_a_threshold_hint():
    """Grey values in [0, 1]: nothing reaches 3000, the image comes back as it was, and the
    message says which threshold would catch the metal."""
    vol, rod = _water_with_metal()
    unit = vol.copy(((vol.array + 1024.0) / 4095.0).astype(np.float32))
    res = reduce_metal_artifacts(unit, "nmar")
    np.testing.assert_array_equal(res.image.array, unit.array)
    assert "not HU" in res.messages[-1]
    suggested = float(res.messages[-1].rsplit("example ", 1)[1].rstrip(")."))
    assert np.array_equal(unit.array >= suggested, rod)


@pytest.mark.parametrize("method", ["li", "nmar", "bhc"])
def test_metal_at_the_edge_of_the_crop_is_corrected_and_said(method):
    """A rod that runs out of the volume (the lead leaving the crop): the reduction finishes,
    the image stays finite, the input is untouched, and a message says what cannot be done."""
    vol, rod = _water_with_metal()
    arr = vol.array.copy()
    arr[:, 24, :30] = 3071.0               # a wire out to the x = 0 border
    edge = vol.copy(arr)
    res = reduce_metal_artifacts(edge, method)
    np.testing.assert_array_equal(edge.array, arr)
    assert np.isfinite(res.image.array).all()
    assert any("touches the border" in m for m in res.messages)


def test_the_command_line_takes_the_threshold_it_suggests(tmp_path, capsys):
    """A 16-bit scan in its own grey scale: ``mar`` stops and names a threshold, and the same
    command with that threshold runs (the option's range covers 16-bit grey values)."""
    from cochleaai import io
    from cochleaai.cli import main

    vol, rod = _water_with_metal()
    scan = tmp_path / "scaled.nrrd"
    io.write_volume(vol.copy(((vol.array + 1024.0) * 16.0).astype(np.uint16)), scan)
    assert main(["mar", str(scan), "--out", str(tmp_path / "r.nrrd"), "--method", "li", "--quiet"]) == 2
    suggested = capsys.readouterr().err.rsplit("example ", 1)[1].strip().rstrip(".")
    assert not (tmp_path / "r.nrrd").exists()
    assert main(["mar", str(scan), "--out", str(tmp_path / "r.nrrd"), "--method", "li", "--threshold", suggested,
                 "--quiet"]) == 0
    assert (tmp_path / "r.nrrd").is_file()
