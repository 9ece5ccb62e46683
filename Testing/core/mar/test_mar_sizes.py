"""The classic MAR methods (LI, NMAR, BHC) finish on any volume size.

A post-op of 148 x 102 x 88 voxels (x, y, z) at 0.156 x 0.156 x 0.2 mm once crashed in the windowed
ramp filter: a ROI whose shadow and filter margins are wider than the virtual detector
asked the filter for lags its kernel does not hold.
"""
from __future__ import annotations

import numpy as np
import pytest

from cochleaai.mar.classic import MAR_GEOMETRY
from cochleaai.mar.dispatch import reduce_metal_artifacts
from cochleaai.mar.methods import CLASSIC_METHODS
from cochleaai.simulation.projector import (FILTER_MARGIN, WINDOWS, FanBeamGeometry, RoiProjector,
                                            filter_sinograms)
from cochleaai.volume import Volume

METAL_HU = 8000.0

#: (z, y, x) voxels and (sx, sy, sz) mm: odd and even, small and large in-plane, few (4, the
#: least a volume may have) to many slices, anisotropic. The first is the post-op that
#: crashed; those marked wide cast a shadow wider than the virtual detector less its filter
#: margins (they crashed too), and the last is wider than the virtual scanner's fan itself.
SIZES = [((88, 102, 148), (0.156, 0.156, 0.2)),         # wide
         ((4, 7, 9), (0.5, 0.5, 0.5)),
         ((4, 16, 17), (0.3, 0.3, 0.6)),
         ((5, 31, 24), (0.156, 0.156, 0.2)),
         ((6, 48, 48), (0.25, 0.25, 0.25)),
         ((5, 50, 60), (0.2, 0.2, 0.2)),
         ((4, 20, 31), (0.2, 0.35, 1.0)),
         ((12, 40, 33), (0.5, 0.5, 0.5)),                 # wide
         ((4, 64, 65), (0.3, 0.3, 0.6)),                  # wide
         ((4, 36, 60), (0.5, 0.5, 0.5)),                  # wide
         ((4, 91, 90), (0.5, 0.5, 0.5))]                  # wider than the fan


def _postop(shape, spacing) -> Volume:
    """Soft tissue with a bone disk in air, and small metal blobs in one or two middle slices."""
    nz, ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    y, x = (y - (ny - 1) / 2) * spacing[1], (x - (nx - 1) / 2) * spacing[0]
    r = np.hypot(x / (nx * spacing[0]), y / (ny * spacing[1]))
    plane = np.where(r < 0.45, 40.0, -1000.0) + np.where(np.hypot(x - 1.0, y) < 1.5, 1200.0, 0.0)
    hu = np.repeat(plane[None], nz, 0).astype(np.float32)
    for k in {nz // 2, min(nz // 2 + 1, nz - 1)}:
        for j, i in ((ny // 2, nx // 2), (ny // 3, 2 * nx // 3)):
            hu[k, j, i] = hu[k, j - 1, i] = hu[k, j, i - 1] = METAL_HU
    return Volume(hu, spacing)


@pytest.mark.parametrize("shape, spacing", SIZES,
                         ids=["x".join(map(str, s)) + "@" + "x".join(map(str, d)) for s, d in SIZES])
def test_every_method_finishes_on_any_size(shape, spacing):
    vol = _postop(shape, spacing)
    before = vol.array.copy()
    metal = before >= METAL_HU
    metal_slices = metal.any(axis=(1, 2))
    for method in CLASSIC_METHODS:
        out = reduce_metal_artifacts(vol, method).image.array
        np.testing.assert_array_equal(vol.array, before, err_msg=f"{method} modified its input")
        assert out.shape == before.shape and out.dtype == np.float32, method
        assert np.isfinite(out).all(), method
        # only slices with metal change, and the metal is kept
        np.testing.assert_array_equal(out[~metal_slices], before[~metal_slices], err_msg=method)
        np.testing.assert_array_equal(out[metal], before[metal], err_msg=method)
        if method != "bhc":          # the trace repair did something (BHC may find no fit)
            assert np.any(out[metal_slices] != before[metal_slices]), method


def _window_projector(geometry: FanBeamGeometry, width: int) -> RoiProjector:
    """Filter windows of ``width`` channels: one view's off the left edge of the detector,
    one inside, one off the right edge (the filter needs no grid or sparse operators)."""
    n = geometry.n_channels
    start = np.array([-(width // 2), (n - width) // 2, n - width // 2])
    return RoiProjector(geometry, None, None, None, None, start, width)


def _out_channels(proj: RoiProjector):
    """Each view's out-window channels, and which of them lie on the detector."""
    ch = proj.start[:, None] + np.arange(proj.width)[None, :]
    return ch, (ch >= 0) & (ch < proj.geometry.n_channels)


def _shadow_rows(proj: RoiProjector, rng) -> np.ndarray:
    """Random full detector rows, zero outside each view's out window."""
    ch, on = _out_channels(proj)
    full = np.zeros((len(proj.start), proj.geometry.n_channels), np.float32)
    views, pos = np.nonzero(on)
    full[views, ch[views, pos]] = rng.normal(size=views.size)
    return full


@pytest.mark.parametrize("fan_radius_mm", [5.0, MAR_GEOMETRY.fan_radius_mm])
def test_windowed_filter_is_exact_for_any_window_width(fan_radius_mm):
    """Windowed filtering of rows that are zero outside the windows equals filtering the full
    rows, on every output channel on the detector: hundreds of window widths, from one
    channel to past the detector's, on a detector narrower than the filter margins and on
    the MAR scanner's."""
    geometry = FanBeamGeometry(n_views=3, fan_radius_mm=fan_radius_mm)
    n = geometry.n_channels
    rng = np.random.default_rng(0)
    projs = [_window_projector(geometry, width) for width in range(1, n + 2 * FILTER_MARGIN)]
    rows = [_shadow_rows(proj, rng) for proj in projs]
    for window in WINDOWS:
        exact_rows = filter_sinograms(np.stack(rows), geometry, window)      # one batch: fast
        for proj, full, exact_full in zip(projs, rows, exact_rows):
            windowed = proj.filter_windows(proj.gather(full, "in"), window)
            assert windowed.shape == (3, proj.width) and np.isfinite(windowed).all()
            exact = proj.gather(exact_full, "out")
            _, on = _out_channels(proj)
            scale = float(np.abs(exact).max())
            np.testing.assert_allclose(windowed[on] / scale, exact[on] / scale, atol=2e-5,
                                       err_msg=f"n_channels {n}, width {proj.width}, {window}")
