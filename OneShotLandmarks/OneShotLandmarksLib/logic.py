"""OneShotLandmarksLogic: MRML nodes in, MRML nodes out.

No ``qt``, ``ctk``, ``slicer.app`` or ``slicer.modules`` here: this runs inside Slicer and
headless on ``slicer-core`` (the tests run it on a real ``vtkMRMLScene``).

* ``train(scene, reference volume, segmentation, landmarks, validation volume,
  segmentation, ...)``: one-shot training; the model is kept (``self.model``) and saved
  when a path is given. In two steps, so that training can run off the GUI thread:
  ``read_training_inputs`` (MRML -> plain data) and ``compute_training`` (no MRML).
* ``load_model(path=None)``: a saved model, by default the shipped real-CT model
  (``load_models(folder)``: every model of a folder, for several references).
* ``detect(scene, volume node(s), side=...)``: one labelled point list per volume and a
  table of confidences (one row per volume; a volume where the structure is not found
  gets a row with confidence 0 and the reason). A list of models (several references)
  is fused: the median landmarks, flagged when the references disagree.
* ``generate_phantom`` (inherited) and ``self_test`` on phantoms.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from cochleaai import io
from cochleaai.errors import CochleaAIError
from cochleaai.landmarks.detect import detect_batch
from cochleaai.landmarks.inputs import choose_segment
from cochleaai.landmarks.model_io import check_side, load_model, phantom_model_path, save_model
from cochleaai.landmarks.training import train_oneshot
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
    (copies: training may use them on any thread)."""

    reference: object            # cochleaai.volume.Volume
    reference_mask: np.ndarray
    landmarks: object            # cochleaai.Markups placed on the reference
    validation: object
    validation_mask: Optional[np.ndarray]
    segment_name: Optional[str]
    data: Dict[str, str]         # node names, recorded in the model card
    side: Optional[str] = None   # the reference's ear, None when unknown


class OneShotLandmarksLogic(CochleaAIModuleLogic):
    """Logic of the One-Shot Landmarks module."""

    def __init__(self):
        super().__init__()
        self.model = None

    @staticmethod
    def reference_landmarks_node(scene, reference_node=None, node=None):
        """The point list to click the reference landmarks into: ``node`` completed, or a new
        list "<reference> landmarks", with :data:`REFERENCE_LANDMARK_NAMES` still to be placed."""
        prefix = reference_node.GetName() if reference_node is not None else "Reference"
        return mrml.named_point_list(scene, REFERENCE_LANDMARK_NAMES, f"{prefix} landmarks", node)

    # ------------------------------------------------------------------ model
    def load_model(self, path=None):
        """Load a model (default: the shipped phantom model) and keep it for :meth:`detect`."""
        self.model = load_model(path)
        return self.model

    @staticmethod
    def load_models(folder) -> list:
        """Every model (``.pt`` with its card) in ``folder``, sorted by name."""
        folder = Path(folder)
        files = sorted(folder.glob("*.pt")) if folder.is_dir() else []
        if not files:
            raise CochleaAIError(f"No model (.pt with its .json card) was found in '{folder}'.")
        return [load_model(f) for f in files]

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
    def compute_training(inputs: "TrainingInputs", output_path=None, config=None, seed: int = 0,
                         progress=None):
        """Train on ``inputs`` and save the model when ``output_path`` is given; returns it.

        Touches no MRML and no Logic state (safe on a worker thread); :meth:`train` also
        keeps the model for :meth:`detect`.
        """
        p = Progress.wrap(progress)
        model = train_oneshot(inputs.reference, inputs.reference_mask, inputs.landmarks, inputs.validation,
                              inputs.validation_mask, config=config, seed=seed,
                              structure=inputs.segment_name or "structure", progress=p.stage(0.0, 0.98),
                              side=inputs.side)
        training = dict(model.card["training"])
        training["data"] = dict(inputs.data)
        training["command"] = "OneShotLandmarks module: Train"
        if output_path:
            save_model(model, output_path, training=training)
        else:
            model.card["training"] = training
        p(1.0, "Model trained")
        return model

    # ------------------------------------------------------------------ detect
    def detect_files(self, scene, paths, model=None, progress=None, side=None) -> Dict:
        """Like :meth:`detect` for volume files (or folders of them), read one at a time and
        never added to the scene: only the point lists and the table are."""
        files = io.volume_files(paths)
        if not files:
            raise CochleaAIError("No volume files were found there; pick a folder holding .nrrd/.nii files.")
        loaders = [(lambda f=f: io.read_volume(f)) for f in files]
        # the same names as the CLI: two inputs with one stem get their folder's name in front
        return self._detect_loaded(scene, loaders, io.unique_stems(files), model, progress, False, side=side)

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
        if volume_nodes is None:
            raise CochleaAIError("No target volume selected; choose one or more volumes.")
        nodes = list(volume_nodes) if isinstance(volume_nodes, (list, tuple)) else [volume_nodes]
        if not nodes:
            raise CochleaAIError("No target volume selected; choose one or more volumes.")
        names = [n.GetName() if n is not None else "(none)" for n in nodes]
        # read each volume only when its turn comes (a long list stays light)
        loaders = [(lambda n=n: _volume(n, "target volume")) for n in nodes]
        return self._detect_loaded(scene, loaders, names, model, progress, baseline, beside=nodes[0], side=side)

    def _detect_loaded(self, scene, loaders, names, model, progress, baseline, beside=None, side=None) -> Dict:
        if scene is None:
            raise CochleaAIError("No MRML scene was given.")
        model = model or self.model or self.load_model()
        p = Progress.wrap(progress)
        results = detect_batch(model, loaders, names, progress=p.stage(0.0, 0.95),
                               use_localisation=not baseline, side=side)
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
            mrml.put_in_folder(scene, points + [table], TABLE_NAME, beside=beside)   # one folder per run
            p(1.0, f"Landmarks placed in {sum(pt is not None for pt in points)} of {len(names)} volume(s)")
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
