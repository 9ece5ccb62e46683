"""Saving and loading VAE models with their model card (``<name>.pt`` + ``<name>.json``).

The files are written and checked by :mod:`cochleaai.model_files`: the ``.pt`` holds only
the state dict (read with ``torch.load(weights_only=True)``), the ``.json`` card its sha256.
The card also holds the architecture (``config``, enough to rebuild the networks), the
preprocessing of the data (``data``), how the model was trained (command, data, seed) and
measured figures. A file whose checksum fails, a card for an unknown architecture, or
weights that do not fit the card are refused with a :class:`CochleaAIError` that says what
to do.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Tuple

from cochleaai.errors import CochleaAIError
from cochleaai.model_files import load_tensors, model_paths, save_tensors
from cochleaai.vae.models import build_model

FORMAT = "cochleaai.vae/1"
_WHAT = "VAE model"
_TRAIN_HINT = "train one with 'python -m cochleaai vae train' or choose another model"


def save_model(model, path, card: Optional[dict] = None) -> Tuple[Path, Path]:
    """Write the weights and the card; returns their paths. ``card`` adds fields (data, training...)."""
    record = {"format": FORMAT, "config": model.config()}
    record.update({k: v for k, v in (card or {}).items() if k not in ("format", "config", "sha256", "bytes")})
    # figures and settings may hold numpy numbers or paths: the card keeps them as JSON values
    record = json.loads(json.dumps(record, default=_json_default))
    return save_tensors(model.state_dict(), path, record)


def _json_default(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def load_model(path, require: Optional[dict] = None):
    """Load ``(model, card)``; the model is in eval mode.

    ``require``: card ``data`` fields that must match, e.g. ``{"kind": "volume"}``.
    """
    weights, card_path = model_paths(path)
    if not weights.is_file():
        raise CochleaAIError(f"The model weights '{weights}' are missing; put the .pt file beside its card "
                             f"'{card_path.name}', or {_TRAIN_HINT}.")
    state, card = load_tensors(weights, FORMAT, _WHAT, _TRAIN_HINT)
    if "config" not in card:
        raise CochleaAIError(f"The card '{card_path.name}' does not describe the networks (no 'config'); "
                             f"{_TRAIN_HINT}.")
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
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise CochleaAIError(f"The weights in '{weights.name}' are for another architecture than "
                             f"its card describes ({str(exc).splitlines()[0]}); use matching files.") from exc
    model.eval()
    return model, card
