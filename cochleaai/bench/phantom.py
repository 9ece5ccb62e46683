"""Phantom benchmark: generation time per field of view and what the images contain."""
from __future__ import annotations

import time

import numpy as np

from cochleaai.phantom.core import make_phantom
from cochleaai.progress import Progress

NAME = "phantom"
DESCRIPTION = "synthetic CT generation time (roi, temporal) and tissue intensities"


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, tiny: bool = False) -> dict:
    p = Progress.wrap(progress)
    make_phantom(seed=seed, fov="roi")                       # compile and warm up
    figures = {}
    repeats = 1 if tiny else 2 if quick else 5
    for k, fov in enumerate(("roi", "temporal")):
        times = []
        for r in range(repeats):
            p((k * repeats + r) / (2 * repeats), f"{fov} phantom {r + 1}/{repeats}")
            t0 = time.perf_counter()
            ph = make_phantom(seed=seed + r, fov=fov)
            times.append(time.perf_counter() - t0)
        figures[f"{fov}_sec_median"] = float(np.median(times))
        figures[f"{fov}_sec_max"] = float(np.max(times))
        figures[f"{fov}_size"] = "x".join(str(n) for n in ph.ct.size)
        figures[f"{fov}_spacing_mm"] = float(ph.ct.spacing[0])
        cochlea = ph.mask("Cochlea")
        capsule = ph.mask("Otic capsule")
        figures[f"{fov}_cochlea_voxels"] = int(cochlea.sum())
        figures[f"{fov}_mean_hu"] = {"cochlea": float(ph.ct.array[cochlea].mean()),
                                     "otic_capsule": float(ph.ct.array[capsule].mean())}
    p(1.0, "done")
    return figures
