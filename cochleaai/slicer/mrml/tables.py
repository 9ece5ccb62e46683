"""Table nodes <-> ``{column: [values]}`` dictionaries."""
from __future__ import annotations

import math
import numbers
from typing import Dict, Mapping, Sequence

import numpy as np
import vtk

from cochleaai.errors import CochleaAIError
from cochleaai.slicer.mrml.scene import check_reuse, check_scene, place_node, rollback, slicer_module

# --------------------------------------------------------------------------- tables

def _is_scalar(value) -> bool:
    return isinstance(value, (str, bytes, numbers.Number, np.generic)) or value is None


def _column_array(name: str, values: Sequence):
    """A VTK array for one table column: int, double or string as the values allow."""
    values = list(values)
    numeric = all(isinstance(v, (numbers.Number, np.number)) and not isinstance(v, (complex, np.complexfloating))
                  or v is None for v in values) and any(v is not None for v in values)
    if numeric and all(isinstance(v, (numbers.Integral, np.integer)) for v in values) \
            and all(-2**31 <= int(v) < 2**31 for v in values):
        array = vtk.vtkIntArray()
        for v in values:
            array.InsertNextValue(int(v))
    elif numeric:
        array = vtk.vtkDoubleArray()
        for v in values:
            array.InsertNextValue(math.nan if v is None else float(v))
    else:
        array = vtk.vtkStringArray()
        for v in values:
            array.InsertNextValue("" if v is None else str(v))
    array.SetName(str(name))
    return array


def table_from_dict(scene, data: Mapping, name: str, node=None):
    """A table node from ``{column: [values...]}``, or from ``{name: scalar}`` as Name/Value rows.

    Columns of integers become integer columns, other numbers double columns, anything else
    text. All columns must have the same length.
    """
    slicer = slicer_module()
    scene = check_scene(scene)
    check_reuse(node, "vtkMRMLTableNode", "table")
    if not isinstance(data, Mapping) or not data:
        raise CochleaAIError("Table data must be a non-empty mapping of column names to values.")
    if all(_is_scalar(v) for v in data.values()):
        columns = {"Name": [str(k) for k in data], "Value": list(data.values())}
        if not all(isinstance(v, (numbers.Number, np.number)) for v in columns["Value"]):
            columns["Value"] = ["" if v is None else str(v) for v in columns["Value"]]
    else:
        columns = {}
        for key, values in data.items():
            if _is_scalar(values):
                raise CochleaAIError(f"Column '{key}' is a single value while others are lists; give "
                                     "every column as a list (or every entry as a single value).")
            columns[str(key)] = list(np.asarray(values).tolist() if isinstance(values, np.ndarray) else values)
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise CochleaAIError(f"Table columns have different lengths {sorted(lengths)}; give every "
                                 "column the same number of rows.")
    arrays = [_column_array(key, values) for key, values in columns.items()]
    with rollback(scene) as created:
        if node is None:
            node = slicer.vtkMRMLTableNode()
        was_modifying = node.StartModify()
        try:
            node.RemoveAllColumns()
            for array in arrays:
                node.AddColumn(array)
        finally:
            node.EndModify(was_modifying)
        place_node(scene, node, name, created, display=False)
    return node


def table_to_dict(node) -> Dict[str, list]:
    """``{column name: [values...]}`` of a table node (numbers as float/int, text as str)."""
    if node is None or not node.IsA("vtkMRMLTableNode"):
        raise CochleaAIError("No table selected; choose a table node.")
    table = node.GetTable()
    out: Dict[str, list] = {}
    for c in range(table.GetNumberOfColumns()):
        column = table.GetColumn(c)
        rows = column.GetNumberOfTuples() if hasattr(column, "GetNumberOfTuples") else column.GetNumberOfValues()
        if column.IsA("vtkStringArray"):
            values = [column.GetValue(r) for r in range(rows)]
        elif column.IsA("vtkDataArray") and column.GetDataType() in (6, 12, 16, 8):  # int, id, long long, long
            values = [int(column.GetValue(r)) for r in range(rows)]
        else:
            values = [column.GetVariantValue(r).ToDouble() if not column.IsA("vtkDataArray")
                      else float(column.GetTuple1(r)) for r in range(rows)]
        out[column.GetName() or f"Column {c}"] = values
    return out


