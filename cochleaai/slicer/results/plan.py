"""An implant plan as MRML nodes: the "Implant plan" section of the CochleaShapeSegmentation
module, shared by its Logic and by scripts.

From a plan (:meth:`cochleaai.planning.plan.CochleaPlan.to_dict`) of a segmentation result
(:class:`cochleaai.segmentation.results.CochleaSegmentation`, the cochlea the plan was made
for), :func:`add_plan_nodes` adds

* the table "<prefix> implant plan": one row per array, in the plan's ranked order;
* for each of the best-ranked ``arrays_to_show`` arrays: the table "<prefix> <array> contacts"
  (one row per contact, 1 = most apical), the point list "<prefix> <array> planned contacts"
  (labelled "E1 498°": contact and angle from the round window, on the fitted shape) and the
  model "<prefix> <array> path", a tube of radius :data:`PATH_RADIUS_MM` along the array's path
  from the round window to its tip.

Positions are those of the fitted shape (the plan's ``value`` of each figure): the path of the
array's position (:func:`cochleaai.planning.paths.curve_points`, model frame) read at each
contact's angle, posed by the fitted model and mirrored back for a left ear
(``result.to_image``). Only :mod:`cochleaai.slicer.mrml` touches MRML here.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import vtk

from cochleaai.errors import CochleaAIError
from cochleaai.markups import Markups
from cochleaai.planning import paths
from cochleaai.progress import Progress
from cochleaai.shape.params import deformable_of
from cochleaai.slicer import mrml
from cochleaai.slicer.results import SUSPECT_ATTRIBUTE

#: Node attribute of the plan table: the plan's warnings, one per line (absent: none).
WARNING_ATTRIBUTE = "CochleaAI.PlanWarning"
#: Node attribute of the plan table: the coverage of the organ of Corti aimed for (%).
TARGET_ATTRIBUTE = "CochleaAI.PlanTargetCoveragePct"
#: Second part of the node names ("<prefix> <array name> <part>" for the per-array nodes).
PLAN_TABLE_NAME = "implant plan"
CONTACTS_TABLE_NAME = "contacts"
CONTACTS_NAME = "planned contacts"
PATH_NAME = "path"
#: Radius of the array's path tube (mm), points along it (at most) and its colour.
PATH_RADIUS_MM = 0.3
PATH_POINTS = 400
PATH_COLOR = (0.95, 0.75, 0.2)
#: The parts of a figure of the plan (:func:`cochleaai.planning.plan.summary`) in the tables.
ALL_PARTS = ("mean", "sd", "low", "high")
INTERVAL = ("mean", "low", "high")


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def summary_columns(columns: Dict[str, list], label: str, figures: List[dict], parts=ALL_PARTS) -> None:
    """Add the columns "<label> <part>" of the figures (one per row) to ``columns``."""
    for part in parts:
        columns[f"{label} {part}"] = [_number(figure.get(part)) for figure in figures]


def published_depth(array: dict) -> str:
    """The published angular insertion depth of the array, as text ("" when none is known)."""
    cohort = array.get("cohort")
    if not cohort:
        return ""
    text = f"{cohort.get('statistic', 'mean')} {cohort['mean_deg']:.0f}°"
    if cohort.get("min_deg") is not None:
        text += f", {cohort.get('spread', 'range')} {cohort['min_deg']:.0f}-{cohort['max_deg']:.0f}°"
    elif cohort.get("sd_deg"):
        text += f" ± {cohort['sd_deg']:.0f}°"
    if array.get("within_cohort") is not None:
        text += " (inside)" if array["within_cohort"] else " (outside)"
    return text


def plan_table(plan: dict) -> Dict[str, list]:
    """Columns of the plan table: one row per array, best-ranked first."""
    arrays = plan["arrays"]
    columns = {"Rank": list(range(1, len(arrays) + 1)),
               "Array": [a["name"] for a in arrays],
               "Manufacturer": [a["manufacturer"] for a in arrays],
               "Position": [a["position"] for a in arrays],
               "Contacts": [int(a["n_contacts"]) for a in arrays],
               "Insertion (mm)": [float(a["insertion_length_mm"]) for a in arrays]}
    summary_columns(columns, "Apical contact depth (deg)", [a["apical_deg"] for a in arrays])
    summary_columns(columns, "Coverage (%)", [a["coverage_pct"] for a in arrays], ("mean", "sd"))
    columns["Over-insertion (%)"] = [100.0 * float(a["over_inserted_probability"]) for a in arrays]
    columns["Published depth"] = [published_depth(a) for a in arrays]
    return columns


def contacts_table(array: dict) -> Dict[str, list]:
    """Columns of an array's contact table: one row per contact, the most apical first."""
    contacts = array["contacts"]
    columns = {"Contact": [int(c["contact"]) for c in contacts],
               "Manufacturer's number": ["-" if c.get("manufacturer_number") is None else str(c["manufacturer_number"])
                                         for c in contacts]}
    summary_columns(columns, "Angle (deg)", [c["angle_deg"] for c in contacts], ("mean", "sd"))
    summary_columns(columns, "Organ of Corti (%)", [c["organ_of_corti_pct"] for c in contacts], INTERVAL)
    summary_columns(columns, "Greenwood (Hz)", [c["greenwood_hz"] for c in contacts], INTERVAL)
    summary_columns(columns, "Spiral ganglion (Hz)", [c["spiral_ganglion_hz"] for c in contacts], INTERVAL)
    return columns


def on_fitted_path(result, position: str, degrees) -> np.ndarray:
    """Image (LPS) points of the fitted shape's path of ``position`` at ``degrees`` from the
    round window (model frame -> pose of the fit -> the mirror back for a left ear)."""
    curve = paths.curve_points(deformable_of(result.theta))[position]
    along = np.degrees(paths.angles_rad())
    local = np.stack([np.interp(np.asarray(degrees, float), along, curve[:, a]) for a in range(3)], axis=-1)
    return result.to_image(result.model.to_image(local))


def contact_markups(result, array: dict, name: str) -> Markups:
    """The array's contacts inside the cochlea (fitted shape), labelled "E<k> <angle>°"."""
    inside = [c for c in array["contacts"] if c["angle_deg"].get("value") is not None
              and np.isfinite(c["angle_deg"]["value"])]
    if not inside:
        raise CochleaAIError(f"No contact of the {array['name']} lies inside the fitted cochlea; nothing to place.")
    degrees = [float(c["angle_deg"]["value"]) for c in inside]
    descriptions = [f"contact {c['contact']} from the apex"
                    + ("" if c.get("manufacturer_number") is None else f" (manufacturer's {c['manufacturer_number']})")
                    + f": {c['angle_deg']['mean']:.0f} ± {c['angle_deg']['sd']:.0f}° over the posterior"
                    for c in inside]
    return Markups(on_fitted_path(result, array["position"], degrees),
                   [f"E{c['contact']} {d:.0f}°" for c, d in zip(inside, degrees)], name=name,
                   descriptions=descriptions)


def path_tube(result, array: dict):
    """vtkPolyData (LPS): a tube along the array's path from the round window to its tip."""
    tip = array["tip_deg"].get("value")
    if tip is None or not np.isfinite(tip) or tip <= 0:
        raise CochleaAIError(f"The {array['name']} has no tip inside the fitted cochlea; no path to show.")
    points = on_fitted_path(result, array["position"], np.linspace(0.0, float(tip), PATH_POINTS))
    vtk_points = vtk.vtkPoints()
    line = vtk.vtkPolyLine()
    line.GetPointIds().SetNumberOfIds(len(points))
    for i, p in enumerate(points):
        vtk_points.InsertNextPoint(*(float(v) for v in p))
        line.GetPointIds().SetId(i, i)
    cells = vtk.vtkCellArray()
    cells.InsertNextCell(line)
    polyline = vtk.vtkPolyData()
    polyline.SetPoints(vtk_points)
    polyline.SetLines(cells)
    tube = vtk.vtkTubeFilter()       # built in LPS: a left ear's mirror leaves the faces outward
    tube.SetInputData(polyline)
    tube.SetRadius(PATH_RADIUS_MM)
    tube.SetNumberOfSides(16)
    tube.CappingOn()
    tube.Update()
    return tube.GetOutput()


def add_plan_nodes(scene, plan_dict: dict, result, prefix: str, arrays_to_show: int = 1, progress=None,
                   beside=None) -> Dict[str, object]:
    """Add the plan ``plan_dict`` of the cochlea ``result`` to ``scene`` (see the module's
    docstring); returns the nodes: ``table`` (the plan), and for the best-ranked array
    ``contacts_table``, ``contacts`` (point list) and ``path`` (model); ``arrays`` lists those
    three by array (``key`` too) for each of the ``arrays_to_show`` best arrays. The nodes go
    into a folder "<prefix> implant plan" of the Data module, beside ``beside`` (the
    segmentation: in its folder). The caller removes the nodes again on an error
    (``cochleaai.slicer.logic.scene_unchanged_on_failure``)."""
    p = Progress.wrap(progress)
    arrays = list(plan_dict.get("arrays") or [])
    if not arrays:
        raise CochleaAIError("The plan has no array; plan again with at least one array of the catalogue.")
    if plan_dict.get("side") != result.side:
        raise CochleaAIError(f"The plan is for a {plan_dict.get('side')} ear but the segmentation is of a "
                             f"{result.side} ear; plan again from this segmentation.")
    shown = int(arrays_to_show)
    if not 1 <= shown <= len(arrays):
        raise CochleaAIError(f"arrays_to_show must be between 1 and {len(arrays)}, got {arrays_to_show}.")

    def name(*parts):
        return " ".join([str(prefix), *parts]).strip()

    p(0.0, "Adding the plan table")
    table = mrml.table_from_dict(scene, plan_table(plan_dict), name(PLAN_TABLE_NAME))
    warnings = [str(w) for w in plan_dict.get("warnings") or []]
    if warnings:
        table.SetAttribute(WARNING_ATTRIBUTE, "\n".join(warnings))
    table.SetAttribute(SUSPECT_ATTRIBUTE, "yes" if (plan_dict.get("quality") or {}).get("suspect") else "no")
    table.SetAttribute(TARGET_ATTRIBUTE, f"{float(plan_dict['target_coverage_pct']):.1f}")
    made = []
    for rank, array in enumerate(arrays[:shown]):
        p(0.1 + 0.85 * rank / shown, f"Placing the contacts of the {array['name']}")
        nodes = {"key": array["key"],
                 "contacts_table": mrml.table_from_dict(scene, contacts_table(array),
                                                        name(array["name"], CONTACTS_TABLE_NAME)),
                 "contacts": mrml.markups_from_points(
                     scene, contact_markups(result, array, name(array["name"], CONTACTS_NAME))),
                 "path": mrml.model_from_polydata(scene, path_tube(result, array), name(array["name"], PATH_NAME),
                                                  color=PATH_COLOR)}
        made.append(nodes)
    everything = [table] + [node for nodes in made for role, node in nodes.items() if role != "key"]
    mrml.put_in_folder(scene, everything, name(PLAN_TABLE_NAME), beside=beside)
    best = made[0]
    p(1.0, f"Plan ready: {arrays[0]['name']} first")
    return {"table": table, "contacts_table": best["contacts_table"], "contacts": best["contacts"],
            "path": best["path"], "arrays": made}
