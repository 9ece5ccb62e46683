"""Model nodes <-> ``vtkPolyData`` surfaces (LPS in the core, RAS in MRML)."""
from __future__ import annotations

import vtk

from cochleaai.errors import CochleaAIError
from cochleaai.slicer.mrml.scene import check_reuse, check_scene, place_node, rollback, slicer_module

# --------------------------------------------------------------------------- models

def _flip_polydata(polydata):
    """A deep copy of ``polydata`` with x and y negated (points, normals and vectors)."""
    transform = vtk.vtkTransform()
    transform.Scale(-1.0, -1.0, 1.0)      # a rotation by 180 degrees: cell orientation unchanged
    flt = vtk.vtkTransformPolyDataFilter()
    flt.SetTransform(transform)
    flt.SetInputData(polydata)
    flt.Update()
    out = vtk.vtkPolyData()
    out.DeepCopy(flt.GetOutput())
    return out


def model_from_polydata(scene, polydata, name: str, color=(0.9, 0.8, 0.6), node=None,
                        coordinate_system: str = "LPS", opacity: float = 1.0):
    """A model node (with display node) showing a copy of ``polydata``.

    ``polydata`` is in ``coordinate_system``: "LPS" (the default, the core library's
    convention: x and y of points and normals are negated to get RAS) or "RAS" (copied as is).
    """
    slicer = slicer_module()
    scene = check_scene(scene)
    check_reuse(node, "vtkMRMLModelNode", "surface model")
    if polydata is None or not polydata.IsA("vtkPolyData") or polydata.GetNumberOfPoints() == 0:
        raise CochleaAIError("The surface is empty (no points); nothing to show as a model.")
    system = str(coordinate_system).upper()
    if system not in ("LPS", "RAS"):
        raise CochleaAIError(f"coordinate_system must be 'LPS' or 'RAS', got {coordinate_system!r}.")
    rgb = [float(c) for c in color]
    if len(rgb) != 3:
        raise CochleaAIError(f"color must be three numbers in [0, 1], got {color!r}.")
    if system == "LPS":
        copy = _flip_polydata(polydata)
    else:
        copy = vtk.vtkPolyData()
        copy.DeepCopy(polydata)
    with rollback(scene) as created:
        if node is None:
            node = slicer.vtkMRMLModelNode()
        node.SetAndObservePolyData(copy)
        place_node(scene, node, name, created)
        display = node.GetDisplayNode()
        if display is not None:
            display.SetColor(*(min(max(c, 0.0), 1.0) for c in rgb))
            display.SetOpacity(float(opacity))
            display.SetVisibility(True)
            if hasattr(display, "SetVisibility2D"):
                display.SetVisibility2D(True)          # outline in the slice views
    return node


def polydata_from_model(node, coordinate_system: str = "LPS"):
    """A copy of a model node's surface, in LPS (default) or RAS."""
    if node is None or not node.IsA("vtkMRMLModelNode") or node.GetPolyData() is None:
        raise CochleaAIError("No surface model selected; choose a model node.")
    if str(coordinate_system).upper() == "LPS":
        return _flip_polydata(node.GetPolyData())
    out = vtk.vtkPolyData()
    out.DeepCopy(node.GetPolyData())
    return out

