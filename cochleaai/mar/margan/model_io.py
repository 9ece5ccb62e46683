"""MARGAN model files: ``<name>.pt`` (the generator's tensors) + ``<name>.json`` (its card),
through the shared :mod:`cochleaai.model_files` (weights-only loading, sha256 check)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from cochleaai.errors import CochleaAIError
from cochleaai.mar.margan.network import GeneratorConfig, build_generator
from cochleaai.mar.methods import default_model_path
from cochleaai.model_files import load_tensors, model_paths, save_tensors

FORMAT = "cochleaai.margan/1"
TRAIN_HINT = ("train one with 'python -m cochleaai margan train --pairs DIR --out MODEL' "
              "(NMAR, LI and BHC need no model: --method nmar)")


@dataclass
class MarganModel:
    generator: object                       # torch module (eval mode)
    config: GeneratorConfig
    spacing_mm: float = 0.2
    grid_zyx: tuple = (50, 50, 60)
    card: dict = field(default_factory=dict)
    path: Optional[str] = None              # the weights file it was read from (None: made in memory)


def save_model(generator, path, config: GeneratorConfig, card: Optional[dict] = None,
               spacing_mm: float = 0.2, grid_zyx=(50, 50, 60)):
    card = dict(card or {})
    card.update({"format": FORMAT, "generator": config.to_dict(), "spacing_mm": spacing_mm,
                 "grid_zyx": list(grid_zyx), "intensity": "unit = (HU + 1024) / 4095; output = input - artifact"})
    return save_tensors(dict(generator.state_dict()), path, card)


def load_model(path=None) -> MarganModel:
    """Read a MARGAN model (default: the shipped one), refusing a bad checksum."""
    weights = model_paths(default_model_path() if path is None else path)[0]
    tensors, card = load_tensors(weights, FORMAT, "MARGAN model", TRAIN_HINT)
    try:
        config = GeneratorConfig.from_dict(card["generator"])
        net = build_generator(config)
        net.load_state_dict(tensors)
    except Exception as exc:  # weights and card do not belong together
        raise CochleaAIError(f"The MARGAN model '{weights.name}' does not match its card "
                             f"({type(exc).__name__}); {TRAIN_HINT}.") from None
    net.eval()
    return MarganModel(net, config, float(card.get("spacing_mm", 0.2)), tuple(card.get("grid_zyx", (50, 50, 60))),
                       card, str(weights.absolute()))


def model_file(model=None) -> Optional[str]:
    """The weights file of ``model`` (a :class:`MarganModel` read from a file, or a model's
    path; None stays None: the shipped model), checked to be there with its card: what a
    worker process is given instead of the loaded network."""
    if model is None:
        return None
    if isinstance(model, MarganModel):
        if model.path is None:
            raise CochleaAIError("This MARGAN model was not read from a file; save it with save_model and give "
                                 "its path.")
        model = model.path
    pt, js = model_paths(model)
    if not pt.is_file():
        raise CochleaAIError(f"The MARGAN model file '{pt}' does not exist; {TRAIN_HINT}.")
    if not js.is_file():
        raise CochleaAIError(f"The model card '{js}' is missing; a model needs its .json card beside the .pt.")
    return str(pt.absolute())


#: The one model kept loaded, under its path and its weights' modification time.
_cache = {}


def cached_model(model=None) -> MarganModel:
    """A loaded model: ``model`` itself, or read from its path (default: the shipped one) once
    and kept while its file stays the same, so repeated corrections do not reload it."""
    if isinstance(model, MarganModel):
        return model
    key = str(Path(model if model is not None else default_model_path()).absolute())
    pt = model_paths(key)[0]
    stamp = (key, pt.stat().st_mtime_ns if pt.is_file() else None)
    if stamp not in _cache:
        _cache.clear()
        _cache[stamp] = load_model(key)
    return _cache[stamp]
