"""Slicer markups files (``.mrk.json``, legacy ``.fcsv``) <-> :class:`~cochleaai.markups.Markups`."""
from __future__ import annotations

import csv
import json
import math
import warnings
from pathlib import Path

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import write_text_whole
from cochleaai.io.paths import extension_of, require_file
from cochleaai.markups import KIND_TO_TYPE, Markups
from cochleaai.volume import LPS_TO_RAS, lps_to_ras, ras_to_lps

MARKUPS_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/"
                  "Markups/Resources/Schema/markups-schema-v1.0.3.json#")
_TYPE_TO_KIND = {"fiducial": "point", "curve": "curve", "closedcurve": "curve"}


def write_markups_json(path, markups: Markups, coordinate_system: str = "LPS") -> Path:
    """Write ``markups`` as a Slicer ``.mrk.json`` file in LPS (default) or RAS coordinates."""
    if not isinstance(markups, Markups):
        raise CochleaAIError(f"write_markups_json expects Markups, got {type(markups).__name__}.")
    system = str(coordinate_system).upper()
    if system not in ("LPS", "RAS"):
        raise CochleaAIError(f"coordinate_system must be 'LPS' or 'RAS', got {coordinate_system!r}.")
    points = markups.points if system == "LPS" else lps_to_ras(markups.points)
    # identity orientation in RAS, expressed in the file's coordinate system
    orientation = (LPS_TO_RAS if system == "LPS" else np.eye(3)).reshape(-1).tolist()
    descriptions = markups.descriptions or [""] * len(markups)
    control_points = []
    for i, (p, label, desc) in enumerate(zip(points, markups.labels, descriptions)):
        control_points.append({
            "id": str(i + 1), "label": label, "description": desc, "associatedNodeID": "",
            "position": [float(v) for v in p], "orientation": orientation,
            "selected": True, "locked": False, "visibility": True, "positionStatus": "defined",
        })
    document = {
        "@schema": MARKUPS_SCHEMA,
        "markups": [{
            "type": KIND_TO_TYPE[markups.kind], "name": markups.name,
            "coordinateSystem": system, "coordinateUnits": "mm",
            "locked": False, "fixedNumberOfControlPoints": False, "labelFormat": "%N-%d",
            "lastUsedControlPointNumber": len(control_points),
            "controlPoints": control_points, "measurements": [],
        }],
    }
    path = Path(path)
    try:
        write_text_whole(path, json.dumps(document, indent=4))
    except OSError as exc:
        raise CochleaAIError(f"Cannot write '{path}' ({exc}); check that the folder is writable.") from exc
    return path


def _markups_from_json(path: Path) -> Markups:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CochleaAIError(f"'{path.name}' is not valid JSON ({exc}); the markups file is damaged.") from exc
    items = document.get("markups") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise CochleaAIError(f"'{path.name}' has no 'markups' list; it is not a Slicer .mrk.json file.")
    if len(items) > 1:
        warnings.warn(f"'{path.name}' holds {len(items)} markups; reading the first.", stacklevel=3)
    item = items[0]
    mtype = str(item.get("type", "Fiducial"))
    kind = _TYPE_TO_KIND.get(mtype.lower())
    if kind is None:
        warnings.warn(f"'{path.name}' holds a {mtype} markup; its control points are read as a point list.",
                      stacklevel=3)
        kind = "point"
    system = str(item.get("coordinateSystem", "LPS")).upper()
    if system not in ("LPS", "RAS"):
        raise CochleaAIError(f"'{path.name}' uses coordinate system '{system}'; expected LPS or RAS.")
    units = item.get("coordinateUnits", "mm")
    unit = units[0] if isinstance(units, list) and units else units
    scale = {"mm": 1.0, "um": 1e-3}.get(str(unit))
    if scale is None:
        raise CochleaAIError(f"'{path.name}' uses coordinate unit '{unit}'; expected mm or um.")
    points, labels, descriptions = [], [], []
    for i, cp in enumerate(item.get("controlPoints") or []):
        if not isinstance(cp, dict):
            raise CochleaAIError(f"Control point {i} of '{path.name}' is malformed.")
        if str(cp.get("positionStatus", "defined")) == "missing" or "position" not in cp:
            continue
        try:
            p = [float(v) for v in cp["position"]]
        except (TypeError, ValueError):
            p = []
        if len(p) != 3 or not all(math.isfinite(v) for v in p):
            raise CochleaAIError(f"Control point {i} of '{path.name}' has an invalid position {cp['position']!r}.")
        points.append(p)
        labels.append(str(cp.get("label", f"{i + 1}")))
        descriptions.append(str(cp.get("description", "")))
    pts = np.array(points, dtype=float).reshape(-1, 3) * scale
    if system == "RAS":
        pts = ras_to_lps(pts)
    default_name = path.name[:-len(".mrk.json")] if path.name.lower().endswith(".mrk.json") else path.stem
    name = str(item.get("name") or default_name)
    return Markups(pts, labels, kind, name, descriptions if any(descriptions) else None)


def _markups_from_fcsv(path: Path) -> Markups:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CochleaAIError(f"'{path.name}' is not a text file; the .fcsv file is damaged.") from exc
    system = "RAS"                                        # legacy default
    columns = ["id", "x", "y", "z", "ow", "ox", "oy", "oz", "vis", "sel", "lock", "label", "desc",
               "associatedNodeID"]
    data_lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            key, _, value = stripped.lstrip("#").partition("=")
            key, value = key.strip().lower(), value.strip()
            if key == "coordinatesystem":
                system = {"0": "RAS", "ras": "RAS", "1": "LPS", "lps": "LPS"}.get(value.lower())
                if system is None:
                    raise CochleaAIError(f"'{path.name}' uses coordinate system '{value}'; expected RAS or LPS.")
            elif key == "columns":
                columns = [c.strip() for c in value.split(",")]
            continue
        data_lines.append(line)
    try:
        ix, iy, iz = (columns.index(c) for c in ("x", "y", "z"))
    except ValueError:
        raise CochleaAIError(f"'{path.name}' has no x, y, z columns; it is not a markups .fcsv file.") from None
    il = columns.index("label") if "label" in columns else None
    idesc = columns.index("desc") if "desc" in columns else None
    points, labels, descriptions = [], [], []
    for row_number, row in enumerate(csv.reader(data_lines)):
        try:
            p = [float(row[ix]), float(row[iy]), float(row[iz])]
        except (IndexError, ValueError):
            raise CochleaAIError(f"Line {row_number + 1} of the points in '{path.name}' is malformed: "
                                 f"{','.join(row)!r}.") from None
        if not all(math.isfinite(v) for v in p):
            raise CochleaAIError(f"Point {row_number + 1} of '{path.name}' has a non-finite coordinate.")
        points.append(p)
        labels.append(row[il] if il is not None and il < len(row) else f"F-{row_number + 1}")
        descriptions.append(row[idesc] if idesc is not None and idesc < len(row) else "")
    if not points:
        raise CochleaAIError(f"'{path.name}' contains no points.")
    pts = np.array(points, dtype=float)
    if system == "RAS":
        pts = ras_to_lps(pts)
    return Markups(pts, labels, "point", path.stem, descriptions if any(descriptions) else None)


def read_markups(path) -> Markups:
    """Read Slicer markups (``.mrk.json`` in LPS or RAS, or legacy ``.fcsv``); points in LPS."""
    path = require_file(path, "markups")
    ext = extension_of(path)
    if ext in (".mrk.json", ".json"):
        return _markups_from_json(path)
    if ext in (".fcsv", ".csv"):
        return _markups_from_fcsv(path)
    raise CochleaAIError(f"Unknown markups file type '{ext or path.name}'; use .mrk.json or .fcsv.")
