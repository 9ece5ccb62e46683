"""Likelihood benchmark on binarised MNIST: VAE vs HVAE vs quasi-symplectic Langevin VAE.

Protocols (``--protocol``):

* ``fair`` (default), sized for a CPU: a fixed subset of 10,000 training images (the next
  1,000 validate), 20 epochs, 500 fixed test images binarised once, k = 500 importance
  samples; three seeds, K = 2 and K = 5 flow steps; the Langevin VAE with nu = 0.01 and,
  as an ablation, nu = 0. Every model gets the same data, networks, optimiser, budget and
  step rule (``--step-mode``, learned per dimension by default). ``--quick`` keeps one seed
  and drops the ablation.
* ``thesis``: the thesis protocol (50k/10k split, 300 epochs, k = 5000, K = 5); hours on a
  GPU. Anchor (thesis Table 4.1): Langevin-VAE 82.40, HVAE 82.75, IWAE 82.90 nats.

Reported: each model's NLL (IWAE estimator, nats) and ELBO per K, their spread over the
seeds, and the paired difference HVAE - LVAE with its 95 % Student-t interval over the
seeds (over the test images when there is one seed). With the nu = 0 ablation it also reports
where a gap comes from: the damping and noise (LVAE nu = 0 against nu = 0.01), the undamped
integrators (HVAE against LVAE nu = 0), and, when K + 1 steps were run too, HVAE with K steps
against LVAE with K + 1, which costs as many gradients. With ``--out-dir``, every trained and
evaluated model leaves one record in ``<out-dir>/vae-mnist-runs/``; a later run with the
same settings reuses it, so a protocol can be resumed, split across processes with
``--shard i/n`` and summarised by one last run without ``--shard``, or extended with
``--flow-steps`` and ``--models``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from cochleaai.arguments import number_list
from cochleaai.bench import VAE_OPTIONS
from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import write_text_whole
from cochleaai.progress import Progress
from cochleaai.vae.compare import paired_difference, resolve_device
from cochleaai.vae.configs import ARCHITECTURES, STEP_MODE, STEP_MODES, mnist_model_config
from cochleaai.vae.data import binarize, load_mnist
from cochleaai.vae.estimate import evaluate
from cochleaai.vae.train import TrainConfig, seeded_model, train

NAME = "vae-mnist"
DESCRIPTION = "binarised MNIST NLL of VAE, HVAE and Langevin-VAE over seeds, paired (needs --data mnist.npz)"
#: Where the development copy of ``--data`` lies, from the project root
DATA = "../shared/data/mnist/mnist.npz"
PROTOCOLS = {
    "fair": {"train": 10000, "val": 1000, "test": 500, "epochs": 20, "batch": 100, "patience": 20,
             "k": 500, "seeds": (0, 1, 2), "steps": (2, 5), "ablation": True},
    "thesis": {"train": 50000, "val": 10000, "test": 10000, "epochs": 300, "batch": 100, "patience": 20,
               "k": 5000, "seeds": (0,), "steps": (5,), "ablation": False},
}
#: --tiny: the fair protocol on a few hundred images, one epoch, one seed, K = 2
TINY = dict(PROTOCOLS["fair"], train=200, val=100, test=20, epochs=1, patience=1, k=4, steps=(2,))
#: The Langevin VAE's damping, and the ablation's
NU, NU_ABLATION = 0.01, 0.0
#: The models a protocol can train; lvae_nu0 is the Langevin VAE without damping or noise;
#: lvae_kdk (only when asked for) the Langevin VAE in the leapfrog's order, which differs
#: from the HVAE by the damping and the noise alone
MODELS = ("vae", "hvae", "lvae", "lvae_nu0", "lvae_kdk")
DEFAULT_MODELS = MODELS[:4]
#: Protocol entries a trained model does not depend on (its own K and seed are in its record)
_NOT_SETTINGS = ("seeds", "ablation", "steps")
OPTIONS = [
    ("--data", {"help": f"path of mnist.npz (from the project root: {DATA})"}),
    *VAE_OPTIONS,
    ("--protocol", {"choices": tuple(PROTOCOLS), "default": "fair",
                    "help": "fair: the CPU protocol over three seeds (default); thesis: 300 epochs, k = 5000"}),
    ("--seeds", {"type": number_list(0), "help": "seeds, comma-separated (default: the protocol's; "
                                                 "--quick: --seed alone)"}),
    ("--flow-steps", {"type": number_list(1, 50), "help": "numbers of flow steps K, comma-separated"}),
    ("--step-mode", {"choices": STEP_MODES, "default": STEP_MODE,
                     "help": "flow steps of both HVAE and LVAE: learned per dimension (default) or drawn "
                             "at random in [0.01, 0.5] for every sample (the ablation)"}),
    ("--architecture", {"choices": tuple(ARCHITECTURES), "default": "small",
                        "help": "small: 3x3 kernels, 256 units, ELU, Adam; thesis: 5x5, 450, Softplus, "
                                "average-logit bias, Adamax (lr 5e-4, eps 1e-7)"}),
    ("--models", {"type": lambda text: [v.strip() for v in text.split(",") if v.strip()],
                  "help": f"models to train, comma-separated, from {','.join(MODELS)} (default: all the "
                          "protocol has)"}),
    ("--no-train", {"action": "store_true",
                    "help": "train nothing: summarise the records in --out-dir that match the settings"}),
    ("--shard", {"help": "i/n: train only every n-th model from the i-th (1-based); needs --out-dir, "
                         "and a last run without --shard summarises"}),
]


def _runs(s: dict, seeds, models=DEFAULT_MODELS) -> list:
    """(name, kind, K, nu, seed) of every model the protocol trains, in a fixed order."""
    runs = []
    for seed in seeds:
        runs.append(("vae", "vae", 0, 0.0, seed))
        for K in s["steps"]:
            runs += [("hvae", "hvae", K, 0.0, seed), ("lvae", "lvae", K, NU, seed)]
            if s["ablation"]:
                runs.append(("lvae_nu0", "lvae", K, NU_ABLATION, seed))
            runs.append(("lvae_kdk", "lvae", K, NU, seed))
    return [r for r in runs if r[0] in models]


def _model_settings(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k not in _NOT_SETTINGS}


def _shard(text):
    if not text:
        return None
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise CochleaAIError(f"--shard takes i/n (for example 1/2), got {text!r}.") from None
    if not 1 <= i <= n:
        raise CochleaAIError(f"--shard i/n needs 1 <= i <= n, got {text!r}.")
    return i, n


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, data=None, device=None,
        vae_epochs=None, vae_k=None, vae_train_size=None, vae_test_size=None, threads=None,
        protocol: str = "fair", seeds=None, flow_steps=None, step_mode: str = STEP_MODE,
        architecture: str = "small", shard=None, models=None, no_train: bool = False,
        tiny: bool = False) -> dict:
    import torch  # lazy: optional in Slicer until installed

    if not data:
        raise CochleaAIError(f"vae-mnist needs --data PATH of mnist.npz (from the project root: {DATA}).")
    if protocol not in PROTOCOLS:
        raise CochleaAIError(f"Unknown protocol {protocol!r}; use one of {sorted(PROTOCOLS)}.")
    if architecture not in ARCHITECTURES:
        raise CochleaAIError(f"Unknown architecture {architecture!r}; use one of {sorted(ARCHITECTURES)}.")
    part = _shard(shard)
    unknown = sorted(set(models or ()) - set(MODELS))
    if unknown:
        raise CochleaAIError(f"Unknown model(s) {', '.join(unknown)}; use some of {', '.join(MODELS)}.")
    if (part or no_train) and not out_dir:
        raise CochleaAIError("--shard and --no-train need --out-dir, where the records are.")
    p = Progress.wrap(progress)
    s = dict(TINY if tiny else PROTOCOLS[protocol])
    if quick and not tiny:
        s.update(seeds=(int(seed),), ablation=False)
    if tiny:
        s["seeds"] = (int(seed),)
    if models and "lvae_nu0" in models:
        s["ablation"] = True
    for key, value in (("epochs", vae_epochs), ("k", vae_k), ("train", vae_train_size),
                       ("test", vae_test_size), ("seeds", seeds), ("steps", flow_steps)):
        if value is not None:
            s[key] = tuple(value) if isinstance(value, (list, tuple)) else int(value)
    dev = resolve_device(device)
    torch.set_num_threads(int(threads or 1))
    t_start = time.perf_counter()
    train_all = load_mnist(data, "train")
    if s["train"] + s["val"] > len(train_all):
        raise CochleaAIError(f"The file holds {len(train_all)} training images; the protocol needs "
                             f"{s['train']} + {s['val']} for validation.")
    x_train = train_all[:s["train"]].to(dev)
    x_val = train_all[s["train"]:s["train"] + s["val"]].to(dev)
    # the same binarised test images for every seed and model, so differences are paired
    x_test = binarize(load_mnist(data, "test", limit=s["test"]), seed=1234).to(dev)
    optimiser = ARCHITECTURES[architecture]["optimizer"]
    # what a record depends on (which seeds and models a run trains does not change one model)
    settings = _model_settings({key: (list(v) if isinstance(v, tuple) else v) for key, v in s.items()})
    settings.update(architecture=architecture, step_mode=step_mode, optimiser=optimiser, latent_dim=64,
                    test_binarization_seed=1234)

    runs = _runs(s, s["seeds"], models or (MODELS if no_train else DEFAULT_MODELS))
    todo = runs if part is None else runs[part[0] - 1::part[1]]
    records_dir = Path(out_dir) / "vae-mnist-runs" if out_dir else None
    records = {}
    for i, (name, kind, K, nu, run_seed) in enumerate(todo):
        key = f"{architecture}-{step_mode}-{name}-K{K}-seed{run_seed}"
        path = records_dir / f"{key}.json" if records_dir else None
        if path is not None and path.is_file():
            record = json.loads(path.read_text())
            if _model_settings(record.get("settings", {})) == settings:
                records[key] = record
                continue
        if no_train:
            continue
        stage = p.stage(i / len(todo), (i + 1) / len(todo))
        integrator = "kdk" if name == "lvae_kdk" else "dkd"
        model = seeded_model(mnist_model_config(kind, max(K, 1), 64, step_mode, architecture, nu, integrator),
                             run_seed).to(dev)
        cfg = TrainConfig(epochs=s["epochs"], batch_size=s["batch"], patience=s["patience"], seed=run_seed,
                          dynamic_binarization=True, **optimiser)
        result = train(model, x_train, x_val, cfg, progress=stage.stage(0.0, 0.7))
        ev = evaluate(model, x_test, k=s["k"], batch_size=16 if s["k"] > 500 else 64,
                      max_batch=8192 if dev != "cpu" else 2048, seed=run_seed, progress=stage.stage(0.7, 1.0))
        record = {"settings": settings, "model": name, "K": K, "nu": nu, "seed": run_seed,
                  "nll": ev["nll"], "elbo": ev["elbo"], "train_seconds": result["seconds"],
                  "eval_seconds": ev["seconds"], "best_epoch": result["best_epoch"],
                  "nll_per_item": [float(v) for v in ev["nll_per_item"]],
                  "history": result["history"]}
        records[key] = record
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_whole(path, json.dumps(record))
    p(1.0, "done")
    if no_train and not records:
        raise CochleaAIError(f"{records_dir} holds no record with these settings; run without --no-train first.")
    if part is not None:
        return {"shard": f"{part[0]}/{part[1]}", "models_done": len(records), "models_in_protocol": len(runs),
                "seconds": time.perf_counter() - t_start}
    figures = summarise(list(records.values()), s["steps"])
    figures.update({
        "protocol": protocol + (" (quick: one seed)" if quick and not tiny else ""),
        "seeds": ",".join(str(v) for v in s["seeds"]), "k": s["k"], "n_test": s["test"],
        "n_train": s["train"], "epochs": s["epochs"], "architecture": architecture, "step_mode": step_mode,
        "latent_dim": 64, "device": dev, "torch_threads": torch.get_num_threads(),
        "binarization": "dynamic (train), one fixed seeded draw (test, the same for every model)",
        "seconds": time.perf_counter() - t_start,
    })
    return figures


def summarise(records: list, steps) -> dict:
    """NLL per model and K (mean and spread over seeds), the paired HVAE - LVAE difference
    with its 95 % interval, LVAE's gap to the better of VAE and HVAE, the differences that say
    where a gap comes from, and one row per model."""
    by = {}
    for r in records:
        by.setdefault((r["model"], r["K"]), {})[r["seed"]] = r
    figures = {}
    vae = by.get(("vae", 0), {})
    for K in steps:
        names = [n for n in MODELS[1:] if (n, K) in by]
        table = {**({"vae": vae} if vae else {}), **{n: by[(n, K)] for n in names}}
        figures[f"nll_K{K}"] = {n: float(np.mean([r["nll"] for r in t.values()])) for n, t in table.items()}
        figures[f"nll_sd_K{K}"] = {n: float(np.std([r["nll"] for r in t.values()], ddof=1)) if len(t) > 1 else 0.0
                                   for n, t in table.items()}
        diff = _paired(figures, f"hvae_minus_lvae_K{K}", by.get(("hvae", K), {}), by.get(("lvae", K), {}))
        if diff is None:
            continue
        figures[f"hvae_minus_lvae_K{K}_interval_over"] = diff["over"]
        figures[f"verdict_K{K}"] = _verdict(diff["interval"])
        better = min(figures[f"nll_K{K}"]["vae"], figures[f"nll_K{K}"]["hvae"]) if vae else figures[f"nll_K{K}"]["hvae"]
        figures[f"lvae_minus_best_other_K{K}"] = figures[f"nll_K{K}"]["lvae"] - better
    # where a gap comes from: damping and noise (nu = 0.01 against 0), the integrator (leapfrog
    # against position Verlet, both undamped), and the gradient count: HVAE's K leapfrog steps
    # take K + 1 gradients, as many as LVAE's K + 1 steps
    for K in steps:
        hvae, nu0 = by.get(("hvae", K), {}), by.get(("lvae_nu0", K), {})
        _paired(figures, f"lvae_nu0_minus_lvae_K{K}", nu0, by.get(("lvae", K), {}), seeds_only=True)
        _paired(figures, f"hvae_minus_lvae_nu0_K{K}", hvae, nu0, seeds_only=True)
        _paired(figures, f"hvae_minus_lvae_kdk_K{K}", hvae, by.get(("lvae_kdk", K), {}), seeds_only=True)
        _paired(figures, f"lvae_kdk_minus_lvae_K{K}", by.get(("lvae_kdk", K), {}), by.get(("lvae", K), {}),
                seeds_only=True)
        for name in ("lvae", "lvae_nu0"):
            _paired(figures, f"hvae_K{K}_minus_{name}_K{K + 1}", hvae, by.get((name, K + 1), {}), seeds_only=True)
    figures["runs"] = [{"model": r["model"], "K": r["K"], "seed": r["seed"], "nll": r["nll"], "elbo": r["elbo"],
                        "train_s": r["train_seconds"], "eval_s": r["eval_seconds"], "best_epoch": r["best_epoch"]}
                       for r in sorted(records, key=lambda r: (r["K"], r["model"], r["seed"]))]
    figures["cpu_hours"] = sum(r["train_seconds"] + r["eval_seconds"] for r in records) / 3600.0
    return figures


def _paired(figures: dict, key: str, a: dict, b: dict, seeds_only: bool = False):
    """Mean of A - B paired by seed with its 95 % interval, into ``figures[key]`` and
    ``figures[key + "_ci95"]``. With one common seed the interval is over the test images
    (it leaves out seed-to-seed spread), or nothing is written when ``seeds_only``."""
    common = sorted(set(a) & set(b))
    if not common or (seeds_only and len(common) < 2):
        return None
    if len(common) > 1:
        diff = dict(paired_difference([a[s]["nll"] for s in common], [b[s]["nll"] for s in common]), over="seeds")
    else:
        diff = dict(paired_difference(a[common[0]]["nll_per_item"], b[common[0]]["nll_per_item"]),
                    over="test images (one seed)")
    figures[key], figures[f"{key}_ci95"] = diff["mean"], diff["interval"]
    return diff


def _verdict(interval) -> str:
    if interval is None:
        return "one pair: no interval"
    lo, hi = interval
    if lo > 0:
        return "LVAE better (HVAE - LVAE > 0 beyond the interval)"
    if hi < 0:
        return "HVAE better (HVAE - LVAE < 0 beyond the interval)"
    return "tie (the interval contains 0)"
