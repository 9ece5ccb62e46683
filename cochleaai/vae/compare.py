"""The three models side by side, as both likelihood benchmarks run them.

``compare_models(make_model, train_data, val_data, test_data, config, ...)`` trains each
kind of :data:`~cochleaai.vae.models.MODEL_KINDS` with the same data, optimiser and
budget, estimates its ELBO and importance-sampled NLL on the test set, and returns the
figures per kind, the ranking by NLL, the training histories and the trained models.
``paired_difference`` summarises a paired comparison (per seed or per image) with its
Student-t interval.
"""
from __future__ import annotations

from typing import Callable, Dict, Tuple

import numpy as np
import torch
from scipy import stats

from cochleaai.progress import Progress
from cochleaai.vae.estimate import evaluate
from cochleaai.vae.models import MODEL_KINDS
from cochleaai.vae.train import train

#: Figures reported per model kind.
PER_KIND = ("nll", "elbo", "train_seconds", "eval_seconds", "best_epoch")


def resolve_device(device) -> str:
    """``None``, ``""`` or ``"auto"``: CUDA when there is one, else the CPU."""
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def compare_models(make_model: Callable[[str], object], train_data, val_data, test_data, config,
                   k: int, batch_size: int, max_batch: int, seed: int = 0, train_share: float = 0.8,
                   progress=None) -> Tuple[dict, Dict[str, list], Dict[str, object]]:
    """Train and evaluate ``make_model(kind)`` for every kind; returns (figures, histories,
    models). ``train_share`` of each kind's progress is training, the rest evaluation."""
    p = Progress.wrap(progress)
    figures = {name: {} for name in PER_KIND}
    histories, models = {}, {}
    for i, kind in enumerate(MODEL_KINDS):
        stage = p.stage(i / len(MODEL_KINDS), (i + 1) / len(MODEL_KINDS))
        model = make_model(kind)
        result = train(model, train_data, val_data, config, progress=stage.stage(0.0, train_share))
        ev = evaluate(model, test_data, k=k, batch_size=batch_size, max_batch=max_batch, seed=seed,
                      progress=stage.stage(train_share, 1.0))
        for name, value in (("nll", ev["nll"]), ("elbo", ev["elbo"]), ("train_seconds", result["seconds"]),
                            ("eval_seconds", ev["seconds"]), ("best_epoch", result["best_epoch"])):
            figures[name][kind] = value
        histories[kind], models[kind] = result["history"], model
    ranking = sorted(MODEL_KINDS, key=lambda kind: figures["nll"][kind])
    figures["ranking_by_nll"] = " < ".join(ranking)
    figures["lvae_best"] = ranking[0] == "lvae"
    return figures, histories, models


def paired_difference(first, second, level: float = 0.95) -> dict:
    """Mean of ``first - second`` over paired values (seeds, or images) with its Student-t
    interval at ``level``; the interval is None for a single pair."""
    d = np.asarray(first, dtype=float) - np.asarray(second, dtype=float)
    out = {"mean": float(d.mean()), "n": int(d.size), "interval": None}
    if d.size > 1:
        half = float(stats.t.ppf(0.5 + level / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
        out["interval"] = [out["mean"] - half, out["mean"] + half]
    return out
