"""Electrode insertion and post-operative simulation on the phantom (cochleaai.simulation)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from cochleaai import CochleaAIError
from cochleaai.phantom.core import make_phantom
from cochleaai.simulation.arrays import ARRAYS, get_array
from cochleaai.simulation.ct import SIMULATION_BOX_MM, ScanConfig, simulate_postop, simulate_scan, simulation_roi
from cochleaai.simulation.electrodes import insert_array
from cochleaai.simulation.projector import FanBeamGeometry

# fewer views than the default scanner keeps the tests quick; the physics is the same
FAST = ScanConfig(geometry=FanBeamGeometry(n_views=360))


@pytest.fixture(scope="module")
def phantom():
    return make_phantom(0, fov="roi")


def test_catalogue_geometry():
    assert {a.n_contacts for a in ARRAYS.values()} >= {12, 16, 22}
    flex = get_array("FLEX28")
    assert flex.active_length_mm == pytest.approx(23.1)
    assert flex.diameter_at(0) < flex.diameter_at(flex.length_mm)
    with pytest.raises(CochleaAIError, match="Unknown electrode array"):
        get_array("no-such-array")


@pytest.mark.parametrize("key", sorted(ARRAYS))
def test_insertion_follows_the_scala_tympani(phantom, key):
    model = phantom.model
    ins = insert_array(model, phantom.ct, key, depth_deg=400.0)
    arr = ins.array
    assert len(ins.contacts) == arr.n_contacts
    inside = ins.intracochlear
    assert inside[0] and inside.sum() >= 3
    # numbered from the apex: depths fall from contact 1 on, all below the tip's depth
    depths = ins.contact_depth_deg[inside]
    assert np.all(np.diff(depths) < 0) and depths[0] < 400.0
    # the contacts sit on the scala tympani centreline at the angle reported
    deg, dist = model.angular_position(ins.contacts[inside])
    assert dist.max() < 0.02
    np.testing.assert_allclose(deg, depths, atol=1.0)
    # neighbours are one pitch apart along the path (a chord is at most that)
    gaps = np.linalg.norm(np.diff(ins.contacts, axis=0), axis=1)
    assert np.all(gaps <= arr.pitch_mm + 1e-6) and np.all(gaps > 0.8 * arr.pitch_mm)
    # the metal mask covers every contact centre inside the volume
    ijk = np.rint(phantom.ct.physical_to_index(ins.contacts[inside])).astype(int)
    assert ins.metal_mask[ijk[:, 2], ijk[:, 1], ijk[:, 0]].all()


def test_platinum_mass_matches_the_contact_geometry(phantom):
    ins = insert_array(phantom.model, phantom.ct, "flex28", depth_deg=540.0, lead=False, supersample=4)
    arr = ins.array
    u = arr.tip_offset_mm + arr.pitch_mm * np.arange(arr.n_contacts)
    r = arr.diameter_at(u) / 2
    expected = arr.contact_fill * np.sum(np.pi * r ** 2 * arr.contact_length_mm * ins.intracochlear)
    voxel = float(np.prod(phantom.ct.spacing))
    measured = ins.metal_fraction.array.sum() * voxel
    # the extracochlear contact may also fall in the volume: allow its share
    assert expected * 0.85 < measured < expected * 1.3


def test_deeper_insertion_puts_more_contacts_inside_and_theta_works(phantom):
    shallow = insert_array(phantom.model.theta, phantom.ct, "slim22", depth_deg=250.0)
    deep = insert_array(phantom.model.theta, phantom.ct, "slim22", depth_deg=450.0)
    assert deep.intracochlear.sum() > shallow.intracochlear.sum()
    a = insert_array(phantom.model, phantom.ct, "slim22", depth_deg=None, rng=7)
    b = insert_array(phantom.model, phantom.ct, "slim22", depth_deg=None, rng=7)
    assert a.depth_deg == b.depth_deg and 330 <= a.depth_deg <= 480
    for bad in (0.0, -10.0, 5000.0, float("nan")):
        with pytest.raises(CochleaAIError, match="insertion depth"):
            insert_array(phantom.model, phantom.ct, "flex28", depth_deg=bad)


def test_no_metal_reconstruction_stays_within_the_input_noise(phantom):
    """Noise-free thin-slice scan with a sharp kernel of the metal-free phantom: what differs
    is the scanner's in-plane blur and beam hardening, and both stay within the input's own
    noise level."""
    ct = phantom.ct
    sigma = float(phantom.truth["noise_hu"])
    rec = simulate_scan(ct, None, replace(FAST.without("noise", "scatter"), slice_fwhm_mm=0.0, window="shepp-logan")).image.array
    diff = rec - ct.array.astype(np.float32)
    assert abs(diff.mean()) < sigma
    assert np.median(np.abs(diff)) < sigma
    # the fluid-filled scalae stay far darker than the otic capsule around them
    cochlea, capsule = phantom.mask("Cochlea"), phantom.mask("Otic capsule")
    assert rec[capsule].mean() - rec[cochlea].mean() > 0.8 * (ct.array[capsule].mean() - ct.array[cochlea].mean())


def test_postop_simulation_blooms_the_contacts_and_is_reproducible(phantom):
    before = phantom.ct.array.copy()
    sim = simulate_postop(phantom.ct, phantom.model, "flex28", depth_deg=500.0, seed=2, config=FAST)
    np.testing.assert_array_equal(phantom.ct.array, before)
    post = sim.postop.array
    assert post.dtype == np.int16 and post.shape == before.shape
    metal = sim.metal.array.astype(bool)
    bright = post >= 3000
    # the contacts saturate and look larger than they are (blooming)
    assert bright[metal].mean() > 0.5
    assert bright.sum() > 1.5 * metal.sum()
    # the target marks the contact centres at the top of the scale, elsewhere the pre-op image
    marked = sim.target.array == 3071
    assert marked.sum() >= sim.insertion.intracochlear.sum()
    np.testing.assert_array_equal(sim.target.array[~marked], before[~marked])
    again = simulate_postop(phantom.ct, phantom.model, "flex28", depth_deg=500.0, seed=2, config=FAST)
    np.testing.assert_array_equal(again.postop.array, post)
    summary = sim.summary()
    assert summary["n_contacts"] == 12 and 0.001 <= summary["scatter_to_primary"] <= 0.02
    m = sim.contacts_markups()
    assert len(m) == 12 and m.labels[0] == "E1"


def test_simulation_roi_crops_a_cube_around_the_cochlea_to_int16(phantom):
    ct, model = phantom.ct, phantom.model
    before = ct.array.copy()
    # the ROI phantom (12 x 10 x 10 mm) fits in the simulation box: kept as it is
    assert simulation_roi(ct, model) is ct and SIMULATION_BOX_MM == 15.0
    roi = simulation_roi(ct, model, box_mm=11.0)
    assert roi.shape == (55, 55, 55) and roi.array.dtype == np.int16
    np.testing.assert_allclose(roi.spacing, ct.spacing)
    np.testing.assert_allclose(roi.center, model.landmarks()["center"], atol=1e-6)
    assert (roi.array == -1000).any()                     # 11 mm > 10 mm: air beyond the image
    inside = roi.contains(ct.index_to_physical(np.array([[30.0, 25.0, 25.0]])))
    assert inside.all() and roi.array.max() > 1500        # the otic capsule is in it
    # the 10 parameters give the same cube as the model; the input is not modified
    np.testing.assert_array_equal(simulation_roi(ct, list(model.theta), box_mm=11.0).array, roi.array)
    np.testing.assert_array_equal(ct.array, before)


def test_rounded_int16_rounds_and_saturates():
    from cochleaai.volume import Volume

    vol = Volume(np.array([-40000.0, -1000.4, -0.6, 0.5, 1.5, 2999.5, 40000.0], np.float32).reshape(1, 1, 7),
                 spacing=(0.2, 0.3, 0.4), origin=(1.0, 2.0, 3.0))
    out = vol.rounded_int16()
    assert out.array.dtype == np.int16 and out.same_geometry(vol)
    # round half to even, as numpy.rint; beyond the int16 range the values saturate
    assert out.array.ravel().tolist() == [-32768, -1000, -1, 0, 2, 3000, 32767]
    assert vol.array.dtype == np.float32


def test_metal_chords_keep_the_contacts_platinum():
    """The exact chords through a contact band hold its metal: summed over a view's channels
    (times the channel width at the contact) they give the band's cross-section in the slice,
    which integrated over z is the band's volume."""
    from cochleaai.simulation.chords import Cylinders, SubRays, metal_subray_lengths
    from cochleaai.simulation.projector import RoiGrid

    g = FanBeamGeometry(n_views=8, fan_radius_mm=20.0)
    grid = RoiGrid(40, 40, 0.2, 0.2)
    ro, ri, h = 0.3, 0.26, 0.2
    cyl = Cylinders(np.array([[0.0, 0.0, 2.0]]), np.array([[0.0, 0.0, 1.0]]), np.array([h]),
                    np.array([ro]), np.array([ri]), np.array([1.0]))
    dz = 0.02
    n_slices = int(4.0 / dz)
    ch = np.broadcast_to(np.arange(g.n_channels)[None, :], (g.n_views, g.n_channels))
    # a 40 um wall needs many sub-rays per 0.25 mm channel to integrate (that is their point)
    sub = SubRays(tuple(((np.arange(40) + 0.5) / 40 - 0.5).tolist()))
    flat, lengths = metal_subray_lengths(cyl, g, grid, n_slices, dz, ch, sub)
    full = np.zeros(n_slices * g.n_views * g.n_channels)
    full[flat] = lengths @ sub.weights()
    per_view = full.reshape(n_slices, g.n_views, g.n_channels).sum((0, 2)) * dz * g.pitch_iso_mm
    volume = np.pi * (ro ** 2 - ri ** 2) * 2 * h
    np.testing.assert_allclose(per_view, volume, rtol=0.15)


def test_exact_metal_chords_make_more_streaks_than_voxelised_metal(phantom):
    """Partial volume of the thin bands per sub-ray (edge-gradient effect, starvation) gives
    more artifact energy around the metal than spreading the same metal over voxels."""
    ins_cfg = replace(FAST, slice_fwhm_mm=0.0)
    # without metal both models scan the same: one reference scan serves both
    pre = simulate_scan(phantom.ct, None, ins_cfg, seed=np.random.SeedSequence(1).spawn(2)[1]).image.array
    energies = {}
    for model in ("voxels", "chords"):
        cfg = replace(ins_cfg, metal_model=model)
        sim = simulate_postop(phantom.ct, phantom.model, "flex28", 450.0, seed=1, config=cfg)
        m = sim.metal.array.astype(bool)
        energies[model] = float(np.mean((sim.postop.array.astype(float) - pre)[~m] ** 2))
    assert energies["chords"] > 1.3 * energies["voxels"]


def test_a_pair_without_metal_equals_its_target_and_pairs_repeat_per_seed(phantom):
    from cochleaai.simulation.pairs import pair_seed, plan_pairs

    seq = np.random.SeedSequence(5).spawn(2)[1]
    target = simulate_scan(phantom.ct, None, FAST, seed=seq).image.array
    empty = simulate_scan(phantom.ct, np.zeros(phantom.ct.shape, np.float32), FAST, seed=np.random.SeedSequence(5).spawn(2)[1],
                          metal_parts=(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0),
                                       np.zeros(0))).image.array
    np.testing.assert_array_equal(target, empty)
    plan = plan_pairs(4, seed=2)
    assert plan == plan_pairs(4, seed=2) and plan[0].seed == pair_seed(2, 0) != pair_seed(3, 0)
    assert len({p.seed for p in plan}) == 4
