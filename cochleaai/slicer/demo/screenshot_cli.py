"""The ``screenshot`` command: the extension catalog's picture, made from a real result.

The real temporal-bone CT that ships with the extension (specimen T02, the Sample Data
entry) is segmented from the specimen's expert points, with the result nodes the Cochlea
Shape Segmentation module makes from them (read from the development data set, ``--data``), in a headless MRML scene,
and drawn offscreen by Slicer's own displayable managers (:mod:`cochleaai.slicer.render`)
in Slicer's four-up layout. Registered with the core's command line through the
``cochleaai.commands`` entry point (pyproject.toml).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import vtk

from cochleaai import realct
from cochleaai.arguments import add_force
from cochleaai.errors import CochleaAIError
from cochleaai.io import read_volume
from cochleaai.io.outputs import OutputPlan
from cochleaai.markups import Markups
from cochleaai.progress import Progress, tqdm_progress
from cochleaai.slicer import mrml
from cochleaai.slicer.render import render_catalog_screenshot
from cochleaai.segmentation.config import SegmentConfig
from cochleaai.segmentation.pipeline import segment
from cochleaai.slicer.results.segmentation import SEGMENT_POSTERIOR, add_result_nodes
from cochleaai.slicer.sample_data import REAL_SPECIMEN, verify
from cochleaai.volume import lps_to_ras

SPECIMEN = "T02"
#: Bone window of the CT (Slicer's "CT-bone" preset: level 400, width 4000).
BONE_WINDOW, BONE_LEVEL = 4000.0, 400.0


def find_specimen(data_dir) -> realct.Specimen:
    """Specimen T02 (its side and expert landmarks) in the real-CT data set at ``data_dir``."""
    if data_dir is None:
        raise CochleaAIError(f"The screenshot needs the expert landmarks of specimen {SPECIMEN}: pass --data "
                             "with the folder of the Wimmer 2019 real-CT data set (e.g. ../shared/data/real-ct).")
    found = sorted(Path(data_dir).rglob(f"{SPECIMEN}_DESC.json")) if Path(data_dir).is_dir() else []
    if not found:
        raise CochleaAIError(f"No {SPECIMEN}/{SPECIMEN}_DESC.json (the expert landmarks of specimen {SPECIMEN}) "
                             f"under {data_dir}; pass --data with the folder of the Wimmer 2019 real-CT data set.")
    return realct.read_specimen(found[0].parent)


def show_as_a_user_would(nodes: dict, points_node) -> None:
    """The display settings a user picks in Slicer for this picture: the posterior label map
    filled and lit in 3D, the shape model as an outline, no clutter of labels."""
    segments = nodes["segmentation"].GetSegmentation()
    display = nodes["segmentation"].GetDisplayNode()
    for i in range(segments.GetNumberOfSegments()):
        posterior = segments.GetNthSegment(i).GetName() == SEGMENT_POSTERIOR
        display.SetSegmentVisibility3D(segments.GetNthSegmentID(i), posterior)
        display.SetSegmentVisibility2DFill(segments.GetNthSegmentID(i), posterior)
    nodes["model"].GetDisplayNode().SetVisibility(False)                # the same surface as the shape model
    for role in ("centerline", "landmarks"):          # inside the surface in 3D: shown in the slices only
        fitted = nodes[role].GetDisplayNode()
        fitted.SetVisibility3D(False)
        fitted.SetPointLabelsVisibility(False)
        fitted.SetPropertiesLabelVisibility(False)
    points_node.GetDisplayNode().SetPropertiesLabelVisibility(False)


def camera_direction(specimen: realct.Specimen):
    """Look at the cochlea from above its apex, a little from the round-window side, so that
    its turns show (RAS direction from the cochlea to the camera, and the view-up)."""
    x_axis, _, z_axis = (lps_to_ras(a[None])[0] for a in specimen.axes)
    direction = z_axis + 0.5 * x_axis
    up = np.cross(direction, np.cross(np.array([0.0, 0.0, 1.0]), direction))
    return direction / np.linalg.norm(direction), up / np.linalg.norm(up)


def make_screenshot(out, specimen: realct.Specimen, progress=None) -> dict:
    """Segment the shipped T02 CT from ``specimen``'s points in a new scene, with the result
    nodes the module makes, and write the picture to ``out``."""
    p = Progress.wrap(progress)
    scene = mrml.new_scene()
    p(0.0, f"Loading {REAL_SPECIMEN.name}")
    ct = read_volume(verify(REAL_SPECIMEN.path, REAL_SPECIMEN))
    volume_node = mrml.volume_to_node(scene, ct, REAL_SPECIMEN.node_name)
    display = volume_node.GetDisplayNode()
    display.AutoWindowLevelOff()
    display.SetWindowLevel(BONE_WINDOW, BONE_LEVEL)
    points = specimen.points()
    points_node = mrml.markups_from_points(
        scene, Markups(np.stack(list(points.values())), list(points), name=f"{SPECIMEN} expert points"))
    # what the module's Logic does (the Slicer layer does not import a module's Lib): the
    # default fit, then the module's result nodes
    result = segment(ct, points, SegmentConfig(side=specimen.side), progress=p.stage(0.0, 0.8))
    nodes = add_result_nodes(scene, result, volume_node.GetName(), p.stage(0.8, 0.85), volume_node)
    show_as_a_user_would(nodes, points_node)
    p(0.85, "Rendering the views offscreen")
    direction, up = camera_direction(specimen)
    pixels = render_catalog_screenshot(scene, volume_node, nodes["segmentation"], points_node, out,
                                       camera_direction=direction, camera_view_up=up)
    p(1.0, "Done")
    scene.Clear(1)
    return {"screenshot": str(out), "size": [int(pixels.shape[1]), int(pixels.shape[0])],
            "specimen": SPECIMEN, "side": specimen.side, "ct": str(REAL_SPECIMEN.path)}


def _cmd_screenshot(args) -> int:
    out = OutputPlan(force=args.force).file(args.out, "screenshot")
    if out.suffix.lower() != ".png":
        raise CochleaAIError(f"The screenshot is a PNG; give --out a name ending in .png, not '{out.name}'.")
    specimen = find_specimen(args.data)
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_ERROR)    # offscreen GL and widget notices
    with tqdm_progress("screenshot", disable=args.quiet) as progress:
        summary = make_screenshot(out, specimen, progress=progress)
    print(json.dumps(summary, indent=2))
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "screenshot", help="the extension catalog's picture: T02 segmented, drawn by Slicer's views offscreen",
        description=f"Segment the shipped real CT (specimen {SPECIMEN}) from its expert points, with the "
                    "nodes the Cochlea Shape Segmentation module makes, and write Slicer's four-up layout as a PNG, drawn offscreen "
                    "by Slicer's displayable managers.")
    p.add_argument("--out", required=True, help="the PNG to write")
    p.add_argument("--data", default=None,
                   help=f"the real-CT data set folder holding {SPECIMEN}/{SPECIMEN}_DESC.json (expert landmarks)")
    add_force(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_screenshot)
