"""One-shot training and detection as single calls on plain data: what the One-Shot Landmarks
module runs in a worker process (``python -m cochleaai run-job``), and what its Logic runs
in this process for scripts.

Models travel between processes as files: :func:`train_to_file` writes the model and
returns the path of its ``.pt``; :func:`detect_volumes` reads the models from their paths
(or takes models already in memory).
"""
from __future__ import annotations

import os
from typing import List, Optional

from cochleaai import io
from cochleaai.errors import CochleaAIError
from cochleaai.landmarks.detect import detect_batch
from cochleaai.landmarks.model_io import OneShotModel, load_model, save_model
from cochleaai.landmarks.training import train_oneshot
from cochleaai.model_files import model_paths
from cochleaai.progress import Progress


def train_model(reference, reference_mask, landmarks, validation=None, validation_mask=None, output_path=None,
                config=None, seed: int = 0, structure: str = "structure", side: Optional[str] = None,
                record: Optional[dict] = None, progress=None) -> OneShotModel:
    """:func:`~cochleaai.landmarks.training.train_oneshot`, with ``record`` (e.g. the data and
    the command) added to the card's training record; saved as ``output_path`` (``.pt`` and
    its ``.json`` card) when one is given. Returns the model."""
    p = Progress.wrap(progress)
    model = train_oneshot(reference, reference_mask, landmarks, validation, validation_mask, config=config,
                          seed=seed, structure=structure, progress=p.stage(0.0, 0.98), side=side)
    training = dict(model.card["training"], **dict(record or {}))
    if output_path:
        save_model(model, output_path, training=training)
    else:
        model.card["training"] = training
    p(1.0, "Model trained")
    return model


def train_to_file(reference, reference_mask, landmarks, validation=None, validation_mask=None, output_path=None,
                  config=None, seed: int = 0, structure: str = "structure", side: Optional[str] = None,
                  record: Optional[dict] = None, progress=None) -> str:
    """:func:`train_model` saved as ``output_path``; returns the path of the ``.pt`` (a worker
    process hands the model back this way, not as a torch module)."""
    if not output_path:
        raise CochleaAIError("No file to save the trained model in was given.")
    train_model(reference, reference_mask, landmarks, validation, validation_mask, output_path=output_path,
                config=config, seed=seed, structure=structure, side=side, record=record, progress=progress)
    return str(model_paths(output_path)[0])


def _loader(volume):
    """A volume file becomes a function that reads it (read only when its turn comes)."""
    if isinstance(volume, (str, os.PathLike)):
        return lambda: io.read_volume(volume)
    return volume


def detect_volumes(models, volumes, names: Optional[List[str]] = None, side: Optional[str] = None,
                   baseline: bool = False, progress=None) -> List[tuple]:
    """:func:`~cochleaai.landmarks.detect.detect_batch` on plain data.

    ``models``: one model or a list of them (several references, fused), each a model file
    (``None``: the shipped model), read here, or an :class:`OneShotModel` in memory.
    ``volumes``: Volumes, volume files or functions giving a Volume, each read when its turn
    comes. ``side``: the targets' ear (None: both are tried); ``baseline``: registration only,
    without localisation. Returns ``(name, Detection or None, row)`` per volume.
    """
    given = list(models) if isinstance(models, (list, tuple)) else [models]
    loaded = [m if isinstance(m, OneShotModel) else load_model(m) for m in given]
    model = loaded[0] if len(loaded) == 1 else loaded
    return detect_batch(model, [_loader(v) for v in volumes], names, progress=progress,
                        use_localisation=not baseline, side=side)
