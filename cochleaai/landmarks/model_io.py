"""The trained one-shot model: network, reference patch and landmarks, and its card.

On disk a model is two files side by side:

* ``<name>.pt``: a flat dict of tensors (the network's state dict under ``net.*``, the
  reference registration patch and its structure mask), read with
  ``torch.load(weights_only=True)`` so that no code is ever unpickled;
* ``<name>.json``: the model card (architecture, input sampling, the reference's centre,
  axes and landmarks, the sha256 of the ``.pt``, the training command, data, seed and
  measured figures). A ``.pt`` whose checksum differs from the card is refused.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from cochleaai.errors import CochleaAIError
from cochleaai.landmarks.patches import DEFAULT_WINDOW, patch_grid
from cochleaai.landmarks.unet import SliceUNet, UNetConfig
from cochleaai.model_files import load_tensors, model_paths, models_folder, save_tensors
from cochleaai.volume import Volume

FORMAT = "cochleaai.oneshot-landmarks/1"
#: The shipped default model: trained on a real temporal-bone CT (see its card).
DEFAULT_MODEL_NAME = "oneshot_labyrinth_real"
#: The model trained on the built-in phantom, still shipped (the module self-test uses it).
PHANTOM_MODEL_NAME = "oneshot_cochlea_phantom"
SIDES = ("left", "right")


def default_model_path() -> Path:
    return models_folder() / f"{DEFAULT_MODEL_NAME}.pt"


def phantom_model_path() -> Path:
    return models_folder() / f"{PHANTOM_MODEL_NAME}.pt"


def check_side(side, what: str = "side") -> Optional[str]:
    """``"left"``, ``"right"`` or None (unknown) from what a user typed."""
    if side is None or str(side).strip().lower() in ("", "auto", "unknown", "none"):
        return None
    value = str(side).strip().lower()
    if value not in SIDES:
        raise CochleaAIError(f"The {what} must be left, right or auto, got {side!r}.")
    return value


def _reflect(points, centre, normal) -> np.ndarray:
    """Mirror points through the plane through ``centre`` normal to the unit ``normal``."""
    d = np.asarray(points, float) - centre
    return centre + d - 2.0 * np.outer(d @ normal, normal).reshape(d.shape)


@dataclass
class OneShotModel:
    """Everything detection needs, in memory.

    ``centre`` / ``axes``: the reference structure's centre of mass (LPS mm) and its
    axes of inertia (columns, longest first, det +1); the registration patch is
    sampled in that frame. ``landmarks``/``labels``: reference landmarks, LPS mm.
    """

    net: SliceUNet
    slice_size: int
    slice_spacing: float
    window: tuple
    centre: np.ndarray
    axes: np.ndarray
    eigenvalues: np.ndarray
    image_centre: np.ndarray
    landmarks: np.ndarray
    labels: List[str]
    patch: np.ndarray             # (n, n, n) float32, the reference registration patch (HU)
    patch_mask: np.ndarray        # (n, n, n) bool, the structure in that patch
    patch_spacing: float
    structure: str = "structure"
    card: dict = field(default_factory=dict)
    side: Optional[str] = None    # the reference's ear: "left", "right" or None (unknown)
    anchors: Optional[list] = None  # the reference's grey-value anchors (patches.intensity_anchors)
    mirror: bool = False          # True for the mirror image made by :meth:`mirrored`

    def mirrored(self) -> "OneShotModel":
        """The model of the other ear: the reference mirrored through the plane through its
        centre normal to its first axis of inertia. In the patch frame that plane is
        ``x = const``, so the patch and its mask are flipped along x; the landmarks and the
        image centre are reflected; the network (trained with mirrored slices too) is shared."""
        normal = np.asarray(self.axes, float)[:, 0]
        other = {"left": "right", "right": "left"}.get(self.side)
        return dataclasses.replace(
            self, patch=np.ascontiguousarray(self.patch[:, :, ::-1]),
            patch_mask=np.ascontiguousarray(self.patch_mask[:, :, ::-1]),
            landmarks=_reflect(self.landmarks, self.centre, normal),
            image_centre=_reflect(self.image_centre, self.centre, normal),
            side=other, mirror=not self.mirror)

    def for_side(self, side: Optional[str]) -> "OneShotModel":
        """This model, or its mirror image when ``side`` is the other ear. Needs the
        reference's side when a target side is given."""
        side = check_side(side, "target side")
        if side is None or side == self.side:
            return self
        if self.side is None:
            raise CochleaAIError("The model does not record which ear its reference is, so a target "
                                 "side cannot be used; pass side 'auto' to try both.")
        return self.mirrored()

    @property
    def patch_size(self) -> int:
        return int(self.patch.shape[0])

    def patch_volume(self, array: Optional[np.ndarray] = None) -> Volume:
        """The reference patch (or ``array`` on its grid) as a Volume in reference LPS."""
        grid = patch_grid(self.centre, self.axes, self.patch_size, self.patch_spacing)
        return grid.copy(self.patch if array is None else array)

    def describe(self) -> dict:
        """The card's model-specific part (without checksum and training record)."""
        return {
            "format": FORMAT,
            "architecture": {"class": "SliceUNet", **self.net.config.as_dict()},
            "input": {"slice_size": int(self.slice_size), "slice_spacing_mm": float(self.slice_spacing),
                      "intensity_window": [float(v) for v in self.window]},
            "reference": {
                "structure": self.structure,
                "centre_lps": [float(v) for v in self.centre],
                "axes_lps": np.asarray(self.axes, float).tolist(),
                "eigenvalues_mm2": [float(v) for v in self.eigenvalues],
                "image_centre_lps": [float(v) for v in self.image_centre],
                "landmark_labels": list(self.labels),
                "landmarks_lps": np.asarray(self.landmarks, float).tolist(),
                "patch_size": self.patch_size,
                "patch_spacing_mm": float(self.patch_spacing),
                "side": self.side,
                "intensity_anchors": None if self.anchors is None else [float(v) for v in self.anchors],
            },
        }


def save_model(model: OneShotModel, path, training: Optional[dict] = None,
               figures: Optional[dict] = None) -> Path:
    """Write ``<path>.pt`` and its card ``<path>.json``; returns the ``.pt`` path."""
    tensors = {f"net.{k}": v for k, v in model.net.state_dict().items()}
    tensors["reference_patch"] = torch.from_numpy(np.ascontiguousarray(model.patch, dtype=np.float32))
    tensors["reference_mask"] = torch.from_numpy(np.ascontiguousarray(model.patch_mask, dtype=np.uint8))
    card = dict(model.describe())
    card["training"] = dict(training if training is not None else model.card.get("training", {}))
    card["figures"] = dict(figures if figures is not None else model.card.get("figures", {}))
    pt, js = save_tensors(tensors, path, card)
    model.card = json.loads(js.read_text(encoding="utf-8"))
    return pt


def load_model(path=None) -> OneShotModel:
    """Read a model (default: the shipped real-CT model), refusing a bad checksum."""
    pt = default_model_path() if path is None else model_paths(path)[0]
    tensors, card = load_tensors(pt, FORMAT, "one-shot landmark model",
                                 "train one with 'python -m cochleaai landmarks train' or pick another file")
    try:
        arch = card["architecture"]
        inp = card["input"]
        ref = card["reference"]
        net = SliceUNet(UNetConfig.from_dict(arch))
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        net.eval()
        patch = tensors["reference_patch"].numpy().astype(np.float32)
        mask = tensors["reference_mask"].numpy().astype(bool)
        model = OneShotModel(
            net=net, slice_size=int(inp["slice_size"]), slice_spacing=float(inp["slice_spacing_mm"]),
            window=tuple(inp.get("intensity_window", DEFAULT_WINDOW)),
            centre=np.array(ref["centre_lps"], float), axes=np.array(ref["axes_lps"], float),
            eigenvalues=np.array(ref["eigenvalues_mm2"], float),
            image_centre=np.array(ref["image_centre_lps"], float),
            landmarks=np.array(ref["landmarks_lps"], float).reshape(-1, 3),
            labels=[str(v) for v in ref["landmark_labels"]], patch=patch, patch_mask=mask,
            patch_spacing=float(ref["patch_spacing_mm"]), structure=str(ref.get("structure", "structure")),
            card=card, side=check_side(ref.get("side"), "reference side in the card"),
            anchors=ref.get("intensity_anchors"))
    except CochleaAIError:
        raise
    except Exception as exc:  # wrong keys, shapes or types: the pair does not belong together
        raise CochleaAIError(f"The model '{pt.name}' cannot be read ({type(exc).__name__}: {exc}); "
                             "retrain it or restore the original files.") from None
    if patch.ndim != 3 or patch.shape != mask.shape or len(model.labels) != len(model.landmarks):
        raise CochleaAIError(f"The model '{pt.name}' is inconsistent with its card; retrain it.")
    return model
