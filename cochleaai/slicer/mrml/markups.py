"""Markups nodes (point lists, curves, ROIs) <-> :class:`~cochleaai.markups.Markups`."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import vtk

from cochleaai.errors import CochleaAIError
from cochleaai.markups import Markups
from cochleaai.slicer.mrml.scene import check_scene, place_node, rollback, slicer_module
from cochleaai.volume import Volume, lps_to_ras, ras_to_lps

# --------------------------------------------------------------------------- markups

def markups_from_points(scene, markups: Markups, node=None, show_labels: bool = True):
    """A point list (``kind="point"``) or curve node holding ``markups`` (LPS -> RAS), with labels.

    ``show_labels=False`` hides the point labels in the views (they stay in the node: a curve
    of 60 labelled points is unreadable with them shown).
    """
    slicer = slicer_module()
    scene = check_scene(scene)
    if not isinstance(markups, Markups):
        raise CochleaAIError(f"Expected Markups, got {type(markups).__name__}.")
    class_name = "vtkMRMLMarkupsCurveNode" if markups.kind == "curve" else "vtkMRMLMarkupsFiducialNode"
    if node is not None and node.GetClassName() != class_name:
        raise CochleaAIError(f"Cannot store {markups.kind} markups in '{node.GetName()}' "
                             f"({node.GetClassName()}); pass a {class_name} or no node.")
    ras = lps_to_ras(markups.points)
    descriptions = markups.descriptions or [""] * len(markups)
    with rollback(scene) as created:
        if node is None:
            node = getattr(slicer, class_name)()
        was_modifying = node.StartModify()
        try:
            node.RemoveAllControlPoints()
            for p, label, desc in zip(ras, markups.labels, descriptions):
                index = node.AddControlPoint(vtk.vtkVector3d(*(float(v) for v in p)), label)
                if desc:
                    node.SetNthControlPointDescription(index, desc)
        finally:
            node.EndModify(was_modifying)
        place_node(scene, node, markups.name, created)
        if node.GetDisplayNode() is not None:
            node.GetDisplayNode().SetPointLabelsVisibility(bool(show_labels))
    return node


def named_point_list(scene, names: Sequence[str], name: str, node=None):
    """A point list to place by clicking: one control point per name in ``names``.

    Names the list lacks are added as points still to be placed, in this order, and the
    number of points is fixed: each click in a view then places the next of them, so the
    points are named as they are clicked (placed points keep their place). Returns the node
    (``node`` when given, else a new one called ``name``).
    """
    slicer = slicer_module()
    scene = check_scene(scene)
    if node is not None and not node.IsA("vtkMRMLMarkupsFiducialNode"):
        raise CochleaAIError(f"'{node.GetName()}' is not a point list; choose a point list or none.")
    with rollback(scene) as created:
        if node is None:
            node = slicer.vtkMRMLMarkupsFiducialNode()
            place_node(scene, node, name, created)
        labels = [node.GetNthControlPointLabel(i) for i in range(node.GetNumberOfControlPoints())]
        node.SetFixedNumberOfControlPoints(False)
        for label in names:
            if label not in labels:
                index = node.AddControlPoint(vtk.vtkVector3d(0.0, 0.0, 0.0), str(label))
                node.UnsetNthControlPointPosition(index)
        node.SetFixedNumberOfControlPoints(True)
        unplaced = [i for i in range(node.GetNumberOfControlPoints())
                    if node.GetNthControlPointPositionStatus(i) == node.PositionUndefined]
        if unplaced:
            node.SetControlPointPlacementStartIndex(unplaced[0])
    return node


def points_from_markups(node) -> Markups:
    """Markups (LPS, world coordinates) from a point list or curve node; unplaced points are skipped."""
    slicer = slicer_module()
    if node is None:
        raise CochleaAIError("No markups selected; choose a point list.")
    if not node.IsA("vtkMRMLMarkupsNode"):
        raise CochleaAIError(f"'{node.GetName()}' is a {node.GetClassName()}, not a markups node.")
    # skipped: points marked missing, and points still to be placed (named_point_list)
    unplaced = {getattr(slicer.vtkMRMLMarkupsNode, status, None)
                for status in ("PositionMissing", "PositionUndefined")} - {None}
    points, labels, descriptions = [], [], []
    for i in range(node.GetNumberOfControlPoints()):
        if node.GetNthControlPointPositionStatus(i) in unplaced:
            continue
        p = [0.0, 0.0, 0.0]
        node.GetNthControlPointPositionWorld(i, p)
        points.append(p)
        labels.append(node.GetNthControlPointLabel(i))
        descriptions.append(node.GetNthControlPointDescription(i) or "")
    kind = "curve" if node.IsA("vtkMRMLMarkupsCurveNode") else "point"
    pts = ras_to_lps(np.array(points, dtype=float).reshape(-1, 3))
    return Markups(pts, labels, kind, node.GetName() or "Points",
                   descriptions if any(descriptions) else None)




def roi_index_box(roi_node, volume: Volume) -> Optional[tuple]:
    """``((k0, k1), (j0, j1), (i0, i1))``: the voxels of ``volume``'s grid inside a markups ROI
    node (its RAS bounding box, rounded outwards and clipped to the grid); None for no ROI."""
    if roi_node is None:
        return None
    bounds = [0.0] * 6
    roi_node.GetRASBounds(bounds)
    corners = np.array([[x, y, z] for x in bounds[0:2] for y in bounds[2:4] for z in bounds[4:6]])
    ijk = volume.physical_to_index(ras_to_lps(corners))
    lo = np.maximum(np.floor(ijk.min(0) + 0.5), 0).astype(int)
    hi = np.minimum(np.ceil(ijk.max(0) + 0.5), np.array(volume.size)).astype(int)
    if np.any(hi - lo < 4):
        raise CochleaAIError("The ROI does not overlap the volume (or is thinner than 4 voxels); "
                             "place it around the electrode array.")
    return tuple((int(lo[a]), int(hi[a])) for a in (2, 1, 0))
