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
* ``train(volumeNodes or folder, out)``: train a new model with progress and Cancel, then load it.

Encode, interpolate and train also come in three steps, so that the module runs the work in
a worker process (:mod:`cochleaai.vae.jobs`, the model named by its file): ``read_*_inputs``
(MRML -> plain data), the core function (``encode_function``, ``interpolate_function``,
``train_function``; no MRML) and ``add_*_nodes`` / ``load_model`` (the result in the scene)::

    inputs = logic.read_encode_inputs(scene, volumeNode)                   # MRML thread
    encoding = logic.encode_function(inputs.model_path, inputs.volume)     # any process
    z, node = logic.add_encoding_nodes(inputs, encoding)                   # MRML thread
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.progress import Progress
from cochleaai.slicer import mrml
from cochleaai.slicer.logic import CochleaAIModuleLogic, scene_unchanged_on_failure
from cochleaai.slicer.results import SUSPECT_ATTRIBUTE
from cochleaai.slicer.results.vae import (GENERATED_NAME, LATENT_MAP_NAME, MISMATCH_ATTRIBUTE, RECONSTRUCTION_NAME,
                                          put_volume)
from cochleaai.vae import jobs
from cochleaai.vae.data import VolumeGrid
from cochleaai.vae.explore import (OUT_OF_DOMAIN_MISMATCH, decode_volume, grid_of, latent_map, sample_latent,
                                   save_latent_map_png)
from cochleaai.vae.jobs import TrainingInputs
from cochleaai.vae.shipped import default_model_path
from cochleaai.volume import Volume


@dataclasses.dataclass(frozen=True)
class EncodeInputs:
    """One encoding, read from MRML by :meth:`LangevinVAEExplorerLogic.read_encode_inputs`:
    ``model_path`` and ``volume`` are plain data (for the worker), the rest says where the
    reconstruction goes (MRML thread only)."""

    model_path: str
    volume: Volume               # voxels copied from the node
    volume_node: object
    scene: object
    reconstruction_node: object  # the node to write into, or None (the named one, or a new one)


@dataclasses.dataclass(frozen=True)
class InterpolationInputs:
    """One interpolation, read from MRML by :meth:`LangevinVAEExplorerLogic.read_interpolation_inputs`."""

    model_path: str
    volume_a: Volume
    volume_b: Volume
    steps: int
    scene: object


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
        model, card = jobs.load_volume_model(path)
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

    #: The core functions the module runs in its worker process (the model named by its file).
    encode_function = staticmethod(jobs.encode)
    interpolate_function = staticmethod(jobs.interpolate_volumes)
    train_function = staticmethod(jobs.train)

    def encode(self, scene, volume_node, progress=None, reconstruction_node=None):
        """Latent coordinates of a volume node and its reconstruction node; returns ``(z, node)``.

        The volume is resampled onto the model grid around its centre; the node is not modified.
        The reconstruction node records how much of the volume it misses
        (:data:`MISMATCH_ATTRIBUTE`) and, above the model's domain, :data:`SUSPECT_ATTRIBUTE`.
        The same as :meth:`read_encode_inputs`, ``jobs.encode_with`` on the model held and
        :meth:`add_encoding_nodes` in a row.
        """
        p = Progress.wrap(progress)
        p(0.1, "reading the volume")
        inputs = self.read_encode_inputs(scene, volume_node, reconstruction_node)
        encoding = jobs.encode_with(self.model, self.card, inputs.volume, p.stage(0.1, 1.0))
        result = self.add_encoding_nodes(inputs, encoding)
        p(1.0, "encoded")
        return result

    def read_encode_inputs(self, scene, volume_node, reconstruction_node=None) -> EncodeInputs:
        """Check the arguments of :meth:`encode` and copy the volume out of MRML."""
        self._require_model()
        mrml.check_not_an_input(reconstruction_node, [volume_node], "reconstruction")
        volume = mrml.node_to_volume(volume_node)
        return EncodeInputs(str(self.model_path), volume, volume_node, scene, reconstruction_node)

    @staticmethod
    def add_encoding_nodes(inputs: EncodeInputs, encoding: "jobs.Encoding"):
        """Write the reconstruction of an :class:`~cochleaai.vae.jobs.Encoding` into its node
        (reused by name, never the input); returns ``(z, node)``."""
        node = put_volume(inputs.scene, encoding.reconstruction, RECONSTRUCTION_NAME, inputs.reconstruction_node,
                          encoding.z, inputs=[inputs.volume_node])
        node.SetAttribute(MISMATCH_ATTRIBUTE, f"{encoding.mismatch:.4f}")
        node.SetAttribute(SUSPECT_ATTRIBUTE, "yes" if encoding.mismatch > OUT_OF_DOMAIN_MISMATCH else "no")
        return encoding.z, node

    def interpolate(self, scene, node_a, node_b, steps: int = 8, progress=None) -> Dict[str, object]:
        """Decode the straight latent path between two volumes as a playable sequence.

        The same as :meth:`read_interpolation_inputs`, ``jobs.interpolate_with`` on the model
        held and :meth:`add_interpolation_nodes` in a row.
        """
        p = Progress.wrap(progress)
        inputs = self.read_interpolation_inputs(scene, node_a, node_b, steps)
        result = jobs.interpolate_with(self.model, self.card, inputs.volume_a, inputs.volume_b, inputs.steps,
                                       p.stage(0.0, 0.8))
        return self.add_interpolation_nodes(inputs, result, p.stage(0.8, 1.0))

    def read_interpolation_inputs(self, scene, node_a, node_b, steps: int = 8) -> InterpolationInputs:
        """Check the arguments of :meth:`interpolate` and copy both volumes out of MRML."""
        self._require_model()
        if node_a is None or node_b is None:
            raise CochleaAIError("Choose two volumes to interpolate between.")
        if int(steps) < 2:
            raise CochleaAIError("An interpolation needs at least 2 steps.")
        return InterpolationInputs(str(self.model_path), mrml.node_to_volume(node_a), mrml.node_to_volume(node_b),
                                   int(steps), scene)

    @staticmethod
    def add_interpolation_nodes(inputs: InterpolationInputs, result: "jobs.Interpolation",
                                progress=None) -> Dict[str, object]:
        """The sequence of an :class:`~cochleaai.vae.jobs.Interpolation`: ``{"sequence",
        "browser", "proxy", "latent"}`` (on an error or Cancel the scene is left as it was)."""
        p = Progress.wrap(progress)
        p(0.0, "building the sequence")
        with scene_unchanged_on_failure(inputs.scene):
            nodes = mrml.sequence_from_volumes(inputs.scene, result.volumes, "Latent interpolation")
            nodes["latent"] = result.latent
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

    #: Train and save the model (no MRML, no Logic state: runs in a worker process); returns
    #: the saved path, which :meth:`load_model` then loads.
    compute_training = train_function

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
