"""Model files shared by the learned methods: ``<name>.pt`` (tensors only) + ``<name>.json`` (card).

The weights are a flat dict of tensors written with ``torch.save`` and read back with
``torch.load(weights_only=True)``, so that loading a model never unpickles code. The card
records the format, the sha256 and size of the ``.pt``, and whatever the method needs to
rebuild its network; a ``.pt`` whose checksum differs from its card is refused. Models that
need no torch (plain arrays) are ``<name>.npz`` files read with ``allow_pickle=False``,
under the same card and checks.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Tuple

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.io import sha256_of
from cochleaai.io.outputs import write_text_whole, written_whole


def models_folder() -> Path:
    """``Resources/Models`` beside the ``cochleaai`` package (source tree and Slicer install)."""
    return Path(__file__).resolve().parents[1] / "Resources" / "Models"


def model_paths(path, suffix: str = ".pt") -> Tuple[Path, Path]:
    """(weights file, card .json) for a path given as the weights, the .json or the common
    stem; ``suffix``: the weights' (``.pt`` tensors, ``.npz`` arrays)."""
    path = Path(path)
    if path.suffix in (".pt", ".npz") and path.suffix != suffix:
        raise CochleaAIError(f"'{path.name}' is a {path.suffix} file, but this model is stored as {suffix} "
                             "weights with a .json card; give the model's own file.")
    stem = path.with_suffix("") if path.suffix in (".pt", ".npz", ".json") else path
    return stem.with_name(stem.name + suffix), stem.with_name(stem.name + ".json")


def _write_card(weights: Path, card_path: Path, card: dict) -> None:
    card = dict(card, name=weights.stem, weights_file=weights.name, sha256=sha256_of(weights),
                bytes=weights.stat().st_size,
                saved=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    write_text_whole(card_path, json.dumps(card, indent=1))


def _checked_card(weights: Path, card_path: Path, fmt: str, what: str, train_hint: str) -> dict:
    """The card of ``weights``, after checking both files exist, the format and the checksum."""
    if not weights.is_file():
        raise CochleaAIError(f"The {what} file '{weights}' does not exist; {train_hint}.")
    if not card_path.is_file():
        raise CochleaAIError(f"The model card '{card_path}' is missing; a model needs its .json card "
                             f"beside the {weights.suffix}.")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CochleaAIError(f"The model card '{card_path.name}' is not valid JSON ({exc}).") from None
    if not isinstance(card, dict) or card.get("format") != fmt:
        raise CochleaAIError(f"'{card_path.name}' is not a card of a {what} (expected format {fmt!r}).")
    if sha256_of(weights) != card.get("sha256"):
        raise CochleaAIError(f"The checksum of '{weights.name}' does not match its card: the file is damaged "
                             f"or was replaced. Restore it or {train_hint}.")
    return card


def save_tensors(tensors: dict, path, card: dict) -> Tuple[Path, Path]:
    """Write the tensors and the card (sha256, size and date added); returns both paths."""
    import torch  # lazy: installed on first use in Slicer; array models need none

    pt, js = model_paths(path)
    try:
        with written_whole(pt) as partial:   # a checkpoint written during training is never half-written
            torch.save({k: v.detach().cpu().clone() for k, v in tensors.items()}, partial)
    except OSError as exc:
        raise CochleaAIError(f"Cannot write '{pt}' ({exc}); choose a writable folder.") from exc
    _write_card(pt, js, card)
    return pt, js


def load_tensors(path, fmt: str, what: str, train_hint: str) -> Tuple[dict, dict]:
    """``(tensors, card)`` of a model file pair, checked: both files present, the card of
    format ``fmt``, the checksum right, the weights readable as tensors only."""
    import torch  # lazy: installed on first use in Slicer; array models need none

    pt, js = model_paths(path)
    card = _checked_card(pt, js, fmt, what, train_hint)
    try:
        tensors = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or not a tensor file
        raise CochleaAIError(f"'{pt.name}' cannot be read ({type(exc).__name__}); {train_hint}.") from None
    if not isinstance(tensors, dict):
        raise CochleaAIError(f"'{pt.name}' holds no tensor dict; {train_hint}.")
    return tensors, card


def save_arrays(arrays: dict, path, card: dict) -> Tuple[Path, Path]:
    """Write numpy ``arrays`` (``<stem>.npz``) and the card; returns both paths."""
    npz, js = model_paths(path, ".npz")
    try:
        with written_whole(npz) as partial, open(partial, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})
    except OSError as exc:
        raise CochleaAIError(f"Cannot write '{npz}' ({exc}); choose a writable folder.") from exc
    _write_card(npz, js, card)
    return npz, js


def load_arrays(path, fmt: str, what: str, train_hint: str) -> Tuple[dict, dict]:
    """``(arrays, card)`` of an ``.npz`` model with its card, checked as :func:`load_tensors`
    checks tensors; nothing is unpickled."""
    npz, js = model_paths(path, ".npz")
    card = _checked_card(npz, js, fmt, what, train_hint)
    try:
        with np.load(npz, allow_pickle=False) as data:
            arrays = {k: np.array(data[k]) for k in data.files}
    except Exception as exc:  # truncated, not a zip, or object arrays
        raise CochleaAIError(f"'{npz.name}' cannot be read ({type(exc).__name__}); {train_hint}.") from None
    return arrays, card
