"""Seeded training with progress, Cancel, checkpoints and early stopping on a validation ELBO.

The optimiser is Adam by default; Adamax (thesis section 4.3.1) is an option but left the
networks in the collapsed state much longer in our measurements (docs/vae.md). Each epoch shuffles the training
set with the run's own generator; binary images may be re-binarised at each epoch
(``dynamic_binarization``, the usual protocol for MNIST). After each epoch the ELBO of the
validation set (one draw per item, a fixed seed so epochs compare) decides early stopping;
the best weights are kept, restored at the end and, with ``checkpoint``, saved as a model.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np
import torch

from cochleaai.errors import CochleaAIError
from cochleaai.progress import Progress
from cochleaai.vae.configs import volume_model_config
from cochleaai.vae.estimate import evaluate
from cochleaai.vae.model_io import save_model
from cochleaai.vae.models import build_model


@dataclass
class TrainConfig:
    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"              # "adam", or "adamax" (thesis; learned slower here)
    eps: float = 1e-8                    # the optimiser's epsilon (thesis Table 4.3: 1e-7 with Adamax)
    patience: int = 10                   # epochs without a better validation ELBO
    seed: int = 0
    max_seconds: Optional[float] = None  # wall-clock budget (None: no limit)
    max_steps: Optional[int] = None      # optimiser steps budget (None: no limit)
    dynamic_binarization: bool = False
    grad_clip: float = 1000.0            # guards the flows against rare exploding gradients
    val_batch_size: int = 256


def seeded_model(config, seed: int):
    """Build a model from its config with seeded weights."""
    torch.manual_seed(int(seed))
    return build_model(config)


def start_output_bias(model, train_x: torch.Tensor) -> bool:
    """Start a decoder's output bias at the training data's average, in the likelihood's
    parameter space (the average logit for Bernoulli images); False when it has none."""
    average = train_x.mean(dim=0)
    if model.likelihood.name == "bernoulli":
        average = torch.logit(average.clamp(1e-3, 1 - 1e-3))
    return model.decoder.start_output_bias(average)


def train(model, train_x: torch.Tensor, val_x: Optional[torch.Tensor] = None,
          config: Optional[TrainConfig] = None, progress=None, checkpoint=None,
          card: Optional[dict] = None) -> dict:
    """Train ``model`` in place; returns the history and the best validation ELBO.

    ``train_x`` / ``val_x``: float tensors (N, C, *spatial), in [0, 1] for Bernoulli models.
    ``checkpoint``: path (stem) where the best model so far is saved with ``card``.
    Cancelling (through ``progress``) stops at the next batch and raises ``Cancelled``.
    """
    cfg = config or TrainConfig()
    p = Progress.wrap(progress)
    if train_x.shape[0] == 0:
        raise CochleaAIError("No training data: give at least one image or volume.")
    for name, data in (("training", train_x), ("validation", val_x)):
        if data is not None and not torch.isfinite(data).all():
            raise CochleaAIError(f"The {name} data contain NaN or infinite values; clean them first.")
    if cfg.batch_size < 1 or cfg.epochs < 1:
        raise CochleaAIError("epochs and batch size must be at least 1.")
    device = train_x.device
    generator = torch.Generator(device=device).manual_seed(int(cfg.seed))
    torch.manual_seed(int(cfg.seed))
    optimizers = {"adamax": torch.optim.Adamax, "adam": torch.optim.Adam}
    if cfg.optimizer not in optimizers:
        raise CochleaAIError(f"Unknown optimizer {cfg.optimizer!r}; use adamax or adam.")
    optimizer = optimizers[cfg.optimizer](model.parameters(), lr=cfg.lr, eps=cfg.eps)
    start_output_bias(model, train_x)
    val_fixed = val_x
    if val_x is not None and cfg.dynamic_binarization:
        val_fixed = torch.bernoulli(val_x, generator=torch.Generator(device=device).manual_seed(cfg.seed + 1))

    n = train_x.shape[0]
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, int(cfg.max_steps))
    history = {"epoch": [], "train_loss": [], "val_elbo": [], "seconds": []}
    best, best_state, best_epoch, stale, step = -math.inf, None, -1, 0, 0
    t0 = time.perf_counter()
    stop_reason = "epochs"
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(n, generator=generator, device=device)
        losses = []
        for s in range(0, n, cfg.batch_size):
            p(step / max(total_steps, 1), f"epoch {epoch + 1}/{cfg.epochs}, step {step + 1}")
            xb = train_x[order[s:s + cfg.batch_size]]
            if cfg.dynamic_binarization:
                xb = torch.bernoulli(xb, generator=generator)
            loss = model.loss(xb, generator)                 # train mode: graph through the flow
            if not torch.isfinite(loss):
                raise CochleaAIError("Training diverged (the loss became infinite or NaN); lower "
                                     "the learning rate or the flow step range and try again.")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            losses.append(float(loss.detach()))
            step += 1
            if cfg.max_steps is not None and step >= cfg.max_steps:
                stop_reason = "step budget"
                break
            if cfg.max_seconds is not None and time.perf_counter() - t0 > cfg.max_seconds:
                stop_reason = "time budget"
                break
        if val_fixed is not None:
            val = evaluate(model, val_fixed, k=1, batch_size=cfg.val_batch_size, seed=cfg.seed)["elbo"]
        else:
            val = -sum(losses) / len(losses)
        history["epoch"].append(epoch + 1)
        history["train_loss"].append(sum(losses) / len(losses))
        history["val_elbo"].append(val)
        history["seconds"].append(time.perf_counter() - t0)
        if val > best:
            best, best_epoch, stale = val, epoch + 1, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if checkpoint is not None:
                save_model(model, checkpoint, dict(card or {}, training_progress={
                    "epoch": epoch + 1, "val_elbo": val, "config": asdict(cfg)}))
        else:
            stale += 1
        if stop_reason != "epochs":
            break
        if stale >= cfg.patience:
            stop_reason = "early stopping"
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    p(1.0, f"training done ({stop_reason})")
    return {"history": history, "best_val_elbo": best, "best_epoch": best_epoch, "steps": step,
            "stop_reason": stop_reason, "seconds": time.perf_counter() - t0, "config": asdict(cfg)}


# --------------------------------------------------------------------------- volume models
def split_train_val(arrays, val_fraction: float = 0.2, seed: int = 0):
    """Seeded split of a stack (N, ...) into training and validation stacks (>= 1 each)."""
    n = len(arrays)
    if n < 2:
        raise CochleaAIError(f"Training needs at least 2 volumes (one to validate), got {n}.")
    order = np.random.default_rng(int(seed)).permutation(n)
    n_val = min(max(1, int(round(val_fraction * n))), n - 1)
    return arrays[np.sort(order[n_val:])], arrays[np.sort(order[:n_val])]


def train_volume_model(arrays, grid, out=None, kind: str = "lvae", latent_dim: int = 2,
                       config: Optional[TrainConfig] = None, model_overrides: Optional[dict] = None,
                       card: Optional[dict] = None, progress=None, val_fraction: float = 0.2,
                       device: str = "cpu"):
    """Train a volume model on normalised arrays (N, z, y, x); save it to ``out`` if given.

    Returns ``(model, card)``. The card records the grid, the data and the training figures.
    """
    cfg = config or TrainConfig()
    arrays = np.asarray(arrays, dtype=np.float32)
    if arrays.ndim != 4 or tuple(arrays.shape[1:]) != tuple(grid.shape):
        raise CochleaAIError(f"Volumes must be resampled to the grid {grid.shape} first "
                             f"(cochleaai.vae.data.volumes_to_grid); got {arrays.shape}.")
    if not np.all(np.isfinite(arrays)):
        raise CochleaAIError("The volumes contain NaN or infinite values; fill or mask them first.")
    tr, va = split_train_val(arrays, val_fraction, cfg.seed)
    try:
        model_cfg = volume_model_config(kind, latent_dim, grid, **(model_overrides or {}))
    except ValueError as exc:
        raise CochleaAIError(f"Invalid model settings: {exc}.") from None
    model = seeded_model(model_cfg, cfg.seed).to(device)
    result = train(model, torch.from_numpy(tr).unsqueeze(1).to(device),
                   torch.from_numpy(va).unsqueeze(1).to(device), cfg,
                   progress=progress, checkpoint=out,
                   card=dict(card or {}, data={"kind": "volume", "grid": grid.to_dict()}))
    record = dict(card or {})
    record["data"] = dict(record.get("data") or {}, kind="volume", grid=grid.to_dict(),
                          n_train=int(len(tr)), n_val=int(len(va)))
    record["training"] = dict(record.get("training") or {}, config=asdict(cfg),
                              best_val_elbo=result["best_val_elbo"], best_epoch=result["best_epoch"],
                              steps=result["steps"], stop_reason=result["stop_reason"],
                              seconds=round(result["seconds"], 1), device=str(device))
    model.cpu()
    if out is not None:
        save_model(model, out, record)
    return model, record
