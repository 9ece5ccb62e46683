"""Segmentation nodes <-> ``(Segment, mask)`` lists on a reference grid."""
from __future__ import annotations

import re
from typing import List, Optional, Tuple

import numpy as np
import vtk

from cochleaai.errors import CochleaAIError
from cochleaai.io import LABEL_VALUE_TAG, check_segments, segment_id_from_name, slicer_geometry_string
from cochleaai.segments import Segment
from cochleaai.slicer.mrml.scene import (check_reuse, check_scene, ensure_converter_rules, place_node, rollback,
                                         slicer_module)
from cochleaai.slicer.mrml.volumes import (FLIP_XY, ijk_to_ras_matrix, image_array, image_data, numpy_matrix,
                                           vtk_matrix)
from cochleaai.terminology import terminology_entry
from cochleaai.volume import Volume

_LABEL_TAG = LABEL_VALUE_TAG      # keeps Segment.value through Slicer's label renumbering


# --------------------------------------------------------------------------- segmentations

def _geometry_from_serialized(text: str) -> Optional[Volume]:
    """Parse Slicer's "Reference image geometry" string into a zero uint8 Volume (LPS)."""
    try:
        values = [float(v) for v in str(text).strip().strip(";").split(";") if v.strip() != ""]
    except ValueError:
        return None
    if len(values) != 22:
        return None
    ijk_to_lps = FLIP_XY @ np.array(values[:16]).reshape(4, 4)
    e = [int(round(v)) for v in values[16:]]
    size = (e[5] - e[4] + 1, e[3] - e[2] + 1, e[1] - e[0] + 1)
    if min(size) < 1:
        return None
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    if np.any(spacing <= 0):
        return None
    direction = ijk_to_lps[:3, :3] / spacing
    origin = ijk_to_lps[:3, :3] @ np.array([e[0], e[2], e[4]], dtype=float) + ijk_to_lps[:3, 3]
    try:
        return Volume(np.zeros(size, dtype=np.uint8), spacing, origin, direction)
    except CochleaAIError:
        return None


def segmentation_reference_geometry(node) -> Optional[Volume]:
    """The segmentation's reference image geometry as a zero uint8 Volume, or None if unset."""
    slicer = slicer_module()
    if node is None or not node.IsA("vtkMRMLSegmentationNode") or node.GetSegmentation() is None:
        raise CochleaAIError("No segmentation selected; choose a segmentation node.")
    key = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    return _geometry_from_serialized(node.GetSegmentation().GetConversionParameter(key))


def segmentation_from_masks(scene, segments, reference: Volume, name: str,
                            reference_volume_node=None, node=None,
                            create_closed_surface: bool = False, side: Optional[str] = None):
    """A segmentation node with one named, coloured segment per ``(Segment, mask)``.

    Masks (non-zero = inside, shaped like ``reference.array``, overlaps allowed) become the
    binary-labelmap source representation with ``reference``'s geometry. Segment IDs come
    from the names ("Scala tympani" -> "Scala_tympani"); each segment keeps its
    ``Segment.value`` in the tag ``CochleaAI.LabelValue``. ``reference_volume_node``, if
    given, becomes the segmentation's reference geometry volume (as in the Segment Editor).
    ``create_closed_surface`` also builds the 3D surfaces. Segments of the cochlea get their
    standard terminology (:mod:`cochleaai.terminology`; ``side`` "left" or "right", if known).
    """
    slicer = slicer_module()
    scene = check_scene(scene)
    if not isinstance(reference, Volume):
        raise CochleaAIError("segmentation_from_masks needs the reference Volume giving the geometry.")
    check_reuse(node, "vtkMRMLSegmentationNode", "segmentation")
    checked = check_segments(segments, reference.shape)
    matrix = vtk_matrix(ijk_to_ras_matrix(reference))
    labelmap_name = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()

    vtk_segments = []
    taken: List[str] = []
    for seg, mask in checked:
        image = image_data(mask.astype(np.uint8), oriented=True)
        image.SetImageToWorldMatrix(matrix)
        segment = slicer.vtkSegment()
        segment.SetName(str(seg.name))
        segment.SetColor(*(min(max(float(c), 0.0), 1.0) for c in seg.color))
        segment.SetLabelValue(1)
        segment.SetTag(_LABEL_TAG, str(int(seg.value)))
        entry = terminology_entry(str(seg.name), side)
        if entry is not None:
            segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), entry)
        segment.AddRepresentation(labelmap_name, image)
        seg_id = segment_id_from_name(seg.name, taken)
        taken.append(seg_id)
        vtk_segments.append((seg_id, segment))

    with rollback(scene) as created:
        if node is None:
            node = slicer.vtkMRMLSegmentationNode()
        segmentation = node.GetSegmentation()
        segmentation.RemoveAllSegments()
        segmentation.SetSourceRepresentationName(labelmap_name)
        for seg_id, segment in vtk_segments:
            if not segmentation.AddSegment(segment, seg_id):
                raise CochleaAIError(f"Could not add segment '{segment.GetName()}' to the segmentation.")
        segmentation.CollapseBinaryLabelmaps(False)       # share layers where segments do not overlap
        place_node(scene, node, name, created)
        key = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
        if reference_volume_node is not None:
            if not reference_volume_node.IsA("vtkMRMLVolumeNode"):
                raise CochleaAIError("reference_volume_node must be a volume node.")
            node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
        else:
            segmentation.SetConversionParameter(key, slicer_geometry_string(reference))
        if create_closed_surface and vtk_segments:
            ensure_converter_rules()
            if not node.CreateClosedSurfaceRepresentation():
                raise CochleaAIError("Slicer could not build the 3D surfaces of the segmentation; "
                                     "create them from the Segmentations module instead.")
    return node


def _oriented_image_geometry(image) -> Tuple[Volume, np.ndarray]:
    """(Volume with the image's LPS grid and voxels, same as a (z, y, x) array)."""
    m = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(m)
    ijk_to_lps = FLIP_XY @ numpy_matrix(m)
    extent = image.GetExtent()
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    direction = ijk_to_lps[:3, :3] / spacing
    origin = ijk_to_lps[:3, :3] @ np.array(extent[0::2], dtype=float) + ijk_to_lps[:3, 3]
    arr = image_array(image)
    return Volume(arr, spacing, origin, direction), arr


def _mask_on_reference(mask_volume: Volume, reference: Volume) -> np.ndarray:
    """Put a mask onto ``reference``'s grid: exact copy when the grids align, else nearest resampling."""
    to_ref = np.linalg.inv(reference.index_to_physical_matrix) @ mask_volume.index_to_physical_matrix
    shift = to_ref[:3, 3]
    if np.allclose(to_ref[:3, :3], np.eye(3), atol=1e-6) and np.allclose(shift, np.round(shift), atol=1e-4):
        out = np.zeros(reference.shape, dtype=bool)
        oi, oj, ok = (int(v) for v in np.round(shift))
        src = mask_volume.array
        nz, ny, nx = src.shape
        rz, ry, rx = reference.shape
        z0, y0, x0 = max(ok, 0), max(oj, 0), max(oi, 0)
        z1, y1, x1 = min(ok + nz, rz), min(oj + ny, ry), min(oi + nx, rx)
        if z0 < z1 and y0 < y1 and x0 < x1:
            out[z0:z1, y0:y1, x0:x1] = src[z0 - ok:z1 - ok, y0 - oj:y1 - oj, x0 - oi:x1 - oi]
        return out
    resampled = mask_volume.copy(mask_volume.array.astype(np.uint8)).resample_like(reference, "nearest")
    return resampled.array > 0


def masks_from_segmentation(node, reference: Optional[Volume] = None) -> List[Tuple[Segment, np.ndarray]]:
    """``(Segment, mask)`` for every segment of a segmentation node, masks on one grid.

    The grid is ``reference``'s if given (masks resampled, nearest neighbour, when the grids
    differ), else the segmentation's reference geometry. ``Segment.value`` is the one stored
    by :func:`segmentation_from_masks`, else the segment's position (1, 2, ...).
    """
    slicer = slicer_module()
    if node is None or not node.IsA("vtkMRMLSegmentationNode") or node.GetSegmentation() is None:
        raise CochleaAIError("No segmentation selected; choose a segmentation node.")
    segmentation = node.GetSegmentation()
    labelmap_name = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
    if reference is None:
        reference = segmentation_reference_geometry(node)
    results: List[Tuple[Segment, np.ndarray]] = []
    for index in range(segmentation.GetNumberOfSegments()):
        seg_id = segmentation.GetNthSegmentID(index)
        segment = segmentation.GetSegment(seg_id)
        image = segment.GetRepresentation(labelmap_name)
        label = segment.GetLabelValue()
        if image is None:                                   # other source representation: convert a copy
            image = slicer.vtkOrientedImageData()
            if not slicer.vtkSlicerSegmentationsModuleLogic.GetSegmentBinaryLabelmapRepresentation(
                    node, seg_id, image):
                raise CochleaAIError(f"Segment '{segment.GetName()}' has no labelmap and cannot be "
                                     "converted to one; create the binary labelmap representation first.")
            label = None
        extent = image.GetExtent()
        empty = extent[0] > extent[1] or extent[2] > extent[3] or extent[4] > extent[5]
        value = index + 1
        tag = segment_tag(segment, _LABEL_TAG).strip()
        if re.fullmatch(r"-?\d+", tag):
            value = int(tag)
        info = Segment(value, segment.GetName(), tuple(float(c) for c in segment.GetColor()))
        if empty:
            if reference is None:
                raise CochleaAIError("The segmentation has no reference geometry; pass a reference volume.")
            results.append((info, np.zeros(reference.shape, dtype=bool)))
            continue
        volume, arr = _oriented_image_geometry(image)
        mask_volume = volume.copy((arr == label) if label is not None else (arr != 0))
        if reference is None:
            reference = volume.copy(np.zeros(volume.shape, dtype=np.uint8))
        results.append((info, _mask_on_reference(mask_volume, reference)))
    return results


def segment_tag(segment, key: str) -> str:
    """A segment tag's value, or "" (works with the various Python wrappings of GetTag)."""
    try:
        holder = vtk.reference("")
        if segment.GetTag(key, holder):
            return str(holder)
    except TypeError:
        pass
    return ""

