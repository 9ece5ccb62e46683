"""Surface models as legacy ``.vtk`` files that Slicer opens as models (LPS)."""
from __future__ import annotations

from pathlib import Path

from vtkmodules.vtkIOLegacy import vtkPolyDataWriter  # not all of vtk: a second less at every start

from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import written_whole


def write_vtk_model(polydata, path) -> Path:
    """Write a surface (vtkPolyData in LPS mm) to a ``.vtk`` file, whole or not at all."""
    path = Path(path)
    with written_whole(path) as partial:
        writer = vtkPolyDataWriter()
        writer.SetFileName(str(partial))
        writer.SetHeader("SPACE=LPS")      # Slicer reads a .vtk model's coordinate system here
        writer.SetInputData(polydata)
        if not writer.Write():
            raise CochleaAIError(f"Cannot write the model '{path}'; check that the folder is writable.")
    return path
