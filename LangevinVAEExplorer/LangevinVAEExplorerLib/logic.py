"""LangevinVAEExplorerLogic: MRML nodes in, MRML nodes out.

No ``qt``, ``ctk``, ``slicer.app`` or ``slicer.modules`` here: this runs inside Slicer and
headless on ``slicer-core`` (the tests run it on a real ``vtkMRMLScene``).

What it does (all through ``cochleaai.vae``):

* ``load_model(path=None)``: a trained model and its card (default: the shipped model of
  roi phantoms with a 2D latent space);
* ``generate(scene, z)``: decode a latent point into the "Generated cochlea" volume node
  (a few milliseconds on a CPU, so sliders can call it at every move);
* ``random_sample(scene, seed)``, ``encode(scene, volumeNode)`` (latent coordinates and the
  reconstruction), ``interpolate(scene, nodeA, nodeB, steps)`` (a playable volume sequence);
* ``latent_map(scene, n, png)``: decoded middle slices over a grid of (z1, z2), as a
  single-slice volume node and optionally a PNG;
* ``train(volumeNodes or folder, out)``: train a new model with progress and Cancel, then load it;
  ``read_training_inputs`` + ``compute_training`` (no MRML) + ``load_model`` do the same in
  steps, so that training can run off the GUI thread.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.progress import Progress
from cochleaai.slicer import mrml
from cochleaai.slicer.logic import CochleaAIModuleLogic
from cochleaai.slicer.results import SUSPECT_ATTRIBUTE
from cochleaai.slicer.results.vae import (GENERATED_NAME, LATENT_MAP_NAME, MISMATCH_ATTRIBUTE, RECONSTRUCTION_NAME,
                                          put_volume)
from cochleaai.vae.data import VolumeGrid, read_folder, volumes_to_grid
from cochleaai.vae.explore import (OUT_OF_DOMAIN_MISMATCH, decode_volume, encode_volume, grid_of, interpolate,
                                   latent_map, reconstruction_mismatch, sample_latent, save_latent_map_png)
from cochleaai.vae.model_io import load_model
from cochleaai.vae.shipped import default_model_path
from cochleaai.vae.train import TrainConfig, train_volume_model
from cochleaai.volume import Volume


@dataclasses.dataclass(frozen=True)
class TrainingInputs:
    """What :meth:`LangevinVAEExplorerLogic.compute_training` needs, read on the MRML thread."""

    out_path: object
    grid: object                 # cochleaai.vae.data.VolumeGrid the volumes are resampled onto
    folder: Optional[str]        # volume files to read, or None
    volumes: tuple               # cochleaai.volume.Volume copies of the selected nodes
    source: str                  # recorded in the model card
    epochs: int
    kind: str
    latent_dim: int
    seed: int


class LangevinVAEExplorerLogic(CochleaAIModuleLogic):
    """Logic of the Langevin VAE Explorer module."""

    def __init__(self):
        super().__init__()
        self.model = None
        self.card: Optional[dict] = None
        self.model_path: Optional[Path] = None

    # ------------------------------------------------------------------ model
    @staticmethod
    def default_model_path() -> Path:
        return default_model_path()

    def load_model(self, path=None) -> dict:
        """Load a volume model (default: the shipped one); returns a short description."""
        path = Path(path) if path else self.default_model_path()
        model, card = load_model(path, require={"kind": "volume"})
        self.model, self.card, self.model_path = model, card, path
        return self.model_summary()

    def model_summary(self) -> dict:
        self._require_model()
        grid = self.card["data"]["grid"]
        return {"name": self.card.get("name"), "kind": self.card["config"]["model"],
                "latent_dim": int(self.model.latent_dim), "grid": grid["shape"],
                "spacing_mm": grid["spacing_mm"], "path": str(self.model_path)}

    def _require_model(self):
        if self.model is None:
            self.load_model()

    @property
    def latent_dim(self) -> int:
        self._require_model()
        return int(self.model.latent_dim)

    # ------------------------------------------------------------------ generation
    def _check_latent(self, z) -> np.ndarray:
        self._require_model()
        z = np.asarray(z, dtype=np.float32).reshape(-1)
        if z.size < self.model.latent_dim:                     # sliders may set only z1, z2
            z = np.concatenate([z, np.zeros(self.model.latent_dim - z.size, np.float32)])
        if z.size != self.model.latent_dim or not np.all(np.isfinite(z)):
            raise CochleaAIError(f"Give {self.model.latent_dim} finite latent coordinates.")
        return z

    def generate(self, scene, z, node=None, name: str = GENERATED_NAME):
        """Decode latent point ``z`` into a volume node (reused when it exists); returns the node."""
        z = self._check_latent(z)
        volume = decode_volume(self.model, self.card, z)
        return put_volume(scene, volume, name, node, z)

    def random_sample(self, scene, seed: int = 0, node=None):
        """A draw from the prior decoded into the generated volume; returns ``(node, z)``."""
        self._require_model()
        z = sample_latent(self.model, 1, seed)[0]
        return self.generate(scene, z, node), z

    def encode(self, scene, volume_node, progress=None, reconstruction_node=None):
        """Latent coordinates of a volume node and its reconstruction node; returns ``(z, node)``.

        The volume is resampled onto the model grid around its centre; the node is not modified.
        The reconstruction node records how much of the volume it misses
        (:data:`MISMATCH_ATTRIBUTE`) and, above the model's domain, :data:`SUSPECT_ATTRIBUTE`.
        """
        p = Progress.wrap(progress)
        self._require_model()
        mrml.check_not_an_input(reconstruction_node, [volume_node], "reconstruction")
        p(0.1, "reading the volume")
        volume = mrml.node_to_volume(volume_node)
        p(0.3, "encoding")
        z = encode_volume(self.model, self.card, volume)
        p(0.8, "decoding the reconstruction")
        mismatch = reconstruction_mismatch(self.model, self.card, volume, z)
        recon = decode_volume(self.model, self.card, z, volume.center, volume.direction)
        node = put_volume(scene, recon, RECONSTRUCTION_NAME, reconstruction_node, z, inputs=[volume_node])
        node.SetAttribute(MISMATCH_ATTRIBUTE, f"{mismatch:.4f}")
        node.SetAttribute(SUSPECT_ATTRIBUTE, "yes" if mismatch > OUT_OF_DOMAIN_MISMATCH else "no")
        p(1.0, "encoded")
        return z, node

    def interpolate(self, scene, node_a, node_b, steps: int = 8, progress=None) -> Dict[str, object]:
        """Decode the straight latent path between two volumes as a playable sequence."""
        p = Progress.wrap(progress)
        self._require_model()
        if node_a is None or node_b is None:
            raise CochleaAIError("Choose two volumes to interpolate between.")
        volumes = []
        za = encode_volume(self.model, self.card, mrml.node_to_volume(node_a))
        p(0.2, "first volume encoded")
        zb = encode_volume(self.model, self.card, mrml.node_to_volume(node_b))
        p(0.4, "second volume encoded")
        path = interpolate(za, zb, steps)
        for i, z in enumerate(path):
            p(0.4 + 0.4 * i / len(path), f"decoding frame {i + 1}/{len(path)}")
            volumes.append(decode_volume(self.model, self.card, z))
        p(0.8, "building the sequence")
        nodes = mrml.sequence_from_volumes(scene, volumes, "Latent interpolation")
        nodes["latent"] = path
        p(1.0, "interpolation ready")
        return nodes

    def latent_map(self, scene=None, n: int = 7, png_path=None, node=None, axis: str = "axial"):
        """Decoded middle slices over (z1, z2) as a single-slice volume node and/or a PNG.

        Returns ``{"node", "png", "coordinates"}`` (node None without a scene).
        """
        self._require_model()
        if not 2 <= int(n) <= 15:
            raise CochleaAIError("The latent map needs between 2 and 15 tiles per side.")
        mosaic, coords = latent_map(self.model, self.card, n=int(n), axis=axis)
        result = {"node": None, "png": None, "coordinates": coords}
        if scene is not None:
            spacing = grid_of(self.card).spacing_mm
            # one axial slice; row 0 of the mosaic at the top (anterior) of the slice view
            volume = Volume(mosaic[None], spacing, (0.0, 0.0, 0.0))
            result["node"] = put_volume(scene, volume, LATENT_MAP_NAME, node)
        if png_path:
            result["png"] = save_latent_map_png(mosaic, coords, png_path,
                                                title=f"{self.card.get('name', '')}: z1 (across), z2 (up)")
        return result

    # ------------------------------------------------------------------ training
    def train(self, out_path, volume_nodes: Sequence = (), folder=None, epochs: int = 100,
              kind: str = "lvae", latent_dim: int = 2, seed: int = 0, progress=None) -> dict:
        """Train a volume model on volume nodes or on the volume files of a folder, save it to
        ``out_path`` (.pt + .json) and load it. Volumes of other sizes or spacings are
        resampled onto the grid of the current model (or the default grid).

        The same as :meth:`read_training_inputs`, :meth:`compute_training` and
        ``load_model(out_path)`` in a row; returns the model summary.
        """
        inputs = self.read_training_inputs(out_path, volume_nodes, folder=folder, epochs=epochs,
                                           kind=kind, latent_dim=latent_dim, seed=seed)
        self.compute_training(inputs, progress=progress)
        return self.load_model(inputs.out_path)

    def read_training_inputs(self, out_path, volume_nodes: Sequence = (), folder=None, epochs: int = 100,
                             kind: str = "lvae", latent_dim: int = 2, seed: int = 0) -> "TrainingInputs":
        """Check the arguments of :meth:`train` and copy the volume nodes' voxels out of MRML
        (a folder is read by :meth:`compute_training`)."""
        if not out_path:
            raise CochleaAIError("Choose where to save the trained model.")
        grid = VolumeGrid.from_dict(self.card["data"]["grid"]) if self.card else VolumeGrid()
        volumes = ()
        if folder:
            source = f"volume files in {folder}"
        else:
            nodes = [n for n in volume_nodes if n is not None]
            if len(nodes) < 2:
                raise CochleaAIError("Select at least two volumes (or a folder) to train on.")
            volumes = tuple(mrml.node_to_volume(n) for n in nodes)
            source = "volume nodes: " + ", ".join(n.GetName() for n in nodes)
        return TrainingInputs(out_path, grid, folder, volumes, source, int(epochs), kind, int(latent_dim), int(seed))

    @staticmethod
    def compute_training(inputs: "TrainingInputs", progress=None):
        """Train and save the model (no MRML, no Logic state: safe on a worker thread).

        Returns the saved path; :meth:`load_model` it to use the model.
        """
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

    # ------------------------------------------------------------------ self-test
    def self_test(self, scene, seed: int = 1) -> List[str]:
        """Checks on a phantom through this Logic; returns the problems found (empty: all good)."""
        problems = []
        summary = self.load_model()
        if summary["latent_dim"] < 1:
            problems.append("the default model has no latent space")
        phantom = self.generate_phantom(scene, seed=seed, fov="roi")
        z, recon = self.encode(scene, phantom["volume"])
        if recon is None or recon.GetImageData() is None:
            problems.append("encoding gave no reconstruction")
        node = self.generate(scene, z)
        if node.GetName() != GENERATED_NAME:
            problems.append("the generated volume is not named 'Generated cochlea'")
        count = scene.GetNumberOfNodes()
        try:
            self.generate(scene, [float("nan")] * self.latent_dim)
            problems.append("a NaN latent point was accepted")
        except CochleaAIError:
            pass
        if scene.GetNumberOfNodes() != count:
            problems.append("a refused request changed the scene")
        return problems
