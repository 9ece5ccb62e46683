"""The VAE explorer's long work as core functions: plain data in, plain data out.

The LangevinVAEExplorer module runs these in its worker process (``python -m cochleaai
run-job``), so the model comes as its file (``model_path``) and the volumes as
:class:`~cochleaai.volume.Volume` copies; its Logic runs the ``*_with`` forms in-process on
the model it holds. Each takes ``progress`` and returns what the Logic turns into nodes:

* :func:`encode` / :func:`encode_with`: an :class:`Encoding` (latent point, reconstruction,
  how much of the volume it misses);
* :func:`interpolate_volumes` / :func:`interpolate_with`: an :class:`Interpolation` (the
  latent path and its decoded volumes);
* :func:`train`: a new model trained on a :class:`TrainingInputs`, saved; returns its path.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from cochleaai.progress import Progress
from cochleaai.vae.data import VolumeGrid, read_folder, volumes_to_grid
from cochleaai.vae.explore import decode_volume, encode_volume, interpolate, reconstruction_mismatch
from cochleaai.vae.model_io import load_model
from cochleaai.vae.train import TrainConfig, train_volume_model
from cochleaai.volume import Volume


def load_volume_model(path) -> Tuple[object, dict]:
    """``(model, card)`` of a model trained on CT volumes (others are refused in words)."""
    return load_model(Path(path), require={"kind": "volume"})


# ------------------------------------------------------------------ encode
@dataclasses.dataclass(frozen=True)
class Encoding:
    """A volume encoded: its latent point, its reconstruction (on the model grid, centred and
    turned as the volume) and the share of the volume the reconstruction misses."""

    z: np.ndarray
    reconstruction: Volume
    mismatch: float


def encode_with(model, card: dict, volume: Volume, progress=None) -> Encoding:
    """Encode ``volume`` (left as it is) with a loaded model."""
    p = Progress.wrap(progress)
    p(0.2, "encoding")
    z = encode_volume(model, card, volume)
    p(0.8, "decoding the reconstruction")
    mismatch = reconstruction_mismatch(model, card, volume, z)
    reconstruction = decode_volume(model, card, z, volume.center, volume.direction)
    return Encoding(z, reconstruction, float(mismatch))


def encode(model_path, volume: Volume, progress=None) -> Encoding:
    """:func:`encode_with` the model saved at ``model_path``."""
    model, card = load_volume_model(model_path)
    return encode_with(model, card, volume, progress)


# ------------------------------------------------------------------ interpolate
@dataclasses.dataclass(frozen=True)
class Interpolation:
    """The straight latent path between two volumes (steps, d) and the volume of each step."""

    latent: np.ndarray
    volumes: tuple


def interpolate_with(model, card: dict, volume_a: Volume, volume_b: Volume, steps: int = 8,
                     progress=None) -> Interpolation:
    """Encode both volumes with a loaded model and decode ``steps`` points between them."""
    p = Progress.wrap(progress)
    za = encode_volume(model, card, volume_a)
    p(0.25, "first volume encoded")
    zb = encode_volume(model, card, volume_b)
    p(0.5, "second volume encoded")
    path = interpolate(za, zb, steps)
    volumes = []
    for i, z in enumerate(path):
        p(0.5 + 0.5 * i / len(path), f"decoding frame {i + 1}/{len(path)}")
        volumes.append(decode_volume(model, card, z))
    return Interpolation(path, tuple(volumes))


def interpolate_volumes(model_path, volume_a: Volume, volume_b: Volume, steps: int = 8,
                        progress=None) -> Interpolation:
    """:func:`interpolate_with` the model saved at ``model_path``."""
    model, card = load_volume_model(model_path)
    return interpolate_with(model, card, volume_a, volume_b, steps, progress)


# ------------------------------------------------------------------ train
@dataclasses.dataclass(frozen=True)
class TrainingInputs:
    """What :func:`train` needs: plain data (the volumes are copies)."""

    out_path: object
    grid: VolumeGrid             # the volumes are resampled onto it
    folder: Optional[str]        # volume files to read, or None
    volumes: tuple               # Volume copies of the selected nodes
    source: str                  # recorded in the model card
    epochs: int
    kind: str
    latent_dim: int
    seed: int


def train(inputs: TrainingInputs, progress=None):
    """Train a volume model on ``inputs`` and save it (.pt + .json); returns the saved path."""
    p = Progress.wrap(progress)
    if inputs.folder:
        arrays = read_folder(inputs.folder, inputs.grid, p.stage(0.0, 0.1))
    else:
        arrays = volumes_to_grid(list(inputs.volumes), inputs.grid, p.stage(0.0, 0.1))
    epochs, kind, latent_dim, seed = inputs.epochs, inputs.kind, inputs.latent_dim, inputs.seed
    cfg = TrainConfig(epochs=epochs, batch_size=8, lr=1e-3, patience=20, seed=seed)
    train_volume_model(arrays, inputs.grid, inputs.out_path, kind, latent_dim, cfg,
                       card={"data_source": inputs.source, "seed": seed,
                             "training_command": "LangevinVAEExplorer Train "
                                                 f"(epochs={epochs}, kind={kind}, "
                                                 f"latent={latent_dim}, seed={seed})"},
                       progress=p.stage(0.1, 1.0))
    return inputs.out_path
