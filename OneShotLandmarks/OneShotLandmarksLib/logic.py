"""OneShotLandmarksLogic: MRML nodes in, MRML nodes out.

No ``qt``, ``ctk``, ``slicer.app`` or ``slicer.modules`` here: this runs inside Slicer and
headless on ``slicer-core`` (the tests run it on a real ``vtkMRMLScene``).

* ``train(scene, reference volume, segmentation, landmarks, validation volume,
  segmentation, ...)``: one-shot training; the model is kept (``self.model``, its file
  ``self.model_path``) and saved when a path is given. In steps, so that training can run
  in a worker process: ``read_training_inputs`` (MRML -> plain data),
  ``training_arguments`` for the core function :attr:`train_function` (no MRML; it writes
  the model file and returns its path), and ``compute_training`` (the same here).
* ``load_model(path=None)``: a saved model, by default the shipped real-CT model
  (``load_models(folder)``: every model of a folder, for several references;
  ``model_files(folder)``: their files, checked).
* ``detect(scene, volume node(s), side=...)`` and ``detect_files(scene, paths)``: one
  labelled point list per volume and a table of confidences (one row per volume; a volume
  where the structure is not found gets a row with confidence 0 and the reason). A list of
  models (several references) is fused: the median landmarks, flagged when the references
  disagree. In steps: ``read_detection_inputs`` / ``read_file_inputs`` (plain data, models
  as files or in memory), the core function :attr:`detect_function` (no MRML) with
  ``detection_arguments``, and ``add_result_nodes``.
* ``generate_phantom`` (inherited) and ``self_test`` on phantoms.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from cochleaai import io
from cochleaai.errors import CochleaAIError
from cochleaai.landmarks import jobs
from cochleaai.landmarks.inputs import choose_segment
from cochleaai.landmarks.model_io import check_side, default_model_path, load_model, phantom_model_path
from cochleaai.model_files import model_paths
from cochleaai.progress import Progress
from cochleaai.slicer import mrml
from cochleaai.slicer.logic import CochleaAIModuleLogic, scene_unchanged_on_failure

#: Name of the confidence table node written by :meth:`OneShotLandmarksLogic.detect`.
TABLE_NAME = "Landmark detection confidence"
#: The reference landmarks the panel has the user click, in this order (those of the
#: shipped real-CT model; the phantom model has the first three).
REFERENCE_LANDMARK_NAMES = ("center", "apex", "round_window", "oval_window", "vestibule")
#: Node attribute holding the detection confidence on each output point list.
CONFIDENCE_ATTRIBUTE = "CochleaAI.LandmarkConfidence"
#: The part of the progress bar the detection fills (making the nodes fills the rest).
DETECT_SHARE = 0.95


def _volume(node, what: str):
    if node is None or not node.IsA("vtkMRMLScalarVolumeNode"):
        raise CochleaAIError(f"No {what} selected; choose a scalar volume node.")
    return mrml.node_to_volume(node)


def _structure_mask(segmentation_node, reference, segment_name: Optional[str], what: str) -> np.ndarray:
    if segmentation_node is None:
        raise CochleaAIError(f"No {what} selected; choose the segmentation of the structure of interest.")
    segments = mrml.masks_from_segmentation(segmentation_node, reference)
    return choose_segment(segments, segment_name, f"The {what}", "Choose the segment name.")


@dataclasses.dataclass(frozen=True)
class TrainingInputs:
    """The training data read from MRML by :meth:`OneShotLandmarksLogic.read_training_inputs`
    (copies: training may use them in another thread or process)."""

    reference: object            # cochleaai.volume.Volume
    reference_mask: np.ndarray
    landmarks: object            # cochleaai.Markups placed on the reference
    validation: object
    validation_mask: Optional[np.ndarray]
    segment_name: Optional[str]
    data: Dict[str, str]         # node names, recorded in the model card
    side: Optional[str] = None   # the reference's ear, None when unknown


@dataclasses.dataclass(frozen=True)
class DetectionInputs:
    """What :meth:`OneShotLandmarksLogic.add_result_nodes` and the core function
    :attr:`OneShotLandmarksLogic.detect_function` need, read on the MRML thread."""

    scene: object                # where the result nodes go
    models: list                 # model files (None: the shipped model) or OneShotModels in memory
    volumes: list                # Volumes, volume files, or functions giving a Volume (in this process)
    names: List[str]
    side: Optional[str] = None   # the targets' ear, None: both are tried
    baseline: bool = False
    beside: object = None        # the node the results' folder goes beside


def _as_list(models) -> list:
    return list(models) if isinstance(models, (list, tuple)) else [models]


class OneShotLandmarksLogic(CochleaAIModuleLogic):
    """Logic of the One-Shot Landmarks module."""

    #: The core functions the module runs in a worker process: training writes the model file
    #: and returns its path; detection reads the models from their files.
    train_function = staticmethod(jobs.train_to_file)
    detect_function = staticmethod(jobs.detect_volumes)
    #: The part of the progress bar :attr:`detect_function` fills (:meth:`add_result_nodes` the rest).
    detect_share = DETECT_SHARE

    def __init__(self):
        super().__init__()
        self.model = None            # the model detect() uses (None: the shipped one)
        self.model_path = None       # its file (None: not saved)
        self._scratch = None         # a folder of this Logic's own for models trained without a path
        self._trained = 0

    @staticmethod
    def reference_landmarks_node(scene, reference_node=None, node=None):
        """The point list to click the reference landmarks into: ``node`` completed, or a new
        list "<reference> landmarks", with :data:`REFERENCE_LANDMARK_NAMES` still to be placed."""
        prefix = reference_node.GetName() if reference_node is not None else "Reference"
        return mrml.named_point_list(scene, REFERENCE_LANDMARK_NAMES, f"{prefix} landmarks", node)

    # ------------------------------------------------------------------ model
    def load_model(self, path=None):
        """Load a model (default: the shipped real-CT model), checked, and keep it and its file
        for :meth:`detect` (milliseconds: the networks are small)."""
        self.model = load_model(path)
        self.model_path = str(default_model_path() if not path else model_paths(path)[0])
        return self.model

    @staticmethod
    def _folder_models(folder) -> List[Path]:
        folder = Path(folder)
        files = sorted(folder.glob("*.pt")) if folder.is_dir() else []
        if not files:
            raise CochleaAIError(f"No model (.pt with its .json card) was found in '{folder}'.")
        return files

    @classmethod
    def load_models(cls, folder) -> list:
        """Every model (``.pt`` with its card) in ``folder``, sorted by name."""
        return [load_model(f) for f in cls._folder_models(folder)]

    @classmethod
    def model_files(cls, folder) -> List[str]:
        """The files of :meth:`load_models`, each checked by reading it (milliseconds)."""
        files = cls._folder_models(folder)
        for file in files:      # a damaged or foreign file is refused here, before a job starts
            load_model(file)
        return [str(f) for f in files]

    def training_path(self, path=None) -> str:
        """Where training saves the model: ``path``, or without one a new file in a folder of
        this Logic's own (deleted with it); a worker process hands the model back as a file."""
        if path:
            return str(path)
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="CochleaAI-oneshot-")
        self._trained += 1      # a new file each time: a cancelled training leaves the last one whole
        return str(Path(self._scratch.name) / f"oneshot_trained_{self._trained}.pt")

    def train(self, scene, reference_node, reference_segmentation_node, landmarks_node,
              validation_node=None, validation_segmentation_node=None, segment_name: str = "Cochlea",
              output_path=None, config=None, seed: int = 0, progress=None, side=None):
        """One-shot training from nodes. Returns the model (also kept as ``self.model``).

        The scene is only read. ``output_path`` (optional): where to save ``.pt`` + ``.json``.
        The same as :meth:`read_training_inputs` then :meth:`compute_training`.
        """
        inputs = self.read_training_inputs(reference_node, reference_segmentation_node, landmarks_node,
                                           validation_node, validation_segmentation_node, segment_name, side)
        self.model = self.compute_training(inputs, output_path=output_path, config=config, seed=seed,
                                           progress=progress)
        self.model_path = str(model_paths(output_path)[0]) if output_path else None
        return self.model

    def read_training_inputs(self, reference_node, reference_segmentation_node, landmarks_node,
                             validation_node=None, validation_segmentation_node=None,
                             segment_name: str = "Cochlea", side=None) -> "TrainingInputs":
        """Check the training nodes of :meth:`train` and copy their contents out of MRML.
        The validation volume and its segmentation are optional (both or neither)."""
        reference = _volume(reference_node, "reference volume")
        ref_mask = _structure_mask(reference_segmentation_node, reference, segment_name,
                                   "reference segmentation")
        validation = val_mask = None
        if validation_node is not None or validation_segmentation_node is not None:
            validation = _volume(validation_node, "validation volume")
            val_mask = _structure_mask(validation_segmentation_node, validation, segment_name,
                                       "validation segmentation")
        if landmarks_node is None:
            raise CochleaAIError("No reference landmarks selected; choose the point list placed on the reference.")
        landmarks = mrml.points_from_markups(landmarks_node)
        side = check_side(side, "reference side")
        data = {"reference": reference_node.GetName(),
                "validation": validation_node.GetName() if validation_node is not None else "",
                "landmarks": landmarks_node.GetName(), "segment": segment_name, "side": side or "unknown"}
        return TrainingInputs(reference, ref_mask, landmarks, validation, val_mask, segment_name, data, side)

    @staticmethod
    def training_arguments(inputs: "TrainingInputs", output_path=None, config=None,
                           seed: int = 0) -> Tuple[tuple, dict]:
        """``(args, kwargs)`` of :attr:`train_function` (and :func:`~cochleaai.landmarks.jobs.train_model`)
        for ``inputs``: plain data, picklable."""
        record = {"data": dict(inputs.data), "command": "OneShotLandmarks module: Train"}
        return ((inputs.reference, inputs.reference_mask, inputs.landmarks, inputs.validation,
                 inputs.validation_mask),
                {"output_path": str(output_path) if output_path else None, "config": config, "seed": int(seed),
                 "structure": inputs.segment_name or "structure", "side": inputs.side, "record": record})

    @classmethod
    def compute_training(cls, inputs: "TrainingInputs", output_path=None, config=None, seed: int = 0,
                         progress=None):
        """Train on ``inputs`` and save the model when ``output_path`` is given; returns it.

        Touches no MRML and no Logic state (safe on any thread); :meth:`train` also
        keeps the model for :meth:`detect`.
        """
        args, kwargs = cls.training_arguments(inputs, output_path, config, seed)
        return jobs.train_model(*args, progress=progress, **kwargs)

    # ------------------------------------------------------------------ detect
    def _models(self, model) -> list:
        """The models to detect with: ``model`` (one or a list), else the kept or shipped one."""
        return _as_list(model or self.model or self.load_model())

    def detect_files(self, scene, paths, model=None, progress=None, side=None) -> Dict:
        """Like :meth:`detect` for volume files (or folders of them), read one at a time and
        never added to the scene: only the point lists and the table are."""
        inputs = self.read_file_inputs(scene, paths, side=side)
        return self.compute_and_add(dataclasses.replace(inputs, models=self._models(model)), progress)

    def detect(self, scene, volume_nodes, model=None, progress=None, baseline: bool = False,
               side=None) -> Dict:
        """Detect the landmarks in one volume node or a list of them.

        ``model``: one model or a list (several references, fused). ``side``: the targets'
        ear ("left"/"right"; None: both ears are tried).

        Adds one point list "<volume> landmarks" per volume (labels from the reference;
        the confidence is in the node's description attribute) and a table
        :data:`TABLE_NAME` with one row per volume. Returns ``{"points": [nodes or
        None], "table": node, "rows": [dict]}``. On cancel or error the scene is left
        as it was.
        """
        # read each volume only when its turn comes (a long list stays light)
        inputs = self.read_detection_inputs(scene, volume_nodes, side=side, baseline=baseline, lazy=True)
        return self.compute_and_add(dataclasses.replace(inputs, models=self._models(model)), progress)

    @staticmethod
    def _check_scene(scene) -> None:
        if scene is None:
            raise CochleaAIError("No MRML scene was given.")

    @classmethod
    def read_detection_inputs(cls, scene, volume_nodes, models=None, side=None, baseline: bool = False,
                              lazy: bool = False) -> DetectionInputs:
        """The volumes of ``volume_nodes`` (one node or a list) copied out of MRML, with
        ``models`` (model files, None for the shipped one, or models in memory). ``lazy``: each
        volume is read when its turn comes (in this process only; a node that is not a
        volume then gets a row with the reason instead of stopping here)."""
        cls._check_scene(scene)
        nodes = _as_list(volume_nodes) if volume_nodes is not None else []
        if not nodes:
            raise CochleaAIError("No target volume selected; choose one or more volumes.")
        names = [n.GetName() if n is not None else "(none)" for n in nodes]
        if lazy:
            volumes = [(lambda n=n: _volume(n, "target volume")) for n in nodes]
        else:
            volumes = [_volume(n, "target volume") for n in nodes]
        return DetectionInputs(scene, _as_list(models), volumes, names, side, bool(baseline), nodes[0])

    @classmethod
    def read_file_inputs(cls, scene, paths, models=None, side=None) -> DetectionInputs:
        """:meth:`read_detection_inputs` for volume files (or folders of them): their paths, read
        one at a time by the detection, and the CLI's names for them."""
        cls._check_scene(scene)
        files = io.volume_files(paths)
        if not files:
            raise CochleaAIError("No volume files were found there; pick a folder holding .nrrd/.nii files.")
        # the same names as the CLI: two inputs with one stem get their folder's name in front
        return DetectionInputs(scene, _as_list(models), [str(f) for f in files], io.unique_stems(files), side)

    @staticmethod
    def detection_arguments(inputs: DetectionInputs) -> Tuple[tuple, dict]:
        """``(args, kwargs)`` of :attr:`detect_function` for ``inputs``."""
        return (inputs.models, inputs.volumes, inputs.names), {"side": inputs.side, "baseline": inputs.baseline}

    def compute_and_add(self, inputs: DetectionInputs, progress=None) -> Dict:
        """The detection in this process, then :meth:`add_result_nodes`."""
        p = Progress.wrap(progress)
        args, kwargs = self.detection_arguments(inputs)
        results = self.detect_function(*args, progress=p.stage(0.0, DETECT_SHARE), **kwargs)
        return self.add_result_nodes(inputs, results, progress=p.stage(DETECT_SHARE, 1.0))

    @staticmethod
    def add_result_nodes(inputs: DetectionInputs, results, progress=None) -> Dict:
        """The point lists and the confidence table of ``results`` (:attr:`detect_function`'s)
        in ``inputs.scene``, in one folder; the scene is left as it was on error."""
        scene, p = inputs.scene, Progress.wrap(progress)
        with scene_unchanged_on_failure(scene):
            points = []
            for name, det, row in results:
                if det is None:
                    points.append(None)
                    continue
                point_node = mrml.markups_from_points(scene, det.point_list(f"{name} landmarks"))
                point_node.SetAttribute(CONFIDENCE_ATTRIBUTE, f"{det.confidence:.4f}")
                points.append(point_node)
            rows = [row for _, _, row in results]
            columns = {"Volume": [r["volume"] for r in rows],
                       "Confidence": [float(r["confidence"]) for r in rows],
                       "Flagged": ["yes" if r["flagged"] else "no" for r in rows],
                       "Reason": [r.get("reason", "") for r in rows],
                       "Localisation passes": [int(r.get("localisation_passes", 0)) for r in rows],
                       "Ear": [r.get("side", "") for r in rows],
                       "References": [int(r.get("references", 1)) for r in rows],
                       "Spread (mm)": [float(r.get("spread_mm", 0.0)) for r in rows],
                       "Seconds": [float(r.get("seconds", 0.0)) for r in rows]}
            table = mrml.table_from_dict(scene, columns, TABLE_NAME)
            mrml.put_in_folder(scene, points + [table], TABLE_NAME, beside=inputs.beside)   # one folder per run
            p(1.0, f"Landmarks placed in {sum(pt is not None for pt in points)} of {len(inputs.names)} volume(s)")
        return {"points": points, "table": table, "rows": rows}

    # ---------------------------------------------------------------- self-test
    def self_test(self, scene, seed: int = 3, progress=None, tolerance_mm: float = 2.0) -> List[str]:
        """Generate a temporal phantom, detect with the shipped phantom model, compare with its
        truth. Returns the problems found (an empty list when all is well)."""
        p = Progress.wrap(progress)
        problems = []
        nodes = self.generate_phantom(scene, seed=seed, fov="temporal", progress=p.stage(0.0, 0.3))
        truth = mrml.points_from_markups(nodes["landmarks"])
        result = self.detect(scene, nodes["volume"], model=load_model(phantom_model_path()),
                             progress=p.stage(0.3, 1.0))
        node = result["points"][0]
        if node is None:
            return [f"no landmarks were found: {result['rows'][0]['reason']}"]
        found = mrml.points_from_markups(node)
        if found.labels != truth.labels:
            problems.append(f"labels {found.labels} differ from the truth's {truth.labels}")
        errors = np.linalg.norm(found.points - truth.points, axis=1)
        if np.any(errors > tolerance_mm):
            problems.append(f"landmark errors {np.round(errors, 2).tolist()} mm exceed {tolerance_mm} mm")
        return problems
