"""A cochlea segmentation result as MRML nodes: the outputs of the CochleaShapeSegmentation
module, shared by its Logic and by ``make demo``.

Only :mod:`cochleaai.slicer.mrml` touches MRML here, so this runs inside Slicer and headless on
``slicer-core``.
"""
from __future__ import annotations

from typing import Dict

import numpy as np

from cochleaai.markups import Markups
from cochleaai.progress import Progress
from cochleaai.segments import Segment
from cochleaai.shape import PARAM_NAMES
from cochleaai.shape.model import centerline_markups
from cochleaai.slicer import mrml
from cochleaai.slicer.results import SUSPECT_ATTRIBUTE

#: Names of the two segments of the output segmentation.
SEGMENT_POSTERIOR = "Cochlea"
SEGMENT_SHAPE = "Cochlea shape model"
#: Output roles and the second part of their node names ("<prefix> <name>").
NODE_NAMES = {
    "segmentation": "cochlea segmentation",
    "probability": "cochlea posterior probability",
    "uncertainty": "cochlea shape uncertainty",
    "model": "fitted cochlea shape",
    "centerline": "scala tympani centerline",
    "table": "cochlea shape and measures",
    "landmarks": "fitted cochlea landmarks",
}
#: Colour maps, best first: Slicer's perceptual maps (loaded from files by the Colors module
#: inside Slicer), then built-in tables that slicer-core also has.
PROBABILITY_COLORS = ("vtkMRMLColorTableNodeFileViridis.txt", "vtkMRMLColorTableNodeRainbow")
UNCERTAINTY_COLORS = ("vtkMRMLColorTableNodeFileInferno.txt", "vtkMRMLColorTableNodeIron")
#: Node attributes on the output segmentation (read by batch scripts that sort by quality).
QUALITY_ATTRIBUTE = "CochleaAI.QualitySurfaceErrorMm"
SIDE_ATTRIBUTE = "CochleaAI.Side"
CENTERLINE_POINTS = 60

_SEGMENT_COLORS = {SEGMENT_POSTERIOR: (0.89, 0.35, 0.30), SEGMENT_SHAPE: (0.35, 0.70, 0.90)}


def _set_color_map(volume_node, scene, candidates, low: float, high: float) -> None:
    display = volume_node.GetDisplayNode()
    if display is None:
        return
    for color_id in candidates:
        if scene.GetNodeByID(color_id) is not None:
            display.SetAndObserveColorNodeID(color_id)
            break
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(low, high)
    display.AutoThresholdOff()
    display.SetApplyThreshold(False)


def result_table(result) -> Dict[str, list]:
    """Columns of the output table: one row per shape parameter, clinical measure and quality figure."""
    names, kinds, values, stds = [], [], [], []
    for name, value, std in zip(PARAM_NAMES, result.theta, result.std):
        names.append(name)
        kinds.append("parameter (fit frame)" if result.side == "left" else "parameter")
        values.append(float(value))
        stds.append(float(std))
    for name, stats in result.measures.items():
        names.append(name)
        kinds.append("measure")
        # the mean of the calibrated draws (nearer the truth on phantoms than the fitted
        # shape's own value, README), with their spread
        values.append(float(stats["mean"]))
        stds.append(float(stats["std"]))
    for name, value in result.quality.items():
        names.append(f"{name} (1 = flagged)" if isinstance(value, (bool, np.bool_)) else name)
        kinds.append("quality")
        values.append(float(value))
        stds.append(None)
    return {"Name": names, "Kind": kinds, "Value": values, "Std": stds}


def add_result_nodes(scene, result, prefix: str, progress=None, source_volume_node=None) -> Dict[str, object]:
    """Add a segmentation result to ``scene`` as the module shows it; returns nodes by role
    (segmentation, probability, uncertainty, model, centerline, landmarks, table), named
    ``"<prefix> <role name>"``."""
    p = Progress.wrap(progress)

    def name(role):
        return f"{prefix} {NODE_NAMES[role]}".strip()

    nodes = {}
    p(0.0, "Adding the segmentation")
    segments = [(Segment(1, SEGMENT_POSTERIOR, _SEGMENT_COLORS[SEGMENT_POSTERIOR]), result.sroi.array > 0),
                (Segment(2, SEGMENT_SHAPE, _SEGMENT_COLORS[SEGMENT_SHAPE]), result.ssi.array > 0)]
    # the input volume is the reference geometry (the Segment Editor edits on its grid)
    seg = mrml.segmentation_from_masks(scene, segments, result.roi, name("segmentation"),
                                       reference_volume_node=source_volume_node, side=result.side)
    seg.SetAttribute(QUALITY_ATTRIBUTE, f"{float(result.quality.get('qc_surface_mm', np.nan)):.4f}")
    seg.SetAttribute(SUSPECT_ATTRIBUTE, "yes" if result.quality.get("suspect") else "no")
    seg.SetAttribute(SIDE_ATTRIBUTE, result.side)
    nodes["segmentation"] = seg

    p(0.2, "Adding the probability and uncertainty maps")
    nodes["probability"] = mrml.volume_to_node(scene, result.probability, name("probability"))
    _set_color_map(nodes["probability"], scene, PROBABILITY_COLORS, 0.0, 1.0)
    nodes["uncertainty"] = mrml.volume_to_node(scene, result.uncertainty, name("uncertainty"))
    _set_color_map(nodes["uncertainty"], scene, UNCERTAINTY_COLORS, 0.0, 1.0)   # entropy, bits

    p(0.4, "Adding the fitted surface")
    nodes["model"] = mrml.model_from_polydata(scene, result.mesh(0.15), name("model"),
                                              color=_SEGMENT_COLORS[SEGMENT_SHAPE], opacity=0.6)

    p(0.7, "Adding the centreline, landmarks and measures")
    points, degrees = result.scala_tympani_centerline(CENTERLINE_POINTS)
    nodes["centerline"] = mrml.markups_from_points(
        scene, centerline_markups(points, degrees, name=name("centerline")), show_labels=False)
    landmarks = result.landmarks()
    nodes["landmarks"] = mrml.markups_from_points(
        scene, Markups(np.stack(list(landmarks.values())), list(landmarks), name=name("landmarks")))
    nodes["table"] = mrml.table_from_dict(scene, result_table(result), name("table"))
    if source_volume_node is not None:
        for node in nodes.values():
            node.SetAttribute("CochleaAI.SourceVolume", source_volume_node.GetID() or "")
    mrml.put_in_folder(scene, nodes.values(), name("segmentation"), beside=source_volume_node)
    p(1.0, "Cochlea segmented" + (" (quality flagged: check the result)"
                                  if result.quality.get("suspect") else ""))
    return nodes

