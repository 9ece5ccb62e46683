"""The VAE part of ``make demo``: sample the shipped model and draw its latent map."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from cochleaai import io
from cochleaai.progress import Progress
from cochleaai.slicer.results.vae import GENERATED_NAME, put_volume
from cochleaai.threads import torch_threads
from cochleaai.vae.explore import decode_volume, latent_map, sample_latent, save_latent_map_png
from cochleaai.vae.model_io import load_model
from cochleaai.vae.shipped import default_model_path


def demo_step(phantom, scene, out_dir, progress=None) -> dict:
    """Load the shipped Langevin-VAE, decode a few prior samples (the first becomes the volume
    node "Generated cochlea"), and write ``<out_dir>/vae/latent_map.png`` and the samples.

    ``phantom`` (the demo's temporal-bone phantom) is not encoded: the model works on the
    cochlea region at the template pose, which the wide field of view does not give directly.
    """
    p = Progress.wrap(progress)
    out = Path(out_dir) / "vae"
    out.mkdir(parents=True, exist_ok=True)
    with torch_threads(1):
        t0 = time.perf_counter()
        p(0.0, "loading the shipped Langevin-VAE")
        model, card = load_model(default_model_path(), require={"kind": "volume"})
        p(0.2, "sampling")
        z = sample_latent(model, 4, seed=0)
        t1 = time.perf_counter()
        volumes = [decode_volume(model, card, zi) for zi in z]
        ms_per_volume = 1000 * (time.perf_counter() - t1) / len(volumes)
        node = put_volume(scene, volumes[0], GENERATED_NAME, z=z[0])
        files = [str(io.write_volume(v, out / f"sample_{i}.nrrd")) for i, v in enumerate(volumes)]
        p(0.6, "drawing the latent map")
        mosaic, coords = latent_map(model, card, n=7)
        png = save_latent_map_png(mosaic, coords, out / "latent_map.png",
                                  title="Langevin-VAE (roi phantoms): axial middle slices over z1, z2")
        p(1.0, "VAE samples ready")
    return {"model": card.get("name"), "latent": np.round(z, 4).tolist(),
            "generated_node": node.GetName(), "samples": files, "latent_map_png": str(png),
            "ms_per_volume": round(ms_per_volume, 2), "seconds": round(time.perf_counter() - t0, 2)}
