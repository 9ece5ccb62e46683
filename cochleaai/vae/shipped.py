"""The Langevin VAE shipped with the extension (plain Python, no torch: the Slicer panel
shows its path before the optional packages are installed)."""
from __future__ import annotations

from pathlib import Path

from cochleaai.model_files import models_folder

#: The shipped model's file name (without ``.pt``) in :func:`cochleaai.model_files.models_folder`.
DEFAULT_MODEL_NAME = "lvae_cochlea_phantom"


def default_model_path() -> Path:
    """The shipped default model: ``Resources/Models/lvae_cochlea_phantom.pt`` beside ``cochleaai``."""
    return models_folder() / f"{DEFAULT_MODEL_NAME}.pt"
