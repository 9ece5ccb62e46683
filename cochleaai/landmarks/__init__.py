"""One-shot landmark detection (thesis chapter 5): landmarks in many volumes from one
annotated reference.

* offline: :func:`train_oneshot` trains a shallow 2D slice U-Net on randomly rotated and
  shifted slices of the reference (:mod:`.training`, :mod:`.unet`);
* online: :func:`detect_landmarks` localises the structure by an iterative centre of
  mass of the product of the three slice orientations' probability maps
  (:mod:`.localise`), aligns its axes of inertia with the reference's (:mod:`.align`),
  registers the reference patch rigidly then with diffeomorphic demons
  (:mod:`.register`) and carries the landmarks over (:mod:`.detect`);
* models are saved with their card and checked on load (:mod:`.model_io`).

Heavy imports (torch, SimpleITK) happen when these functions are used.
"""
from __future__ import annotations

from cochleaai.landmarks import detect, model_io, training
from cochleaai.landmarks.localise import StructureNotFound

__all__ = ["train_oneshot", "TrainConfig", "detect_landmarks", "detect_batch", "load_model", "save_model",
           "StructureNotFound"]


def __getattr__(name):
    if name in ("train_oneshot", "TrainConfig"):
        return getattr(training, name)
    if name in ("detect_landmarks", "detect_batch"):
        return getattr(detect, name)
    if name in ("load_model", "save_model"):
        return getattr(model_io, name)
    if name == "StructureNotFound":
        return StructureNotFound
    raise AttributeError(name)
