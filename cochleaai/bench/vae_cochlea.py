"""VAE vs HVAE vs Langevin-VAE on roi phantom CT volumes (after thesis Table 4.2).

The three models share the 3D encoder/decoder, the latent size, the phantoms and the
budget. The phantoms (``make_phantom(seed, fov="roi")``, 60 x 50 x 50 voxels of 0.2 mm) are
smoothed and resampled to a coarser grid and cached on disk (``$COCHLEAAI_CACHE`` or
``~/.cache/cochleaai``). Likelihood: Gaussian on normalised HU ((HU - 1000) / 1000), so the
NLL is in nats of normalised values per volume; ``nats_offset_hu`` converts it to HU units.
Test volumes are phantoms whose seeds were not used for training.
"""
from __future__ import annotations

import time

import numpy as np

from cochleaai.bench import VAE_OPTIONS
from cochleaai.progress import Progress
from cochleaai.vae.compare import compare_models, resolve_device
from cochleaai.vae.configs import volume_model_config
from cochleaai.vae.data import VolumeGrid, phantom_dataset
from cochleaai.vae.likelihoods import Gaussian
from cochleaai.vae.train import TrainConfig, seeded_model, split_train_val

NAME = "vae-cochlea"
DESCRIPTION = "ELBO/NLL of VAE, HVAE and Langevin-VAE on roi phantom CT volumes (thesis Table 4.2)"
OPTIONS = VAE_OPTIONS

SETTINGS = {
    True: {"grid": ((17, 17, 20), 0.6), "seeds": 40, "test": 8, "epochs": 40, "batch": 4,
           "lr": 2e-3, "patience": 10, "k": 200, "latent": 8, "steps": 2},
    False: {"grid": ((25, 25, 30), 0.4), "seeds": 160, "test": 20, "epochs": 300, "batch": 8,
            "lr": 1e-3, "patience": 30, "k": 1000, "latent": 8, "steps": 5},
}
#: --tiny: the quick grid, three phantoms (one to train, one to validate, one to test), one epoch
TINY = dict(SETTINGS[True], seeds=3, test=1, epochs=1, batch=1, patience=1, k=4)


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, device=None,
        vae_epochs=None, vae_k=None, vae_train_size=None, vae_test_size=None, threads=None,
        cache=None, tiny: bool = False) -> dict:
    """``cache``: the folder of the resampled phantoms (default: see the module's docstring)."""
    import torch  # lazy: optional in Slicer until installed

    p = Progress.wrap(progress)
    s = dict(TINY if tiny else SETTINGS[bool(quick)])
    if vae_epochs is not None:
        s["epochs"] = int(vae_epochs)
    if vae_k is not None:
        s["k"] = int(vae_k)
    if vae_test_size is not None:
        s["test"] = int(vae_test_size)
    if vae_train_size is not None:
        s["seeds"] = int(vae_train_size) + s["test"]
    dev = resolve_device(device)
    torch.set_num_threads(int(threads or 1))
    grid = VolumeGrid(*s["grid"])
    t_start = time.perf_counter()
    arrays = phantom_dataset(range(s["seeds"]), grid, cache_dir=cache, progress=p.stage(0.0, 0.15))
    test = torch.from_numpy(arrays[-s["test"]:]).unsqueeze(1).to(dev)
    tr, va = split_train_val(arrays[:-s["test"]], 0.2, seed)
    tr = torch.from_numpy(tr).unsqueeze(1).to(dev)
    va = torch.from_numpy(va).unsqueeze(1).to(dev)

    cfg = TrainConfig(epochs=s["epochs"], batch_size=s["batch"], lr=s["lr"], patience=s["patience"],
                      seed=seed)
    figures, _, models = compare_models(
        lambda kind: seeded_model(volume_model_config(kind, s["latent"], grid, steps=s["steps"]), seed).to(dev),
        tr, va, test, cfg, k=s["k"], batch_size=4, max_batch=256, seed=seed, progress=p.stage(0.15, 1.0))
    figures["sigma_hu"] = {kind: float(m.likelihood.sigma().detach()) * grid.hu_scale for kind, m in models.items()}
    figures.update({
        "k": s["k"], "n_train": int(tr.shape[0]), "n_val": int(va.shape[0]), "n_test": s["test"],
        "grid": "x".join(str(n) for n in grid.shape[::-1]) + f" @ {grid.spacing_mm} mm",
        "latent_dim": s["latent"], "flow_steps": s["steps"], "epochs": s["epochs"], "device": dev,
        "units": "nats per volume of normalised HU ((HU - 1000) / 1000)",
        "nats_offset_hu": Gaussian.nats_offset_to_hu(int(np.prod(grid.shape)), grid.hu_scale),
        "seconds": time.perf_counter() - t_start,
    })
    p(1.0, "done")
    return figures
