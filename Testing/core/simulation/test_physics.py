"""X-ray physics of cochleaai.simulation against known answers (tables, projector, FBP, cupping)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from cochleaai import CochleaAIError
from cochleaai.simulation import physics
from cochleaai.simulation.projector import (Body,
                                            FanBeamGeometry,
                                            RoiGrid,
                                            body_line_integrals,
                                            ellipse_chord,
                                            roi_projector)
from cochleaai.simulation.ct import ScanConfig, simulate_scan
from cochleaai.volume import Volume

# a light scanner for tests: fewer views, a fan just wide enough
LIGHT = FanBeamGeometry(n_views=240, fan_radius_mm=40.0, pitch_iso_mm=0.5)


def test_tables_have_provenance_and_sane_physics():
    e, w = physics.spectrum(120)
    assert abs(w.sum() - 1) < 1e-9 and e.max() <= 120.5
    assert e[np.argmax(w)] < 80                      # filtered W spectrum peaks well below kVp
    beam = physics.make_beam(120, 5)
    assert len(beam.energies) == 5 and abs(beam.weights.sum() - 1) < 1e-9
    assert np.all(np.diff(beam.mu["water"]) < 0)     # attenuation falls with energy
    # textbook values at 60 keV: water 0.206 cm^2/g (NIST XCOM), so 0.0206 / mm
    assert physics.mu_per_mm("water", np.array([60.0]))[0] == pytest.approx(0.0206, rel=0.02)
    assert 1200 < beam.bone_hu < 2500                # cortical bone in clinical CT
    assert beam.effective_mu("platinum_iridium") > 300 * beam.mu_ref
    assert physics.make_beam(140, 5).mu_ref < physics.make_beam(120, 5).mu_ref


def test_corrupted_table_is_refused(tmp_path, monkeypatch):
    for f in physics.PHYSICS_DIR.iterdir():
        if f.is_file():
            shutil.copy(f, tmp_path / f.name)
    with open(tmp_path / "attenuation.csv", "a") as fh:
        fh.write("151.0,1,1,1,1\n")
    monkeypatch.setattr(physics, "PHYSICS_DIR", tmp_path)
    physics._attenuation.cache_clear()
    try:
        with pytest.raises(CochleaAIError, match="checksum"):
            physics._attenuation()
        (tmp_path / "attenuation.csv").unlink()
        with pytest.raises(CochleaAIError, match="missing"):
            physics._attenuation()
    finally:
        physics._attenuation.cache_clear()


def test_hu_decomposition_reproduces_hu_at_the_reference():
    beam = physics.make_beam(120, 10)
    hu = np.linspace(-1000, 3000, 41)
    f = physics.decompose_hu(hu, beam)
    mu = f["water"] * beam.effective_mu("water") + f["bone"] * beam.effective_mu("bone")
    np.testing.assert_allclose(1000 * (mu / beam.mu_ref - 1), hu, atol=0.05)
    assert np.all(f["water"] >= 0) and np.all(f["bone"] >= 0)
    assert f["bone"][hu <= 0].max() == 0


def _disk(grid, r, cx, cy, n=5):
    x, y = grid.pixel_centres()
    acc = np.zeros_like(x)
    for ox in (np.arange(n) + 0.5) / n - 0.5:
        for oy in (np.arange(n) + 0.5) / n - 0.5:
            acc += (x + ox * grid.sx - cx) ** 2 + (y + oy * grid.sy - cy) ** 2 <= r * r
    return (acc / n / n).astype(np.float32)


def test_monochromatic_disk_projection_matches_analytic_chords():
    grid = RoiGrid(40, 48, 0.25, 0.25, 20.0, -5.0)
    r = 4.0
    proj = roi_projector(LIGHT, grid)
    sino = proj.project_full(_disk(grid, r, 20.0, -5.0)[None])[0]
    src, d = LIGHT.rays()
    chord = ellipse_chord(src - np.array([20.0, -5.0]), d, r, r)
    # distance of each ray to the disk centre: compare where the chord is not grazing
    rel = src - np.array([20.0, -5.0])
    dist = np.abs(rel[..., 0] * d[..., 1] - rel[..., 1] * d[..., 0])
    core = dist < r - 1.0
    assert core.sum() > 1000
    # a pixelated disk: its edge is right to less than half a pixel (0.25 mm)
    np.testing.assert_allclose(sino[core], chord[core], rtol=0.005, atol=0.1)
    assert np.abs(sino[core] - chord[core]).mean() < 0.02       # 0.3 % of a typical chord
    # grazing rays too: on average within a fifth of a pixel
    hit = dist < r + 0.5
    assert np.abs(sino - chord)[hit].mean() < 0.05
    assert np.abs(sino[dist > r + 0.5]).max() < 1e-6
    # the fan-beam FBP of the analytic sinogram gives the disk's value back
    rec = proj.fbp(chord[None].astype(np.float32))[0]
    x, y = grid.pixel_centres()
    inside = (x - 20) ** 2 + (y + 5) ** 2 < (r - 1) ** 2
    outside = (x - 20) ** 2 + (y + 5) ** 2 > (r + 1) ** 2
    assert rec[inside].mean() == pytest.approx(1.0, abs=0.01)
    assert np.abs(rec[outside]).mean() < 0.02
    # the windowed (fast) filter agrees with full-row filtering for data inside the ROI shadow
    rec2 = proj.fbp_windows(proj.gather(chord.astype(np.float32), "in")[None])[0]
    np.testing.assert_allclose(rec2, rec, atol=1e-4)


def test_body_line_integrals_are_ellipse_chords():
    g = FanBeamGeometry(n_views=8, fan_radius_mm=100.0, pitch_iso_mm=2.0)
    body = Body(75, 95, 6, 1.0)
    lo, hi = np.array([40.0, -5.0]), np.array([50.0, 5.0])
    li = body_line_integrals(g, body, lo, hi)
    central = g.n_channels // 2                       # through the isocentre
    # view 0: source on +x, the central ray runs along x through the skull twice
    assert li["bone"][0, central] == pytest.approx(2 * 6.0, abs=0.3)
    assert li["water"][0, central] == pytest.approx(2 * 69.0 - 10.0, abs=0.3)
    body.check_contains(lo, hi)
    with pytest.raises(CochleaAIError, match="fit inside"):
        body.check_contains(np.array([60.0, -5]), np.array([72.0, 5]))


def _water_cylinder(radius_mm=14.0, n=64, spacing=0.5):
    grid = RoiGrid(n, n, spacing, spacing)
    inside = _disk(grid, radius_mm, 0.0, 0.0)
    hu = -1000.0 + 1000.0 * inside
    return Volume(np.repeat(hu[None], 4, 0).astype(np.float32), spacing), grid


def test_polychromatic_water_cylinder_cups_and_precorrection_flattens_it():
    vol, grid = _water_cylinder()
    base = ScanConfig(geometry=LIGHT, body=None, roi_center_mm=(0.0, 0.0)).without("noise", "scatter")
    x, y = grid.pixel_centres()
    rr = np.hypot(x, y)
    centre, rim = rr < 3.0, (rr > 9.0) & (rr < 11.0)
    raw = simulate_scan(vol, config=ScanConfig(**{**base.__dict__, "water_correction": False})).image.array[1]
    cupping = raw[rim].mean() - raw[centre].mean()
    assert cupping > 5.0                      # beam hardening: the centre reads darker
    flat = simulate_scan(vol, config=base).image.array[1]
    assert abs(flat[rim].mean() - flat[centre].mean()) < 0.2 * cupping
    assert abs(flat[rr < 11].mean()) < 5.0    # water is 0 HU after the pre-correction


def test_noise_and_scatter_are_seeded_and_sized():
    vol, grid = _water_cylinder()
    cfg = ScanConfig(geometry=LIGHT, body=Body(40, 40, 4), roi_center_mm=(0.0, 0.0))
    a = simulate_scan(vol, config=cfg, seed=4)
    b = simulate_scan(vol, config=cfg, seed=4)
    c = simulate_scan(vol, config=cfg, seed=5)
    clean = simulate_scan(vol, config=cfg.without("noise", "scatter"), seed=4)
    np.testing.assert_array_equal(a.image.array, b.image.array)
    assert not np.array_equal(a.image.array, c.image.array)
    assert 0.001 <= a.scatter_to_primary <= 0.02
    x, y = grid.pixel_centres()
    water = np.hypot(x, y) < 10
    noise = (a.image.array - clean.image.array)[:, water]
    assert 2.0 < noise.std() < 200.0
    fewer = simulate_scan(vol, config=ScanConfig(**{**cfg.__dict__, "photons": 2e6}).without("scatter"), seed=4)
    assert (fewer.image.array - clean.image.array)[:, water].std() < noise.std()


def test_bad_volumes_are_refused_and_untouched():
    vol, _ = _water_cylinder()
    cfg = ScanConfig(geometry=LIGHT, body=None, roi_center_mm=(0.0, 0.0))
    bad = vol.copy()
    bad.array[0, 0, 0] = np.nan
    with pytest.raises(CochleaAIError, match="NaN"):
        simulate_scan(bad, config=cfg)
    with pytest.raises(CochleaAIError, match="too small"):
        simulate_scan(Volume(np.zeros((2, 30, 30), np.float32)), config=cfg)
    with pytest.raises(CochleaAIError, match="metal fraction"):
        simulate_scan(vol, np.zeros((1, 2, 3)), config=cfg)
    before = vol.array.copy()
    res = simulate_scan(Volume(vol.array / 1000.0 + 1.0, 0.5), config=cfg.without("noise", "scatter"))
    assert res.warnings and "Hounsfield" in res.warnings[0]
    np.testing.assert_array_equal(vol.array, before)
