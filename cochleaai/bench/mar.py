"""Classic metal artifact reduction on held-out simulated pairs: PSNR, SSIM, RMSE against the
artifact-free pre-op (metal voxels excluded) and seconds per volume, per method."""
from __future__ import annotations

NAME = "mar"
DESCRIPTION = "LI / NMAR / BHC on simulated cochlear-implant pairs: PSNR, SSIM, RMSE vs pre-op"

import time

import numpy as np

from ..progress import Progress

HELD_OUT_SEED = 100_000       # pairs for this benchmark come from seeds no training set uses


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None) -> dict:
    from ..ct.contacts import detect_contacts
    from ..ct.electrodes import ARRAYS
    from ..ct.mar import reduce_metal_artifacts
    from ..ct.quality import similarity
    from ..ct.simulation import simulate_postop
    from ..phantom import make_phantom

    p = Progress.wrap(progress)
    n = 10 if quick else 20
    methods = ("li", "nmar", "bhc")
    arrays = sorted(ARRAYS)
    scores = {m: {"psnr": [], "ssim": [], "rmse": []} for m in ("input",) + methods}
    seconds = {m: [] for m in methods}
    contact_err = []
    for k in range(n):
        p(k / n, f"pair {k + 1}/{n}")
        s = HELD_OUT_SEED + seed * 1000 + k
        ph = make_phantom(s, fov="roi")
        sim = simulate_postop(ph.ct, ph.model, arrays[k % len(arrays)], seed=s)
        pre = ph.ct.array.astype(np.float32)
        metal = sim.metal.array.astype(bool)
        post = sim.postop.copy(sim.postop.array.astype(np.float32))
        for key, v in similarity(pre, post.array, metal).items():
            scores["input"][key].append(v)
        for m in methods:
            t0 = time.perf_counter()
            res = reduce_metal_artifacts(post, m)
            seconds[m].append(time.perf_counter() - t0)
            for key, v in similarity(pre, res.image.array, metal).items():
                scores[m][key].append(v)
        found = detect_contacts(post, res.metal_mask, max_contacts=sim.insertion.array.n_contacts)
        inside = sim.insertion.contacts[sim.insertion.intracochlear & post.contains(sim.insertion.contacts)]
        if len(found) and len(inside):
            from scipy.spatial import cKDTree

            contact_err.extend(cKDTree(found.points).query(inside)[0].tolist())
    p(1.0, "done")
    return {
        "pairs": n,
        "psnr": {m: round(float(np.mean(v["psnr"])), 2) for m, v in scores.items()},
        "ssim": {m: round(float(np.mean(v["ssim"])), 4) for m, v in scores.items()},
        "rmse": {m: round(float(np.mean(v["rmse"])), 1) for m, v in scores.items()},
        "sec_per_volume": {m: round(float(np.median(v)), 3) for m, v in seconds.items()},
        "contact_detection_error_mm_median": round(float(np.median(contact_err)), 3) if contact_err else None,
        "contact_detection_error_mm_p95": round(float(np.percentile(contact_err, 95)), 3) if contact_err else None,
        "data_range_hu": 4095,
    }
