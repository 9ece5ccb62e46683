"""The metal artifact reduction methods and their defaults.

Plain Python (no torch), so the Slicer panel lists the methods and picks the default before
the optional packages are installed. :func:`~cochleaai.mar.dispatch.reduce_metal_artifacts`
runs them.
"""
from __future__ import annotations

from pathlib import Path

from cochleaai.model_files import model_paths, models_folder

#: The sinogram methods of :mod:`cochleaai.mar.classic`, with their names.
CLASSIC_METHODS = {"nmar": "Normalized MAR (Meyer 2010)", "li": "Linear interpolation (Kalender 1987)",
                   "bhc": "Metal beam-hardening correction (after Verburg & Seco 2012)"}
#: Every method, with its name, in menu order.
METHODS = {"margan": "MARGAN, 3D GAN trained on simulated implant artifacts (Wang et al. 2021)", **CLASSIC_METHODS}
#: The classic default, used when no MARGAN model is installed.
CLASSIC_DEFAULT = "nmar"
DEFAULT_METHOD = CLASSIC_DEFAULT
DEFAULT_THRESHOLD_HU = 3000.0
#: The metal threshold's range: HU, or any grey scale up to the top of 16-bit storage
THRESHOLD_RANGE = (-1024.0, 65535.0)
#: Metal never fills more than this share of a CT's voxels (a whole implant in a head scan
#: stays far below 1 %); more at or above the threshold means grey values that are not HU.
MAX_METAL_SHARE = 0.05
#: The MARGAN model shipped with the extension, in :func:`cochleaai.model_files.models_folder`.
DEFAULT_MODEL_NAME = "margan_cochlea"


def default_model_path() -> Path:
    return models_folder() / f"{DEFAULT_MODEL_NAME}.pt"


def default_model_available() -> bool:
    pt, js = model_paths(default_model_path())
    return pt.is_file() and js.is_file()


def default_method() -> str:
    """``margan`` when its shipped model is present, else NMAR."""
    return "margan" if default_model_available() else CLASSIC_DEFAULT
