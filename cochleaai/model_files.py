"""Model files shared by the learned methods: ``<name>.pt`` (tensors only) + ``<name>.json`` (card).

The weights are a flat dict of tensors written with ``torch.save`` and read back with
``torch.load(weights_only=True)``, so that loading a model never unpickles code. The card
records the format, the sha256 and size of the ``.pt``, and whatever the method needs to
rebuild its network; a ``.pt`` whose checksum differs from its card is refused.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Tuple

from .errors import CochleaAIError
from .io import sha256_of


def models_folder() -> Path:
    """``Resources/Models`` beside the ``cochleaai`` package (source tree and Slicer install)."""
    return Path(__file__).resolve().parents[1] / "Resources" / "Models"


def model_paths(path) -> Tuple[Path, Path]:
    """(weights .pt, card .json) for a path given as the .pt, the .json or the common stem."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".pt", ".json") else path
    return stem.with_name(stem.name + ".pt"), stem.with_name(stem.name + ".json")


def save_tensors(tensors: dict, path, card: dict) -> Tuple[Path, Path]:
    """Write the tensors and the card (sha256, size and date added); returns both paths."""
    import torch

    pt, js = model_paths(path)
    try:
        pt.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.detach().cpu().clone() for k, v in tensors.items()}, pt)
    except OSError as exc:
        raise CochleaAIError(f"Cannot write '{pt}' ({exc}); choose a writable folder.") from exc
    card = dict(card, name=pt.stem, weights_file=pt.name, sha256=sha256_of(pt), bytes=pt.stat().st_size,
                saved=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    js.write_text(json.dumps(card, indent=1), encoding="utf-8")
    return pt, js


def load_tensors(path, fmt: str, what: str, train_hint: str) -> Tuple[dict, dict]:
    """``(tensors, card)`` of a model file pair, checked: both files present, the card of
    format ``fmt``, the checksum right, the weights readable as tensors only."""
    import torch

    pt, js = model_paths(path)
    if not pt.is_file():
        raise CochleaAIError(f"The {what} file '{pt}' does not exist; {train_hint}.")
    if not js.is_file():
        raise CochleaAIError(f"The model card '{js}' is missing; a model needs its .json card beside the .pt.")
    try:
        card = json.loads(js.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CochleaAIError(f"The model card '{js.name}' is not valid JSON ({exc}).") from None
    if not isinstance(card, dict) or card.get("format") != fmt:
        raise CochleaAIError(f"'{js.name}' is not a card of a {what} (expected format {fmt!r}).")
    if sha256_of(pt) != card.get("sha256"):
        raise CochleaAIError(f"The checksum of '{pt.name}' does not match its card: the file is damaged "
                             f"or was replaced. Restore it or {train_hint}.")
    try:
        tensors = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or not a tensor file
        raise CochleaAIError(f"'{pt.name}' cannot be read ({type(exc).__name__}); {train_hint}.") from None
    if not isinstance(tensors, dict):
        raise CochleaAIError(f"'{pt.name}' holds no tensor dict; {train_hint}.")
    return tensors, card
