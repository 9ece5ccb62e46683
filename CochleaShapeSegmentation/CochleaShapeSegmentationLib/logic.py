"""CochleaShapeSegmentationLogic: MRML nodes in, MRML nodes out.

No ``qt``, ``ctk``, ``slicer.app`` or ``slicer.modules`` here: this runs inside Slicer and
headless on ``slicer-core`` (the tests run it on a real ``vtkMRMLScene``).

* ``segment(volume_node, points_node=None, side="right", settings=None, progress=None)``
  fits the Bayesian logistic shape model (``cochleaai.segmentation.pipeline``) and adds the
  results to the volume's scene: a segmentation ("Cochlea" = posterior label map,
  "Cochlea shape model" = inside of the fitted shape), the posterior probability and the
  shape uncertainty as colour-mapped volumes, the fitted surface (model), the scala tympani
  centreline (curve labelled in degrees from the round window), a table of the shape
  parameters, clinical measures and quality score, and the fitted landmarks.
* The same in three steps, so that the long fit can run off the GUI thread (MRML is not
  thread-safe): ``read_inputs`` (MRML -> a :class:`SegmentationInputs` of plain data),
  ``compute`` (the fit; touches no MRML) and ``add_result_nodes`` (the nodes).
* ``plan(target_coverage=0.75, ...)`` plans a cochlear implant for the last segmentation
  (``cochleaai.planning.plan``: every catalogue array fully inserted, with error bars from the
  shape posterior) and adds the plan table, the best array's contact table, its planned
  contacts and its path (``cochleaai.slicer.results.plan``); in three steps as well:
  ``read_plan_inputs``, ``plan_function`` (the core function a worker process runs) and
  ``add_plan_nodes``; ``save_plan_report(path)`` writes that plan as one HTML page, and its PDF
  where Chromium is installed.
* ``generate_phantom`` (inherited) and ``self_test`` on a phantom.

Batch use (Slicer's Python or slicer-core)::

    logic = CochleaShapeSegmentationLogic()
    nodes = logic.segment(volumeNode, pointsNode, side="left")
    nodes["segmentation"], nodes["table"], ...

    inputs = logic.read_inputs(volumeNode, pointsNode, side="left")   # MRML thread
    result = logic.compute(inputs)                                     # any thread
    nodes = logic.add_result_nodes(inputs, result)                     # MRML thread

    plan_nodes = logic.plan(target_coverage=0.6)       # after a segmentation
    plan_nodes["table"], plan_nodes["contacts"], plan_nodes["path"]
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.io import browser
from cochleaai.io.outputs import OutputPlan
from cochleaai.metrics import dice
from cochleaai.planning import catalogue
from cochleaai.planning import plan as planning
from cochleaai.planning.report import write_report
from cochleaai.progress import Progress
from cochleaai.segmentation import pipeline
from cochleaai.segmentation.options import FIT_SHARE, POINT_ROLES, SIDES
from cochleaai.segmentation.pose import parse_points
from cochleaai.segmentation.config import SegmentConfig
from cochleaai.slicer import mrml
from cochleaai.slicer.logic import CochleaAIModuleLogic, scene_unchanged_on_failure
from cochleaai.slicer.results import plan as plan_nodes
from cochleaai.slicer.results import segmentation as scene_nodes
from cochleaai.slicer.results.segmentation import CENTERLINE_POINTS, NODE_NAMES, SEGMENT_POSTERIOR, SEGMENT_SHAPE

#: Share of the progress of :meth:`CochleaShapeSegmentationLogic.plan` spent planning (the
#: rest adds the nodes).
PLAN_SHARE = 0.9


def _input_volume(volume_node):
    if volume_node is None:
        raise CochleaAIError("No input volume selected; choose the CT volume to segment.")
    if volume_node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise CochleaAIError(f"'{volume_node.GetName()}' is a label map, not a CT image; choose the "
                             "CT volume (a scalar volume of grey values).")
    return mrml.node_to_volume(volume_node)


def _input_points(points_node) -> Dict[str, np.ndarray]:
    """Roles -> LPS points from a point list whose points are labelled center / apex / round window."""
    if points_node is None:
        return {}
    markups = mrml.points_from_markups(points_node)
    if len(markups) == 0:
        raise CochleaAIError(f"The point list '{points_node.GetName()}' has no placed points; place "
                             "them or choose no point list.")
    points = parse_points(markups.labels, markups.points)
    if not points:
        raise CochleaAIError(
            f"No point of '{points_node.GetName()}' is labelled {', '.join(repr(r) for r in POINT_ROLES)} "
            f"(labels found: {', '.join(markups.labels)}); rename the control points.")
    return points


def _settings(settings, side: str):
    side = str(side).strip().lower()
    if side not in SIDES:
        raise CochleaAIError(f"Side must be 'right' or 'left', got {side!r}.")
    if settings is None:
        settings = SegmentConfig()
    elif not isinstance(settings, SegmentConfig):
        raise CochleaAIError("settings must be a cochleaai.segmentation.config.SegmentConfig.")
    # a copy: the caller's settings object is an input too
    return dataclasses.replace(settings, side=side).check()


@dataclasses.dataclass(frozen=True)
class SegmentationInputs:
    """Everything one segmentation needs, read from MRML by :meth:`CochleaShapeSegmentationLogic.read_inputs`.

    ``volume``, ``points`` and ``settings`` are plain data (copies: the fit may use them on
    any thread); ``volume_node``, ``scene`` and ``prefix`` say where the result nodes go and
    are used on the MRML thread only.
    """

    volume: object                   # cochleaai.volume.Volume, voxels copied from the node
    points: Dict[str, np.ndarray]    # role -> LPS point (may be empty)
    settings: object                 # SegmentConfig, side included
    volume_node: object
    scene: object
    prefix: str


@dataclasses.dataclass(frozen=True)
class PlanInputs:
    """Everything one implant plan needs, read by :meth:`CochleaShapeSegmentationLogic.read_plan_inputs`.

    :attr:`args` and :attr:`kwargs` are the plain data :func:`cochleaai.planning.plan.plan_insertions`
    is called with (in a worker process by the module); ``result``, ``scene``, ``prefix``,
    ``segmentation_node`` and ``arrays_to_show`` say what the plan nodes show and where they go.
    """

    theta: np.ndarray
    covariance: np.ndarray
    side: str
    measures: dict
    quality: dict
    target_coverage: float          # share (0-1) of the organ of Corti to aim for
    arrays: Optional[tuple]         # catalogue keys; None: the whole catalogue
    samples: int
    seed: int
    result: object                  # the CochleaSegmentation planned for
    scene: object
    prefix: str
    segmentation_node: object
    arrays_to_show: int

    @property
    def args(self) -> tuple:
        return (self.theta, self.covariance, self.side)

    @property
    def kwargs(self) -> dict:
        return {"target_coverage": self.target_coverage, "arrays": self.arrays, "samples": self.samples,
                "seed": self.seed, "measures": self.measures, "quality": self.quality}


class CochleaShapeSegmentationLogic(CochleaAIModuleLogic):
    """Logic of the Cochlea Shape Segmentation module."""

    def __init__(self):
        super().__init__()
        #: The last :class:`cochleaai.segmentation.pipeline.CochleaSegmentation` added to a scene.
        self.last_result = None
        #: The nodes of :attr:`last_result` by role, and the prefix of their names.
        self.last_nodes: Dict[str, object] = {}
        self.last_prefix = ""
        #: The last plan added to a scene (:meth:`cochleaai.planning.plan.CochleaPlan.to_dict`).
        self.last_plan: Optional[dict] = None
        #: The inputs :attr:`last_plan` was made from (its fitted shape and the nodes' prefix).
        self.last_plan_inputs: Optional[PlanInputs] = None

    @staticmethod
    def points_node(scene, volume_node=None, node=None):
        """The point list to click the cochlea's points into: ``node`` completed, or a new list
        "<volume> cochlea points", with the points of
        :data:`~cochleaai.segmentation.options.POINT_ROLES` still to be placed
        (``cochleaai.slicer.mrml.named_point_list``)."""
        prefix = volume_node.GetName() if volume_node is not None else "Cochlea"
        return mrml.named_point_list(scene, POINT_ROLES, f"{prefix} cochlea points", node)

    def segment(self, volume_node, points_node=None, side: str = "right", settings=None,
                progress=None, scene=None, prefix: Optional[str] = None) -> Dict[str, object]:
        """Segment the cochlea in ``volume_node``; returns the new nodes by role.

        ``points_node``: optional point list with control points labelled ``center``, or
        ``apex`` and ``round window`` (any case); without it the cochlea must be near the
        centre of the volume (a cochlea-centred crop). ``side``: ``"right"`` or ``"left"``
        ear. ``settings``: a ``SegmentConfig`` (its ``side`` is replaced by ``side``).
        Nodes go into ``scene`` (default: the volume's scene) and are named
        ``"<prefix> <role name>"`` (:data:`NODE_NAMES`; prefix defaults to the volume's name).
        Roles: segmentation, probability, uncertainty, model, centerline, table, landmarks.
        On an error or Cancel the scene is left as it was; the inputs are never modified.

        The same as :meth:`read_inputs`, :meth:`compute` and :meth:`add_result_nodes` in a row.
        """
        p = Progress.wrap(progress)
        inputs = self.read_inputs(volume_node, points_node, side=side, settings=settings,
                                  scene=scene, prefix=prefix)
        result = self.compute(inputs, progress=p.stage(0.0, FIT_SHARE))
        return self.add_result_nodes(inputs, result, progress=p.stage(FIT_SHARE, 1.0))

    def read_inputs(self, volume_node, points_node=None, side: str = "right", settings=None,
                    scene=None, prefix: Optional[str] = None) -> SegmentationInputs:
        """Check the inputs of :meth:`segment` and copy them out of MRML (same arguments).

        Raises :class:`CochleaAIError` for a missing or wrong volume, unlabelled points or a
        bad side or settings; the nodes are only read.
        """
        volume = _input_volume(volume_node)
        scene = scene if scene is not None else volume_node.GetScene()
        if scene is None:
            raise CochleaAIError(f"'{volume_node.GetName()}' is not in a scene; add it to the scene first.")
        points = _input_points(points_node)
        settings = _settings(settings, side)
        prefix = volume_node.GetName() if prefix is None else str(prefix)
        return SegmentationInputs(volume, points, settings, volume_node, scene, prefix)

    #: The core function :meth:`compute` runs (the module runs it in a worker process).
    fit_function = staticmethod(pipeline.segment)

    @staticmethod
    def compute(inputs: SegmentationInputs, progress=None):
        """Fit the shape model to ``inputs`` (no MRML: safe on a worker thread).

        Returns a :class:`cochleaai.segmentation.pipeline.CochleaSegmentation`.
        """
        p = Progress.wrap(progress)
        p(0.0, "Fitting the cochlea shape model")
        return pipeline.segment(inputs.volume, inputs.points, inputs.settings, progress=p)

    def add_result_nodes(self, inputs: SegmentationInputs, result, progress=None) -> Dict[str, object]:
        """Add the nodes of a :meth:`compute` result to ``inputs.scene``; returns them by role.

        On an error or Cancel the nodes added so far are removed again.
        """
        scene, volume_node = inputs.scene, inputs.volume_node
        if volume_node.GetScene() is None:   # removed while the fit ran (the fit may be in the background)
            raise CochleaAIError(f"The volume '{volume_node.GetName()}' was removed from the scene during "
                                 "the segmentation; nothing was added. Select a volume and segment again.")
        with scene_unchanged_on_failure(scene):
            nodes = scene_nodes.add_result_nodes(scene, result, inputs.prefix, progress, volume_node)
        self.last_result, self.last_nodes, self.last_prefix = result, nodes, inputs.prefix
        return nodes

    # ---------------------------------------------------------------- implant plan
    #: The core function :meth:`plan` runs (the module runs it in a worker process).
    plan_function = staticmethod(planning.plan_insertions)

    def plan(self, target_coverage: float = planning.DEFAULT_TARGET_COVERAGE, arrays=None,
             samples: int = planning.DEFAULT_SAMPLES, seed: int = 0, arrays_to_show: int = 1,
             progress=None) -> Dict[str, object]:
        """Plan an implant for the last segmentation and add the plan's nodes beside it.

        ``target_coverage``: the share (0-1) of the organ of Corti to cover (deep coverage for
        a patient without residual hearing, less to spare apical hearing); the arrays are
        ranked by how close they come to it. ``arrays``: catalogue keys or names (default:
        the whole catalogue). Returns the nodes by role (``cochleaai.slicer.results.plan.add_plan_nodes``:
        table, contacts_table, contacts, path, arrays). Refused (:class:`CochleaAIError`)
        before any segmentation; on an error or Cancel the scene is left as it was.

        The same as :meth:`read_plan_inputs`, :attr:`plan_function` and :meth:`add_plan_nodes` in a row.
        """
        p = Progress.wrap(progress)
        inputs = self.read_plan_inputs(target_coverage, arrays, samples=samples, seed=seed,
                                       arrays_to_show=arrays_to_show)
        result = self.plan_function(*inputs.args, progress=p.stage(0.0, PLAN_SHARE), **inputs.kwargs)
        return self.add_plan_nodes(inputs, result, progress=p.stage(PLAN_SHARE, 1.0))

    def read_plan_inputs(self, target_coverage: float, arrays=None, samples: int = planning.DEFAULT_SAMPLES,
                         seed: int = 0, arrays_to_show: int = 1) -> PlanInputs:
        """The inputs of :meth:`plan` (same arguments), from the last segmentation; refused
        (:class:`CochleaAIError`) when there is none or its nodes left the scene."""
        result = self.last_result
        if result is None:
            raise CochleaAIError("Segment the cochlea first: the plan is made for the fitted cochlea.")
        segmentation = self.last_nodes.get("segmentation")
        scene = segmentation.GetScene() if segmentation is not None else None
        if scene is None:
            raise CochleaAIError("The segmentation of the last fit is no longer in the scene; segment the "
                                 "cochlea again before planning.")
        keys = None if arrays is None else tuple(catalogue.get(a).key for a in arrays)
        return PlanInputs(np.asarray(result.theta, float), np.asarray(result.covariance, float), result.side,
                          dict(result.measures), dict(result.quality), float(target_coverage), keys, int(samples),
                          int(seed), result, scene, self.last_prefix, segmentation, int(arrays_to_show))

    def add_plan_nodes(self, inputs: PlanInputs, plan, progress=None) -> Dict[str, object]:
        """Add the nodes of a plan (a ``CochleaPlan`` or its ``to_dict()``) made from ``inputs``;
        returns them by role. On an error or Cancel the nodes added so far are removed again."""
        plan_dict = plan.to_dict() if hasattr(plan, "to_dict") else dict(plan)
        with scene_unchanged_on_failure(inputs.scene):
            nodes = plan_nodes.add_plan_nodes(inputs.scene, plan_dict, inputs.result, inputs.prefix,
                                              inputs.arrays_to_show, progress=progress,
                                              beside=inputs.segmentation_node)
        self.last_plan, self.last_plan_inputs = plan_dict, inputs
        return nodes

    def save_plan_report(self, path, pdf: Optional[bool] = None, force: bool = False) -> Dict[str, str]:
        """Write the last plan as one self-contained HTML page (``path``; ``.html`` is added when
        missing) and the same page as a PDF beside it, printed by headless Chromium: with
        ``pdf=None`` where Chromium is installed, with ``pdf=True`` or refused before anything is
        written, never with ``pdf=False``. Returns the files written, by kind ("html", "pdf").

        Refused (:class:`CochleaAIError`, nothing written) before a plan, and where a file is
        already there (unless ``force``) or the folder cannot be written.
        """
        if self.last_plan is None or self.last_plan_inputs is None:
            raise CochleaAIError("Plan the implant first: the report is the plan's.")
        if not str(path).strip():
            raise CochleaAIError("Choose a file name for the report.")
        page = Path(str(path).strip()).expanduser()
        page = page if page.suffix.lower() == ".html" else page.with_name(page.name + ".html")
        printer = browser.find_browser() if (browser.available() if pdf is None else pdf) else None
        outputs = OutputPlan(force=force)
        outputs.file(page, "report")
        if printer:
            outputs.file(page.with_suffix(".pdf"), "report")
        inputs = self.last_plan_inputs
        write_report(page, self.last_plan, inputs.theta, subject=f"CT: {inputs.prefix}")
        written = {"html": str(page)}
        if printer:
            written["pdf"] = str(browser.print_pdf(page, page.with_suffix(".pdf"), printer))
        return written

    # ---------------------------------------------------------------- self-test
    def self_test(self, scene, seed: int = 3, settings=None, progress=None,
                  min_dice: float = 0.8) -> List[str]:
        """Segment a cochlea-region phantom from its true landmarks and compare with its truth.

        Returns the problems found (an empty list when all is well). Used by the module's
        Slicer self-test; the same checks run headless in Testing/test_segmentation_logic.py.
        """
        p = Progress.wrap(progress)
        problems = []
        phantom = self.generate_phantom(scene, seed=seed, fov="roi", progress=p.stage(0.0, 0.1))
        reference = mrml.node_to_volume(phantom["volume"])
        truth = dict((s.name, m) for s, m in mrml.masks_from_segmentation(phantom["segmentation"], reference))
        count = scene.GetNumberOfNodes()
        nodes = self.segment(phantom["volume"], phantom["landmarks"],
                             settings=settings or SegmentConfig(outer_iterations=4, samples=20),
                             progress=p.stage(0.1, 1.0))
        missing = [role for role in NODE_NAMES if nodes.get(role) is None]
        if missing:
            problems.append(f"no output node for {missing}")
        if scene.GetNumberOfNodes() <= count:
            problems.append("the segmentation added no node to the scene")
        masks = dict((s.name, m) for s, m in mrml.masks_from_segmentation(nodes["segmentation"], reference))
        if set(masks) != {SEGMENT_POSTERIOR, SEGMENT_SHAPE}:
            problems.append(f"segments {sorted(masks)} instead of {SEGMENT_POSTERIOR!r}, {SEGMENT_SHAPE!r}")
        elif dice(masks[SEGMENT_SHAPE], truth["Cochlea"]) < min_dice:
            problems.append(f"Dice of the shape model {dice(masks[SEGMENT_SHAPE], truth['Cochlea']):.3f} "
                            f"< {min_dice} against the phantom truth")
        if nodes["centerline"].GetNumberOfControlPoints() != CENTERLINE_POINTS:
            problems.append("the centreline curve does not have its points")
        return problems
