"""``bench mar --ablation``: the thesis's ablation of MARGAN's losses and simulation (its
table 2.5), with short trainings on a small set.

Four generators, trained alike (same pairs, seed, steps and adversarial term) but for:

* ``l1``: the L1 distance instead of the MSE, no Retinex term;
* ``l2``: the MSE alone (Retinex weight 0);
* ``l2_retinex``: the MSE with the Retinex term (the method);
* ``l2_retinex_clean_sim``: the same, on pairs simulated without scatter and noise (beam
  hardening only).

All are scored on the same held-out pairs, simulated with the full physics: PSNR, RMSE and
SSIM against the metal-free scan, metal excluded. The trainings are much shorter than the
shipped model's, so the figures are those of young networks: they rank the choices, they do
not reproduce the shipped model's.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from cochleaai.mar.dispatch import reduce_metal_artifacts
from cochleaai.mar.margan.model_io import load_model
from cochleaai.mar.margan.train import TrainConfig, train
from cochleaai.mar.quality import similarity
from cochleaai.progress import Progress
from cochleaai.simulation.pairs import PairSpec, make_pair, write_pair

VARIANTS = {"l1": {"pixel_loss": "l1", "alpha": 0.0}, "l2": {"pixel_loss": "mse", "alpha": 0.0},
            "l2_retinex": {"pixel_loss": "mse"}, "l2_retinex_clean_sim": {"pixel_loss": "mse", "clean": True}}
#: (training pairs, steps, held-out pairs): full, and --quick.
SIZES = {False: (10, 60, 6), True: (4, 12, 3)}
TINY_SIZES = (2, 2, 1)            # --tiny
ABLATION_SEED = 200_000          # phantoms of this set come from seeds no other set uses


def _pairs(folder: Path, n: int, seed: int, clean: bool, p) -> Path:
    folder.mkdir(parents=True)
    for k in range(n):
        p(k / n, f"pair {k + 1}/{n}" + (" (no scatter, no noise)" if clean else ""))
        # phantoms shared by three pairs each, as in simulate-pairs
        spec = PairSpec(k, seed + k, f"phantom:{seed + 1000 + k // 3}")
        target, postop, sim, info = make_pair(spec, clean=clean)
        write_pair(folder / f"pair_{k:05d}", target, postop, sim, dict(info, index=k, seed=spec.seed))
    return folder


def run_ablation(quick: bool = False, seed: int = 0, progress=None, tiny: bool = False) -> dict:
    """The ablation: ``ablation_psnr``, ``ablation_rmse``, ``ablation_ssim`` (each
    ``{variant: mean}``, the input first) and the set-up."""
    p = Progress.wrap(progress)
    n_train, steps, n_test = TINY_SIZES if tiny else SIZES[bool(quick)]
    base = ABLATION_SEED + 10_000 * seed
    settings = dict(steps=steps, adv_start=steps // 2, val_every=max(1, steps // 4),
                    checkpoint_every=steps, seed=seed)
    with tempfile.TemporaryDirectory(prefix="cochleaai-ablation-") as tmp:
        tmp = Path(tmp)
        sets = {False: _pairs(tmp / "full", n_train, base, False, p.stage(0.0, 0.1)),
                True: _pairs(tmp / "clean", n_train, base, True, p.stage(0.1, 0.2))}
        models = {}
        for k, (name, v) in enumerate(VARIANTS.items()):
            stage = p.stage(0.2 + 0.15 * k, 0.35 + 0.15 * k)
            stage(0.0, f"training {name}")
            opts = {key: val for key, val in v.items() if key != "clean"}
            train(sets[bool(v.get("clean"))], tmp / name, TrainConfig(**settings, **opts), progress=stage,
                  command=f"bench mar --ablation: {name}")
            models[name] = load_model(tmp / f"{name}.pt")
        scores = {m: [] for m in ("input",) + tuple(models)}
        for j in range(n_test):
            p(0.8 + 0.2 * j / n_test, f"held-out pair {j + 1}/{n_test}")
            spec = PairSpec(j, base + 5000 + j, f"phantom:{base + 6000 + j}")
            target, post, sim, _ = make_pair(spec)
            tgt = target.array.astype(np.float32)
            metal = sim.metal.array.astype(bool)
            post_f = post.copy(post.array.astype(np.float32))
            scores["input"].append(similarity(tgt, post_f.array, metal))
            for name, model in models.items():
                out = reduce_metal_artifacts(post_f, "margan", model=model).image.array
                scores[name].append(similarity(tgt, out, metal))
    p(1.0, "done")
    out = {"ablation_variants": list(scores)}
    for key in ("psnr", "rmse", "ssim"):
        out[f"ablation_{key}"] = {name: round(float(np.mean([x[key] for x in v])), 4) for name, v in scores.items()}
    out["ablation_setup"] = {"training_pairs": n_train, "steps": steps, "held_out_pairs": n_test,
                             "channels": list(TrainConfig.channels)}
    return out
