"""Cochlear-implant CT simulation: speed per stage, contact blooming, and the effect of scatter
and noise on the metal artifacts (the thesis's Fig. 2.6 ablation, as numbers and a PNG)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy.ndimage import binary_dilation

from cochleaai.io import pyplot, save_figure
from cochleaai.mar.quality import blooming_factor
from cochleaai.phantom.core import make_phantom
from cochleaai.progress import Progress
from cochleaai.simulation.arrays import ARRAYS
from cochleaai.simulation.ct import ScanConfig, simulate_postop, simulate_scan
from cochleaai.simulation.projector import FanBeamGeometry

NAME = "simulate"
DESCRIPTION = "cochlear-implant CT simulation: seconds per volume and stage, blooming, scatter/noise ablation"

ABLATION = {"beam_hardening": ("noise", "scatter"), "bh_scatter": ("noise",),
            "bh_noise": ("scatter",), "full": ()}
#: --tiny: a coarse scanner (a quarter of the views, few energy bins, one sub-ray), same code
TINY_CONFIG = ScanConfig(n_bins=5, geometry=FanBeamGeometry(n_views=180), channel_subrays=1, z_subrays=1)
#: One scan per volume, the simulator's own image: what is timed and ablated here
SIMULATOR_ONLY = {"artifact_mode": "simulated", "clean_scan": False}


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, tiny: bool = False) -> dict:
    p = Progress.wrap(progress)
    n = 1 if tiny else 2 if quick else 5
    arrays = sorted(ARRAYS)
    config = TINY_CONFIG if tiny else ScanConfig()
    p(0.0, "warm-up (builds the projector once)")
    ph = make_phantom(seed, fov="roi")
    t0 = time.perf_counter()
    simulate_postop(ph.ct, ph.model, "flex28", seed=seed, config=config, **SIMULATOR_ONLY)
    first = time.perf_counter() - t0

    totals, cpu, stages, blooms = [], [], {}, {}
    for k in range(n):
        p(0.05 + 0.55 * k / n, f"volume {k + 1}/{n}")
        ph = make_phantom(seed + k, fov="roi")
        array = arrays[k % len(arrays)]
        t0, c0 = time.perf_counter(), time.process_time()
        sim = simulate_postop(ph.ct, ph.model, array, seed=seed + k, config=config, **SIMULATOR_ONLY)
        totals.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        for key, v in sim.seconds.items():
            if key != "total":
                stages.setdefault(key, []).append(v)
        blooms.setdefault(array, []).append(blooming_factor(sim.postop, sim.insertion))

    # ablation on one volume: the artifact is the difference with the same scan without metal
    p(0.65, "scatter / noise ablation")
    ph = make_phantom(seed, fov="roi")
    sim = simulate_postop(ph.ct, ph.model, "flex28", depth_deg=500.0, seed=seed, config=config, **SIMULATOR_ONLY)
    metal = sim.metal.array.astype(bool)
    outside = ~binary_dilation(metal, iterations=2)
    pre = ph.ct.array.astype(np.float32)
    artifact, vs_preop, images = {}, {}, {}
    # tiny: the two ends of the ablation only (the picture needs both)
    ablation = {k: ABLATION[k] for k in ("beam_hardening", "full")} if tiny else ABLATION
    for j, (name, off) in enumerate(ablation.items()):
        p(0.65 + 0.3 * j / len(ablation), f"ablation: {name}")
        cfg = config.without(*off) if off else config
        with_metal = simulate_scan(ph.ct, sim.insertion.metal_fraction.array, cfg, seed=seed).image.array
        without = simulate_scan(ph.ct, None, cfg, seed=seed).image.array
        diff = (with_metal - without)[outside]
        artifact[name] = round(float(np.sqrt(np.mean(diff ** 2))), 1)
        vs_preop[name] = round(float(np.sqrt(np.mean((with_metal - pre)[outside] ** 2))), 1)
        images[name] = with_metal
    figures = {
        "sec_per_volume": round(float(np.median(totals)), 3),
        "cpu_sec_per_volume": round(float(np.median(cpu)), 3),
        "sec_first_volume_with_setup": round(first, 3),
        "threads": _threads(),
        "sec_per_stage": {k: round(float(np.median(v)), 3) for k, v in stages.items()},
        "volume_size": "x".join(str(s) for s in ph.ct.size),
        "n_volumes": n,
        "blooming_factor": round(float(np.nanmedian(sum(blooms.values(), []))), 2),
        "blooming_factor_per_array": {k: round(float(np.nanmedian(v)), 2) for k, v in blooms.items()},
        "artifact_rmse_hu": artifact,
        "rmse_vs_preop_hu": vs_preop,
        "scatter_to_primary": round(sim.scatter_to_primary, 4),
    }
    if out_dir is not None:
        figures["png"] = str(_ablation_png(pre, images, metal, Path(out_dir) / "simulate_ablation.png"))
    p(1.0, "done")
    return figures


def _threads() -> int:
    import torch  # lazy: optional in Slicer until installed

    return int(torch.get_num_threads())


def _ablation_png(pre, images, metal, path: Path) -> Path:
    plt = pyplot()

    k = int(np.argmax(metal.reshape(metal.shape[0], -1).sum(1)))
    panels = [("pre-op", pre[k])] + [(n, im[k]) for n, im in images.items()]
    panels.append(("full - beam hardening only", images["full"][k] - images["beam_hardening"][k]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (title, img) in zip(axes, panels):
        if title.startswith("full -"):
            ax.imshow(img, cmap="RdBu_r", vmin=-500, vmax=500)
        else:
            ax.imshow(img, cmap="gray", vmin=-1000, vmax=3000)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, path, dpi=100)
