"""Training of the contact refiner on simulated pairs (``python -m cochleaai contacts-train``):
the contacts detected in each pair's post-op scan against its true intracochlear contacts."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np

from cochleaai import io
from cochleaai.contacts.detect import chain_of_contacts
from cochleaai.contacts.refiner import RIDGE, fit_refiner, save_refiner, training_samples
from cochleaai.errors import CochleaAIError
from cochleaai.mar.methods import DEFAULT_THRESHOLD_HU
from cochleaai.progress import Progress
from cochleaai.simulation.pairs import pair_folders


def pair_samples(folder, threshold_hu: Optional[float] = None):
    """``(features, offsets, array key)`` of one simulated pair folder (``simulate-pairs``):
    the contacts detected in its post-op scan against its true intracochlear contacts."""
    folder = Path(folder)
    info = json.loads((folder / "pair.json").read_text())
    post = io.read_volume(folder / "postop.nrrd")
    post = post.copy(np.asarray(post.array, np.float32))
    mask = post.array >= (DEFAULT_THRESHOLD_HU if threshold_hu is None else float(threshold_hu))
    marks = io.read_markups(folder / "contacts.mrk.json")
    inside = np.array(["extracochlear" not in label for label in marks.labels], bool)
    truth = marks.points[inside]
    truth = truth[post.contains(truth)] if len(truth) else truth
    detected = chain_of_contacts(post, mask, array=info["array"])
    feats, offsets = training_samples(post, mask, detected, truth)
    return feats, offsets, info["array"]


def train_refiner(pairs_dir, out, ridge: float = RIDGE, progress=None, description: str = "") -> dict:
    """Fit a refiner on every pair of ``pairs_dir`` and save it to ``out`` (``.npz`` + card).
    Returns a summary: samples per array and the fit's own median offset before and after."""
    p = Progress.wrap(progress)
    folders = pair_folders(pairs_dir)
    if not folders:
        raise CochleaAIError(f"{pairs_dir} holds no simulated pairs; run `python -m cochleaai simulate-pairs`.")
    feats, offsets, per_array = [], [], {}
    for k, folder in enumerate(folders):
        p(k / (len(folders) + 1), f"pair {k + 1}/{len(folders)}")
        f, o, array = pair_samples(folder)
        feats.append(f)
        offsets.append(o)
        per_array[array] = per_array.get(array, 0) + len(f)
    X, Y = np.concatenate(feats), np.concatenate(offsets)
    manifest = Path(pairs_dir) / "manifest.json"
    pairs_info = json.loads(manifest.read_text()) if manifest.is_file() else {}
    card = {"description": description or "Sub-voxel refinement of electrode contacts (ridge regression)",
            "ridge": float(ridge), "samples": int(len(X)), "samples_by_array": per_array,
            "pairs": len(folders), "pairs_seed": pairs_info.get("seed"),
            "real_specimens": pairs_info.get("real_specimens", []),
            "held_out_specimens": pairs_info.get("held_out_specimens", [])}
    p(len(folders) / (len(folders) + 1), "fitting")
    refiner = fit_refiner(X, Y, ridge, card)
    before = float(np.median(np.linalg.norm(Y, axis=1)))
    after = float(np.median(np.linalg.norm(Y - X @ refiner.weights, axis=1)))
    refiner.card.update(train_offset_mm_median={"detected": round(before, 4), "refined": round(after, 4)})
    paths = save_refiner(refiner, out)
    p(1.0, "done")
    return {"model": str(paths[0]), "card": str(paths[1]), "samples": int(len(X)), "by_array": per_array,
            "train_offset_mm_median": refiner.card["train_offset_mm_median"]}
