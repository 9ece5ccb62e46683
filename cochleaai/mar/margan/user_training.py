"""MARGAN trained on one's own pre-operative scans: simulated pairs, then training.

This is what the Metal Artifact Reduction module's Train section runs (no MRML here: the
module runs :func:`simulate_user_pairs` and :func:`train_user_model_file` in a worker
process). Each scan comes with the cochlea model fitted to it (the shape table of Cochlea
Shape Segmentation, or a phantom's truth), which guides the simulated array. A pair is a
crop of the training grid about the cochlea (its centre jittered), an array of a random type
and depth, and a random scanner, as in ``simulate-pairs``; the pairs are written in the same
layout, so ``margan train`` reads them too.

Both steps report progress and stop at the next pair or step when cancelled; the pairs
written until then stay usable, and an interrupted training resumes from its checkpoint.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import write_text_whole
from cochleaai.mar.margan.model_io import load_model
from cochleaai.mar.margan.train import TrainConfig, train
from cochleaai.model_files import model_paths
from cochleaai.progress import Progress
from cochleaai.simulation.pairs import GRID_XYZ, SPACING_MM, crop_around_cochlea, pair_seed, simulate_pair, write_pair

#: Module defaults: about a minute of simulation per 10 pairs, and 2-3 s per step on one
#: CPU thread (so 300 steps take 10-15 min).
DEFAULT_PAIRS = 12
DEFAULT_STEPS = 300


@dataclass
class UserScan:
    name: str
    volume: object                 # cochleaai.volume.Volume, HU
    model: object                  # cochleaai.shape.CochleaModel of its cochlea (LPS)


def check_scans(scans: Sequence[UserScan]) -> List[UserScan]:
    """The scans, refused with a clear message when there are none or a cochlea is outside
    its volume."""
    scans = list(scans)
    if not scans:
        raise CochleaAIError("Choose at least one pre-operative scan and its cochlea shape table.")
    for scan in scans:
        centre = scan.model.landmarks()["center"]
        if not scan.volume.contains(centre[None])[0]:
            raise CochleaAIError(f"The cochlea of '{scan.name}' lies outside that volume; choose the shape "
                                 "table fitted to this scan.")
    return scans


def _folder(path, what: str) -> Path:
    if path is None or not str(path).strip():
        raise CochleaAIError(f"Choose {what}.")
    return Path(path)


def simulate_user_pairs(scans: Sequence[UserScan], out, n: int = DEFAULT_PAIRS, seed: int = 0,
                        progress=None) -> dict:
    """``n`` pairs from ``scans`` (in turn) into the new or empty folder ``out``, with
    ``manifest.json``. Returns ``{"pairs_dir", "pairs"}``."""
    scans = check_scans(scans)
    if int(n) < 2:
        raise CochleaAIError("Simulate at least 2 pairs (one is held out for validation).")
    out = _folder(out, "a folder for the training pairs")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CochleaAIError(f"{out} is not an empty folder; choose a new folder for the pairs.")
    p = Progress.wrap(progress)
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for k in range(int(n)):
        scan = scans[k % len(scans)]
        p(k / n, f"pair {k + 1}/{n} from {scan.name}")
        s = pair_seed(seed, k)
        rng = np.random.default_rng(np.random.SeedSequence(s).spawn(4)[0])
        anatomy = crop_around_cochlea(scan.volume, scan.model, rng)
        target, postop, sim, info = simulate_pair(anatomy, scan.model, s,
                                                  {"source": "scan", "scan": scan.name, "index": k, "seed": s})
        name = f"pair_{k:05d}"
        write_pair(out / name, target, postop, sim, info)
        names.append(name)
        # the manifest after every pair: a cancelled run leaves a usable set
        manifest = {"format": "cochleaai.pairs/1", "n": int(n), "seed": int(seed), "augmented": False,
                    "grid_xyz": list(GRID_XYZ), "spacing_mm": SPACING_MM,
                    "scans": [sc.name for sc in scans], "pairs": names, "failed": []}
        write_text_whole(out / "manifest.json", json.dumps(manifest, indent=1))
    p(1.0, f"{len(names)} pairs written")
    return {"pairs_dir": str(out), "pairs": len(names)}


def train_user_model_file(pairs_dir, model_path, steps: int = DEFAULT_STEPS, max_minutes: Optional[float] = None,
                          seed: int = 0, resume: bool = True, progress=None) -> dict:
    """Train a MARGAN model on the pairs of ``pairs_dir`` into ``model_path`` (.pt + .json
    card); the adversarial terms start after a third of the steps. Returns plain data (what
    a worker process gives back): ``{"model_path": the weights file, "training": the card's
    training record}``."""
    if int(steps) < 1:
        raise CochleaAIError("Train for at least 1 step.")
    pairs_dir = _folder(pairs_dir, "the folder of training pairs")
    model_path = _folder(model_path, "where to save the model")
    settings = TrainConfig(steps=int(steps), adv_start=min(TrainConfig.adv_start, int(steps) // 3),
                           val_every=max(1, min(TrainConfig.val_every, int(steps) // 4)),
                           checkpoint_every=max(1, min(TrainConfig.checkpoint_every, int(steps) // 4)),
                           max_minutes=max_minutes, seed=seed)
    record = train(pairs_dir, model_path, settings, resume=resume, progress=progress,
                   command=f"Metal Artifact Reduction module: train on {pairs_dir}")
    return {"model_path": str(model_paths(model_path)[0].absolute()), "training": record}


def train_user_model(pairs_dir, model_path, steps: int = DEFAULT_STEPS, max_minutes: Optional[float] = None,
                     seed: int = 0, resume: bool = True, progress=None):
    """:func:`train_user_model_file` (same arguments), and the model it saved, loaded."""
    done = train_user_model_file(pairs_dir, model_path, steps=steps, max_minutes=max_minutes, seed=seed,
                                 resume=resume, progress=progress)
    return load_model(done["model_path"])
