"""Likelihood benchmark on binarised MNIST: VAE vs HVAE vs quasi-symplectic Langevin VAE.

The three models share the encoder/decoder architecture, the latent size (64), the data,
the optimiser and the budget (epochs over the same training subset). Training uses dynamic
binarisation; the test set is binarised once with a fixed seed. Reported per model: the
ELBO and the importance-sampled NLL (IWAE estimator with k samples) in nats, and seconds.
Anchor (thesis Table 4.1, k = 5000, full training): Langevin-VAE 82.40, HVAE 82.75,
IWAE 82.90 nats; pythae's reproductions: HVAE 86.21, IWAE 86.82, VAE 89.78.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from cochleaai.bench import VAE_OPTIONS
from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import write_text_whole
from cochleaai.progress import Progress
from cochleaai.vae.compare import compare_models, resolve_device
from cochleaai.vae.configs import mnist_model_config
from cochleaai.vae.data import binarize, load_mnist
from cochleaai.vae.train import TrainConfig, seeded_model

NAME = "vae-mnist"
DESCRIPTION = "binarised MNIST NLL/ELBO of VAE, HVAE and Langevin-VAE (needs --data mnist.npz)"
#: Where the development copy of ``--data`` lies, from the project root
DATA = "../shared/data/mnist/mnist.npz"
OPTIONS = [
    ("--data", {"help": f"path of mnist.npz (from the project root: {DATA})"}),
    *VAE_OPTIONS,
    ("--lvae-step-mode", {"choices": ("random", "learned"),
                           "help": "Langevin-VAE flow steps: random in [t_a, t_b] (thesis, default) or "
                                   "learned per dimension (as the HVAE)"}),
]

SETTINGS = {
    # quick: fits the 15-minute budget on 2 CPU cores; shows the ranking early in training
    True: {"train": 2000, "val": 500, "test": 200, "epochs": 5, "batch": 50, "lr": 1e-3,
           "patience": 5, "k": 100, "steps": 2},
    # full: the thesis protocol (50k/10k split, k = 5000, early stopping); hours on a CPU
    False: {"train": 50000, "val": 10000, "test": 10000, "epochs": 300, "batch": 100, "lr": 5e-4,
            "patience": 20, "k": 5000, "steps": 5},
}
#: --tiny: the quick protocol on a few hundred images, one epoch
TINY = dict(SETTINGS[True], train=200, val=100, test=20, epochs=1, patience=1, k=4)


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, data=None, device=None,
        vae_epochs=None, vae_k=None, vae_train_size=None, vae_test_size=None, threads=None,
        lvae_step_mode=None, tiny: bool = False) -> dict:
    import torch  # lazy: optional in Slicer until installed

    if not data:
        raise CochleaAIError("vae-mnist needs --data PATH of mnist.npz (from the project root: "
                             "../shared/data/mnist/mnist.npz).")
    p = Progress.wrap(progress)
    s = dict(TINY if tiny else SETTINGS[bool(quick)])
    for key, value in (("epochs", vae_epochs), ("k", vae_k), ("train", vae_train_size),
                       ("test", vae_test_size)):
        if value is not None:
            s[key] = int(value)
    dev = resolve_device(device)
    torch.set_num_threads(int(threads or 1))
    t_start = time.perf_counter()
    train_all = load_mnist(data, "train")
    x_train = train_all[:s["train"]].to(dev)
    x_val = train_all[-s["val"]:].to(dev)
    x_test = binarize(load_mnist(data, "test", limit=s["test"]), seed=1234 + seed).to(dev)

    cfg = TrainConfig(epochs=s["epochs"], batch_size=s["batch"], lr=s["lr"], patience=s["patience"],
                      seed=seed, dynamic_binarization=True)
    figures, histories, _ = compare_models(
        lambda kind: seeded_model(mnist_model_config(kind, s["steps"], 64, lvae_step_mode or "random"),
                                  seed).to(dev),
        x_train, x_val, x_test, cfg, k=s["k"], batch_size=16 if s["k"] > 500 else 64,
        max_batch=8192 if dev != "cpu" else 2048, seed=seed, train_share=0.7, progress=p)
    figures.update({
        "k": s["k"], "n_test": s["test"], "n_train": s["train"], "epochs": s["epochs"],
        "flow_steps": s["steps"], "latent_dim": 64, "device": dev,
        "torch_threads": torch.get_num_threads(), "lvae_step_mode": lvae_step_mode or "random",
        "binarization": "dynamic (train), one fixed seeded draw (test)",
        "seconds": time.perf_counter() - t_start,
    })
    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_text_whole(out / "vae_mnist_history.json", json.dumps(histories, indent=1))
    p(1.0, "done")
    return figures
