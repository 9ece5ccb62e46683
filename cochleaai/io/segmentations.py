"""Slicer's ``.seg.nrrd`` segmentation file through slicerio: segments possibly overlapping,
stored as several *layers* of a 4D NRRD, with their terminology."""
from __future__ import annotations

import colorsys
import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import written_whole
from cochleaai.io.paths import require_file
from cochleaai.segments import Segment
from cochleaai.terminology import terminology_entry
from cochleaai.volume import Volume

_BINARY_LABELMAP = "Binary labelmap"
_CLOSED_SURFACE = "Closed surface"
# Segment tag keeping ``Segment.value`` when Slicer renumbers label values inside shared layers.
LABEL_VALUE_TAG = "CochleaAI.LabelValue"


def segment_id_from_name(name: str, taken: Sequence[str] = ()) -> str:
    """A stable segment ID from a display name ("Scala tympani" -> "Scala_tympani").

    A suffix ``_2``, ``_3``, ... makes it unique among ``taken``.
    """
    base = re.sub(r"[^0-9A-Za-z]+", "_", str(name)).strip("_") or "Segment"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def check_segments(segments, shape) -> List[Tuple[Segment, np.ndarray]]:
    """Validate ``(Segment, mask)`` pairs against a volume shape; masks returned as new bool arrays."""
    checked = []
    for item in segments:
        try:
            seg, mask = item
        except (TypeError, ValueError):
            raise CochleaAIError("segments must be a list of (Segment, mask) pairs.") from None
        if not isinstance(seg, Segment):
            raise CochleaAIError(f"Expected a Segment, got {type(seg).__name__}.")
        mask = np.asarray(mask)
        if mask.shape != tuple(shape):
            raise CochleaAIError(f"The mask of segment '{seg.name}' has shape {mask.shape}, but the "
                                 f"reference volume has {tuple(shape)}; resample it onto the reference first.")
        if int(seg.value) <= 0 or int(seg.value) > 65535:
            raise CochleaAIError(f"Segment '{seg.name}' has label value {seg.value}; use 1..65535.")
        checked.append((seg, mask != 0))
    return checked


def pack_segments_into_layers(segments, shape) -> Tuple[List[np.ndarray], List[int]]:
    """Greedily put (possibly overlapping) masks into as few label layers as needed.

    A segment joins the first layer where it overlaps no voxel already used and where its
    label value is free; otherwise it opens a new layer. Returns the layers (integer arrays of
    ``shape`` whose voxels hold label values) and the layer index of each segment.
    """
    checked = check_segments(segments, shape)
    max_value = max((int(s.value) for s, _ in checked), default=1)
    dtype = np.uint8 if max_value <= 255 else np.uint16
    layers: List[np.ndarray] = []
    used_values: List[set] = []
    where: List[int] = []
    for seg, mask in checked:
        value = int(seg.value)
        for index, layer in enumerate(layers):
            if value not in used_values[index] and not np.any(layer[mask]):
                break
        else:
            layers.append(np.zeros(shape, dtype=dtype))
            used_values.append(set())
            index = len(layers) - 1
        layers[index][mask] = value
        used_values[index].add(value)
        where.append(index)
    return layers, where


def _extent(mask: np.ndarray) -> List[int]:
    """Slicer's segment extent ``[i0, i1, j0, j1, k0, k1]`` of the non-zero voxels of a (z, y, x) mask."""
    if not mask.any():
        return [0, -1, 0, -1, 0, -1]
    k, j, i = np.nonzero(mask)
    return [int(v) for axis in (i, j, k) for v in (axis.min(), axis.max())]


def _num(value: float) -> str:
    """Shortest text that reads back as the same double."""
    value = float(value)
    if value == 0.0:
        return "0"
    return repr(value)


def slicer_geometry_string(reference: Volume) -> str:
    """Slicer's serialized "Reference image geometry" of a Volume: IJK-to-RAS (row-major) and extent."""
    ijk_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ reference.index_to_physical_matrix
    nx, ny, nz = reference.size
    values = [_num(v) for v in ijk_to_ras.reshape(-1)] + [str(v) for v in (0, nx - 1, 0, ny - 1, 0, nz - 1)]
    return ";".join(values) + ";"


def _clean_text(text: str) -> str:
    return str(text).replace("\n", " ").replace("\r", " ")


def write_seg_nrrd(path, segments, reference: Volume, closed_surface: bool = True,
                   compress: bool = True, side: Optional[str] = None) -> Path:
    """Write segments as a Slicer segmentation file (``.seg.nrrd`` or ``.seg.nhdr``).

    ``segments``: list of ``(Segment, mask)``; masks are arrays shaped like ``reference.array``
    (non-zero = inside) and may overlap. They are packed into as few layers as possible: one
    layer gives a 3D NRRD, several give a 4D NRRD whose first axis (kind ``list``) is the
    layer, as Slicer writes it. Each segment keeps its name, colour and label value; its ID is
    derived from its name, and segments of the cochlea get their standard terminology
    (``side`` "left" or "right", if known). ``closed_surface`` asks Slicer to build the 3D
    surfaces on loading. The file itself is written by slicerio.
    """
    if not isinstance(reference, Volume):
        raise CochleaAIError("write_seg_nrrd needs the reference Volume that gives the geometry.")
    if not str(path).lower().endswith((".nrrd", ".nhdr")):
        raise CochleaAIError(f"A Slicer segmentation file must end in .seg.nrrd (got '{Path(path).name}').")
    import slicerio  # lazy: installed on first use in Slicer
    from slicerio.segmentation import terminology_entry_from_string  # lazy: installed on first use in Slicer

    checked = check_segments(segments, reference.shape)
    # slicerio's own add_segment renumbers the labels; packing here keeps Segment.value.
    layers, layer_of = pack_segments_into_layers(checked, reference.shape)
    if not layers:                                        # an empty segmentation still stores geometry
        layers = [np.zeros(reference.shape, dtype=np.uint8)]
    voxels = layers[0].transpose(2, 1, 0) if len(layers) == 1 else \
        np.stack(layers, axis=0).transpose(0, 3, 2, 1)     # (z, y, x) -> (layer,) x, y, z

    taken: List[str] = []
    records = []
    for (seg, mask), layer in zip(checked, layer_of):
        seg_id = segment_id_from_name(seg.name, taken)
        taken.append(seg_id)
        record = {"id": seg_id, "name": _clean_text(seg.name), "nameAutoGenerated": False,
                  "color": [min(max(float(c), 0.0), 1.0) for c in seg.color], "colorAutoGenerated": False,
                  "labelValue": int(seg.value), "layer": int(layer), "extent": _extent(mask),
                  "tags": {LABEL_VALUE_TAG: str(int(seg.value))}, "status": "completed"}
        entry = terminology_entry(str(seg.name), side)
        if entry is not None:
            record["terminology"] = terminology_entry_from_string(entry)
        records.append(record)
    segmentation = {
        "voxels": np.ascontiguousarray(voxels),
        "ijkToLPS": reference.index_to_physical_matrix,
        "encoding": "gzip" if compress else "raw",
        "masterRepresentation": _BINARY_LABELMAP,
        "containedRepresentationNames": [_BINARY_LABELMAP] + ([_CLOSED_SURFACE] if closed_surface else []),
        "referenceImageExtentOffset": [0, 0, 0],
        # The reference geometry keeps Slicer's labelmaps on this grid. Given as the raw field:
        # Slicer drops a last parameter that does not end in "&", which slicerio leaves out.
        "Segmentation_ConversionParameters": (
            "Reference image geometry|" + slicer_geometry_string(reference)
            + "|Geometry (IJK-to-RAS matrix and extent) of the labelmaps made by conversion.&"),
        "segments": records,
    }

    path = Path(path)
    try:
        with written_whole(path) as partial:
            slicerio.write_segmentation(str(partial), segmentation, compression_level=6)
    except OSError as exc:
        raise CochleaAIError(f"Cannot write '{path}' ({exc}); check that the folder is writable.") from exc
    return path


def _auto_color(value: int) -> Tuple[float, float, float]:
    """A deterministic, well-spread colour for a label that has none."""
    return tuple(float(c) for c in colorsys.hsv_to_rgb((value * 0.618033988749895) % 1.0, 0.65, 0.9))


def read_seg_nrrd(path) -> Tuple[Volume, List[Tuple[Segment, np.ndarray]]]:
    """Read a Slicer segmentation (.seg.nrrd/.seg.nhdr, 3D or 4D layered) or a plain labelmap NRRD.

    Returns ``(reference, segments)``: ``reference`` is a Volume with the file's voxel grid
    (LPS geometry, an all-zero uint8 array) and ``segments`` a list of ``(Segment, mask)`` with
    boolean masks shaped like ``reference.array``. A NRRD without segment fields gives one
    segment per non-zero label value. The file is parsed by slicerio (LPS or RAS space).
    """
    import slicerio  # lazy: installed on first use in Slicer

    path = require_file(path, "segmentation")
    try:
        segmentation = slicerio.read_segmentation(str(path))
        voxels = np.asarray(segmentation["voxels"])
        ijk_to_lps = np.asarray(segmentation["ijkToLPS"], dtype=float)
    except Exception as exc:  # pynrrd and slicerio raise several types for damaged files
        raise CochleaAIError(f"Cannot read '{path.name}' as a NRRD segmentation ({exc}); the file is "
                             "damaged or not a Slicer segmentation file.") from exc
    if voxels.ndim not in (3, 4):
        raise CochleaAIError(f"'{path.name}' is not a 3D (or layered 4D) segmentation: it has "
                             f"{voxels.ndim} axes.")
    if voxels.dtype.kind not in "iub":
        if voxels.dtype.kind == "f" and np.all(np.isfinite(voxels)):
            voxels = np.trunc(voxels).astype(np.int64)
        else:
            raise CochleaAIError(f"'{path.name}' holds {voxels.dtype} voxels; a segmentation needs labels.")
    layers = (voxels if voxels.ndim == 4 else voxels[np.newaxis]).transpose(0, 3, 2, 1)   # (layer, z, y, x)

    axes = ijk_to_lps[:3, :3]                                  # columns: i, j, k steps in LPS
    spacing = np.linalg.norm(axes, axis=0)
    if np.any(spacing <= 0):
        raise CochleaAIError(f"'{path.name}' has a zero-length voxel axis.")
    try:
        reference = Volume(np.zeros(layers.shape[1:], dtype=np.uint8), spacing, ijk_to_lps[:3, 3],
                           axes / spacing)
    except CochleaAIError as exc:
        raise CochleaAIError(f"'{path.name}' has an unusable geometry: {exc}") from exc

    segments: List[Tuple[Segment, np.ndarray]] = []
    records = segmentation.get("segments") or []
    if not records:                                          # a plain labelmap
        for layer in layers:
            for value in np.unique(layer):
                if value != 0:
                    segments.append((Segment(int(value), f"Segment_{int(value)}", _auto_color(int(value))),
                                     layer == value))
        return reference, segments

    for n, record in enumerate(records):
        name = str(record.get("name", record["id"]))
        value = int(record.get("labelValue", 1))
        # files of Slicer versions before shared layers have one segment per layer and no Layer field
        layer_index = int(record.get("layer", n if layers.shape[0] > 1 else 0))
        if not 0 <= layer_index < layers.shape[0]:
            raise CochleaAIError(f"Segment '{name}' refers to layer {layer_index}, but '{path.name}' "
                                 f"has {layers.shape[0]}; the file is inconsistent.")
        color = record.get("color")
        if color is not None and len(color) < 3:
            raise CochleaAIError(f"Malformed colour {color} of segment '{name}' in '{path.name}'.")
        color = tuple(float(c) for c in color[:3]) if color is not None else _auto_color(value)
        mask = layers[layer_index] == value
        e = record.get("extent")
        if e is not None:                      # voxels of the label outside the extent are not the segment's
            if len(e) < 6:
                raise CochleaAIError(f"Malformed extent {e} of segment '{name}' in '{path.name}'.")
            inside = np.zeros_like(mask)
            if e[0] <= e[1] and e[2] <= e[3] and e[4] <= e[5]:
                inside[max(e[4], 0):e[5] + 1, max(e[2], 0):e[3] + 1, max(e[0], 0):e[1] + 1] = True
            mask &= inside
        original = str(record.get("tags", {}).get(LABEL_VALUE_TAG, "")).strip()
        segment_value = int(original) if re.fullmatch(r"-?\d+", original) else value
        segments.append((Segment(segment_value, name, color), mask))
    return reference, segments
