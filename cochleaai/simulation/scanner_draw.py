"""Scanner settings drawn at random per simulated pair.

A network trained on one scanner's noise and blur learns that scanner; clinical post-op CT
comes from many. Each pair therefore gets its own number of views, tube output (photons
per reading), tube voltage, reconstruction kernel and slice profile, drawn from ranges of
clinical temporal-bone protocols. The scan is axial (one fan per slice), so a helical pitch
has no meaning here; the slice profile stands in for the z blur it would bring.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from cochleaai.simulation.ct import ScanConfig

#: Choices and ranges of the draw (views and kernels are discrete: each view count builds
#: and caches its own projector).
VIEWS = (600, 720, 900)
KERNELS = ("shepp-logan", "hamming", "hann", "hann-0.8")
KVP = (120, 140)
PHOTONS = (5.0e4, 4.0e5)          # log-uniform
SLICE_FWHM_MM = (0.2, 0.6)


def draw_scan_config(rng, base: ScanConfig = ScanConfig()) -> ScanConfig:
    """A copy of ``base`` with the scanner settings drawn from ``rng`` (a numpy Generator
    or a seed)."""
    rng = np.random.default_rng(rng)
    views = int(rng.choice(VIEWS))
    return replace(base, geometry=replace(base.geometry, n_views=views),
                   window=str(rng.choice(KERNELS)), kvp=int(rng.choice(KVP)),
                   photons=float(np.exp(rng.uniform(*np.log(PHOTONS)))),
                   slice_fwhm_mm=float(rng.uniform(*SLICE_FWHM_MM)))


def describe(config: ScanConfig) -> dict:
    """The drawn settings, for manifests."""
    return {"views": config.geometry.n_views, "kernel": config.window, "kvp": config.kvp,
            "photons": round(config.photons), "slice_fwhm_mm": round(config.slice_fwhm_mm, 3)}
