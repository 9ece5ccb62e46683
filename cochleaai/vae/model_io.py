"""Saving and loading models with their model card (``<name>.pt`` + ``<name>.json``).

The ``.pt`` file holds only the state dict (read with ``torch.load(weights_only=True)``).
The ``.json`` card holds the architecture (``config``, enough to rebuild the networks),
the sha256 of the ``.pt``, the preprocessing of the data (``data``), how the model was
trained (command, data, seed) and measured figures. A file whose checksum fails, a card
for an unknown architecture, or weights that do not fit the card are refused with a
:class:`CochleaAIError` that says what to do.
"""
from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Optional, Tuple

from cochleaai.errors import CochleaAIError
from cochleaai.io import sha256_of
from cochleaai.vae.models import build_model

FORMAT = "cochleaai.vae/1"


def model_paths(path) -> Tuple[Path, Path]:
    """(weights .pt, card .json) for a path given as the .pt, the .json or the common stem."""
    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".pt", ".json") else path
    return stem.with_name(stem.name + ".pt"), stem.with_name(stem.name + ".json")


def save_model(model, path, card: Optional[dict] = None) -> Tuple[Path, Path]:
    """Write the weights and the card; returns their paths. ``card`` adds fields (data, training...)."""
    import torch

    weights, card_path = model_paths(path)
    try:
        weights.parent.mkdir(parents=True, exist_ok=True)
        tmp = weights.with_name(weights.name + ".tmp")
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
        tmp.replace(weights)                       # a checkpoint is never half-written
    except OSError as exc:
        raise CochleaAIError(f"Cannot write the model to '{weights}' ({exc}); choose a writable folder.") from exc
    record = {"format": FORMAT, "name": weights.stem, "config": model.config(),
              "sha256": sha256_of(weights), "bytes": weights.stat().st_size,
              "saved": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    for key, value in (card or {}).items():
        if key not in ("format", "config", "sha256", "bytes"):
            record[key] = value
    card_path.write_text(json.dumps(record, indent=2, default=_json_default))
    return weights, card_path


def _json_default(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def read_card(path) -> dict:
    _, card_path = model_paths(path)
    if not card_path.is_file():
        raise CochleaAIError(f"The model card '{card_path}' is missing; a model needs its .pt and "
                             ".json side by side (save it with cochleaai.vae.model_io.save_model).")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise CochleaAIError(f"The model card '{card_path}' is not valid JSON ({exc}); "
                             "restore it from the original model files.") from exc
    if not isinstance(card, dict) or card.get("format") != FORMAT or "config" not in card:
        raise CochleaAIError(f"'{card_path}' is not a CochleaAI VAE model card (format "
                             f"{card.get('format') if isinstance(card, dict) else None!r}, expected "
                             f"{FORMAT!r}); load a model made by 'python -m cochleaai vae train'.")
    return card


def load_model(path, require: Optional[dict] = None):
    """Load ``(model, card)``; the model is in eval mode.

    ``require``: card ``data`` fields that must match, e.g. ``{"kind": "volume"}``.
    """
    import torch

    weights, card_path = model_paths(path)
    card = read_card(path)
    if not weights.is_file():
        raise CochleaAIError(f"The model weights '{weights}' are missing; put the .pt file beside "
                             f"its card '{card_path.name}'.")
    if sha256_of(weights) != card.get("sha256"):
        raise CochleaAIError(f"The model file '{weights}' does not match the checksum in its card: "
                             "it is corrupted or was replaced. Restore the original file or retrain.")
    for key, value in (require or {}).items():
        have = (card.get("data") or {}).get(key)
        if have != value:
            raise CochleaAIError(f"The model '{weights.name}' was trained on data with {key}={have!r}, "
                                 f"but {key}={value!r} is needed here; choose a model trained for it.")
    try:
        model = build_model(card["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CochleaAIError(f"The card '{card_path.name}' describes an architecture this version "
                             f"cannot build ({exc}); use a model made by this version of CochleaAI.") from exc
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling errors come in many types
        raise CochleaAIError(f"Cannot read the weights '{weights}' ({exc}); the file is damaged.") from exc
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CochleaAIError(f"The weights in '{weights.name}' are for another architecture than "
                             f"its card describes ({str(exc).splitlines()[0]}); use matching files.") from exc
    model.eval()
    return model, card
