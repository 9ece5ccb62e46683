"""MARGAN training on simulated pairs (whole volumes, batches of one, CPU or GPU).

Each step takes one training pair (random order per epoch, random flips of the three axes:
a mirrored scan is still a scan), updates the discriminator on the target and the detached
output, then the generator on MSE + alpha Retinex + ``adv_weight`` times the least-squares
adversarial term. The adversarial terms start after ``adv_start`` steps, once the generator
removes most of the artifact (early on, a discriminator only sees the metal streaks and
its gradient swamps the MSE). Optimiser: Adam with a generator learning rate of 1e-3 by
default; the thesis's RMSprop (1e-4 for the generator, 1e-3 for the discriminator) is
``optimizer="rmsprop", lr_g=1e-4``. On a short CPU budget Adam learnt faster: after 40
steps (8-16-32 channels, 36 training pairs) the validation RMSE was 144 HU with Adam at
1e-3, 150 HU with RMSprop at 1e-3 and 164 HU with RMSprop at 1e-4 (input: 329 HU).

The validation loss (MSE in unit intensity, the held-out share of the pairs, no flips) is
measured every ``val_every`` steps; the generator with the lowest one is the result. A
checkpoint (networks, optimisers, step, best weights) is written every ``checkpoint_every``
steps and at the end, so ``resume=True`` continues an interrupted run.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Optional, Tuple

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import written_whole
from cochleaai.mar.margan.losses import (ALPHA, PIXEL_LOSSES, SIGMA_VOXELS, discriminator_loss, generator_adversarial,
                                         mse_loss, retinex_loss)
from cochleaai.mar.margan.inference import correct
from cochleaai.mar.margan.model_io import MarganModel, save_model
from cochleaai.mar.margan.network import (GeneratorConfig, build_discriminator, build_generator, from_unit,
                                          pad_to_multiple, to_unit)
from cochleaai.mar.margan.reach import band_gains, error_by_distance
from cochleaai.mar.methods import DEFAULT_THRESHOLD_HU
from cochleaai.model_files import model_paths
from cochleaai.progress import Progress
from cochleaai.simulation.pairs import pair_folders, read_pair


@dataclass
class TrainConfig:
    steps: int = 600
    channels: Tuple[int, ...] = (16, 32, 64)
    alpha: float = ALPHA
    pixel_loss: str = "mse"            # or "l1" (the ablation)
    sigma_voxels: float = SIGMA_VOXELS
    adv_weight: float = 1e-3
    adv_start: int = 100
    optimizer: str = "adam"
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    val_fraction: float = 0.1
    val_every: int = 50
    checkpoint_every: int = 50
    max_minutes: Optional[float] = None
    seed: int = 0
    device: str = "auto"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


def load_pairs(pairs_dir, limit: Optional[int] = None):
    """Post-op inputs and targets of a pair set as unit-intensity arrays; ``(inputs, targets,
    names, shape, spacing)``."""
    folders = pair_folders(pairs_dir)[:limit]
    xs, ys, names, shape, spacing = [], [], [], None, None
    for f in folders:
        post, pre, _ = read_pair(f)
        if shape is None:
            shape, spacing = post.shape, tuple(float(v) for v in post.spacing)
        if post.shape != shape or pre.shape != shape:
            raise CochleaAIError(f"{f.name}: its volumes are {post.shape}, the others {shape}; a pair set "
                                 "must share one grid.")
        xs.append(to_unit(post.array.astype(np.float32)))
        ys.append(to_unit(pre.array.astype(np.float32)))
        names.append(f.name)
    return np.stack(xs), np.stack(ys), names, shape, spacing


def _reach_on(model, pairs, spacing):
    """The error of the input and of ``model``'s full correction by distance from the metal on
    ``pairs`` (unit-intensity ``(input, target)``), and the correction's gains from it."""
    cases = []
    for x, y in pairs:
        image, target = from_unit(x), from_unit(y)
        metal = image >= DEFAULT_THRESHOLD_HU
        cases.append((image, correct(model, image, metal, spacing), target, metal))
    table = error_by_distance(cases, spacing)
    return table, band_gains(table)


def _device(name: str):
    import torch  # lazy: installed on first use in Slicer

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _optimisers(settings: TrainConfig, g, d):
    import torch  # lazy: installed on first use in Slicer

    if settings.optimizer == "adam":
        return (torch.optim.Adam(g.parameters(), settings.lr_g, betas=(0.5, 0.999)),
                torch.optim.Adam(d.parameters(), settings.lr_d, betas=(0.5, 0.999)))
    if settings.optimizer == "rmsprop":
        return torch.optim.RMSprop(g.parameters(), settings.lr_g), torch.optim.RMSprop(d.parameters(), settings.lr_d)
    raise CochleaAIError(f"Unknown optimizer {settings.optimizer!r}; use 'rmsprop' or 'adam'.")


def train(pairs_dir, out, settings: TrainConfig = TrainConfig(), resume: bool = False,
          progress=None, command: str = "", limit: Optional[int] = None) -> dict:
    """Train and save the model ``out`` (.pt + .json card); returns the card's training record."""
    import torch  # lazy: installed on first use in Slicer

    p = Progress.wrap(progress)
    if settings.steps < 1:
        raise CochleaAIError("--steps must be at least 1.")
    if settings.pixel_loss not in PIXEL_LOSSES:
        raise CochleaAIError(f"Unknown pixel loss {settings.pixel_loss!r}; choose one of: {', '.join(PIXEL_LOSSES)}.")
    pixel_loss = PIXEL_LOSSES[settings.pixel_loss]
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    p(0.0, "reading the pairs")
    xs, ys, names, shape, spacing = load_pairs(pairs_dir, limit)
    n = len(names)
    n_val = int(round(settings.val_fraction * n)) if n > 1 else 0
    n_val = min(max(n_val, 1 if n > 1 else 0), n - 1)
    order = rng.permutation(n)
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    config = GeneratorConfig(tuple(int(c) for c in settings.channels))
    pad = lambda a: pad_to_multiple(a, config.multiple, 0.0)[0]
    val_pairs = [(xs[i], ys[i]) for i in val_idx]
    xs = np.stack([pad(a) for a in xs])
    ys = np.stack([pad(a) for a in ys])
    dev = _device(settings.device)
    g, d = build_generator(config).to(dev), build_discriminator().to(dev)
    opt_g, opt_d = _optimisers(settings, g, d)

    stem = model_paths(out)[0].with_suffix("")
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CochleaAIError(f"Cannot create '{stem.parent}' ({exc}); choose a writable folder.") from exc
    ckpt = stem.with_name(stem.name + ".checkpoint.pt")
    step, best, best_state, history, elapsed0 = 0, float("inf"), None, [], 0.0
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location=dev, weights_only=True)
        g.load_state_dict(state["g"])
        d.load_state_dict(state["d"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        step, best = int(state["step"]), float(state["best"])
        best_state = state.get("best_g")
        history = json.loads(bytes(state["history"].tolist()).decode()) if "history" in state else []
        elapsed0 = float(state.get("seconds", torch.tensor(0.0)))
        rng = np.random.default_rng([settings.seed, step])

    def as_tensor(a):
        return torch.from_numpy(np.ascontiguousarray(a))[None, None].to(dev)

    def validate() -> float:
        g.eval()
        with torch.no_grad():
            losses = [float(mse_loss(g(as_tensor(xs[i])), as_tensor(ys[i]))) for i in val_idx]
        g.train()
        return float(np.mean(losses)) if losses else float("nan")

    def save_checkpoint(seconds):
        tensors = {"g": g.state_dict(), "d": d.state_dict(), "opt_g": opt_g.state_dict(),
                   "opt_d": opt_d.state_dict(), "step": torch.tensor(step), "best": torch.tensor(best),
                   "seconds": torch.tensor(seconds),
                   "history": torch.tensor(list(json.dumps(history).encode()), dtype=torch.uint8)}
        if best_state is not None:
            tensors["best_g"] = best_state
        with written_whole(ckpt) as partial:      # a kill while saving keeps the last checkpoint
            torch.save(tensors, partial)

    t0 = time.perf_counter()
    input_mse = float(np.mean([np.mean((xs[i] - ys[i]) ** 2) for i in val_idx])) if n_val else float("nan")
    queue = []
    while step < settings.steps:
        if settings.max_minutes and (elapsed0 + time.perf_counter() - t0) > 60 * settings.max_minutes:
            break
        if not queue:
            queue = list(rng.permutation(train_idx))
        i = queue.pop()
        flips = [a + 2 for a in range(3) if rng.random() < 0.5]
        x, y = as_tensor(xs[i]), as_tensor(ys[i])
        if flips:
            x, y = torch.flip(x, flips), torch.flip(y, flips)
        out_v = g(x)
        adv = step >= settings.adv_start and settings.adv_weight > 0
        if adv:
            opt_d.zero_grad()
            loss_d = discriminator_loss(d(y), d(out_v.detach()))
            loss_d.backward()
            opt_d.step()
        opt_g.zero_grad()
        l_mse = pixel_loss(out_v, y)
        loss = l_mse + settings.alpha * retinex_loss(out_v, x, settings.sigma_voxels) if settings.alpha else l_mse
        if adv:
            loss = loss + settings.adv_weight * generator_adversarial(d(out_v))
        loss.backward()
        opt_g.step()
        step += 1
        if step % settings.val_every == 0 or step == settings.steps:
            v = validate()
            history.append({"step": step, "train_mse": round(float(l_mse.detach()), 7), "val_mse": round(v, 7),
                            "seconds": round(elapsed0 + time.perf_counter() - t0, 1)})
            if v < best:
                best = v
                best_state = {k: t.detach().clone() for k, t in g.state_dict().items()}
        if step % settings.checkpoint_every == 0:
            save_checkpoint(elapsed0 + time.perf_counter() - t0)
        p(step / settings.steps, f"step {step}/{settings.steps} mse {float(l_mse.detach()):.2e}"
          + (f" val {best:.2e}" if np.isfinite(best) else ""))
    seconds = elapsed0 + time.perf_counter() - t0
    if best_state is None or not np.isfinite(best):
        best, best_state = validate(), {k: t.detach().clone() for k, t in g.state_dict().items()}
    save_checkpoint(seconds)
    g.load_state_dict(best_state)
    g = g.cpu().eval()
    p(0.99, "measuring the correction's reach on the validation pairs")
    table, gains = _reach_on(MarganModel(g, config, spacing[0], tuple(int(v) for v in shape)), val_pairs, spacing)
    record = {"pairs": str(pairs_dir), "n_train": int(len(train_idx)), "n_val": int(n_val),
              "val_pairs": [names[i] for i in val_idx], "settings": settings.to_dict(), "steps_done": step,
              "seconds": round(seconds, 1), "device": str(dev), "command": command,
              "val_mse_unit": best, "val_mse_unit_input": input_mse,
              "val_rmse_hu": round(float(np.sqrt(best)) * 4095.0, 1) if np.isfinite(best) else None,
              "val_rmse_hu_input": round(float(np.sqrt(input_mse)) * 4095.0, 1) if np.isfinite(input_mse) else None,
              "history": history,
              # by distance from the metal: RMS (HU) of the input, of the full correction and with
              # the gain chosen there (cochleaai.mar.margan.reach)
              "val_error_by_distance_hu": table}
    save_model(g, out, config, {"training": record, "gain_by_distance_mm": gains}, spacing_mm=spacing[0],
               grid_zyx=tuple(int(v) for v in shape))
    p(1.0, "model saved")
    return record
