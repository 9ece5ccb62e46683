"""MRML nodes <-> CochleaAI core types (Volume, masks, Markups, tables, surfaces).

The only module of ``cochleaai`` that talks to Slicer. It needs just MRML, which Slicer
provides and the ``slicer-core`` pip package provides headless (no Qt); ``slicer`` is imported
inside the functions so that ``import cochleaai.slicer.mrml`` works without it.

Coordinates: core types are **LPS** (ITK), MRML is **RAS**; every conversion happens here by
flipping the first two axes. A volume's IJK-to-RAS matrix is
``diag(-1, -1, 1, 1) @ volume.index_to_physical_matrix``.

Conventions of every function that creates nodes: a node passed as ``node=`` is reused
(its content replaced), otherwise a new node is made; a node and its display node end up in
the scene. Errors raise :class:`CochleaAIError` and leave the scene as it was (nodes created
by the failing call are removed again).

Headless use (batch scripts, tests): :func:`new_scene` gives a scene prepared the way the
Slicer application prepares it (application logic, Segmentations and Markups logic, the
segmentation converter rules, the markups JSON storage classes).
"""
from __future__ import annotations

import math
import numbers
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.io import LABEL_VALUE_TAG, check_segments, segment_id_from_name, slicer_geometry_string
from cochleaai.markups import Markups
from cochleaai.segments import Segment
from cochleaai.terminology import terminology_entry
from cochleaai.volume import Volume, lps_to_ras, ras_to_lps

__all__ = [
    "new_scene", "prepare_scene", "ijk_to_ras_matrix",
    "volume_to_node", "node_to_volume",
    "segmentation_from_masks", "masks_from_segmentation", "segmentation_reference_geometry",
    "markups_from_points", "points_from_markups", "named_point_list",
    "table_from_dict", "table_to_dict",
    "model_from_polydata", "polydata_from_model",
    "add_phantom_to_scene", "save_scene", "put_in_folder",
]

_FLIP4 = np.diag([-1.0, -1.0, 1.0, 1.0])
_LABEL_TAG = LABEL_VALUE_TAG      # keeps Segment.value through Slicer's label renumbering


def _slicer():
    try:
        import slicer  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise CochleaAIError("MRML is not available: run inside 3D Slicer or install the "
                             "'slicer-core' package (pip install slicer-core).") from exc
    return slicer


# --------------------------------------------------------------------------- scene set-up

_NODE_CLASSES = ("vtkMRMLMarkupsJsonStorageNode", "vtkMRMLMarkupsFiducialStorageNode",
                 "vtkMRMLSegmentationStorageNode", "vtkMRMLModelStorageNode",
                 "vtkMRMLTableStorageNode", "vtkMRMLVolumeArchetypeStorageNode")
_CONVERTER_RULES = ("vtkBinaryLabelmapToClosedSurfaceConversionRule",
                    "vtkClosedSurfaceToBinaryLabelmapConversionRule",
                    "vtkClosedSurfaceToFractionalLabelmapConversionRule",
                    "vtkFractionalLabelmapToClosedSurfaceConversionRule")


def _ensure_converter_rules() -> None:
    """Register the segmentation representation converters if nobody did (headless MRML)."""
    slicer = _slicer()
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    present = {rule.GetClassName() for rule in factory.GetConverterRules()}
    for class_name in _CONVERTER_RULES:
        if class_name not in present and hasattr(slicer, class_name):
            factory.RegisterConverterRule(getattr(slicer, class_name)())


def prepare_scene(scene):
    """Register what the adapters need in ``scene`` if missing (idempotent, cheap).

    Inside Slicer everything is already registered and nothing happens. Returns ``scene``.
    """
    slicer = _slicer()
    if scene is None:
        raise CochleaAIError("No MRML scene given.")
    for class_name in _NODE_CLASSES:
        if not scene.IsNodeClassRegistered(class_name) and hasattr(slicer, class_name):
            scene.RegisterNodeClass(getattr(slicer, class_name)())
    _ensure_converter_rules()
    return scene


def new_scene():
    """A headless ``vtkMRMLScene`` set up like the Slicer application's.

    Creates the application logic with the default colour tables and the Segmentations and
    Markups module logics (kept alive as the scene's ``_cochleaai_logics`` attribute), and
    registers the converter rules and storage node classes. Use it in batch scripts and
    tests; inside Slicer use ``slicer.mrmlScene``.
    """
    slicer = _slicer()
    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    color_logic = app_logic.GetColorLogic()
    if color_logic is not None:                 # default colour tables (labelmaps, greyscale)
        color_logic.SetMRMLScene(scene)
        color_logic.AddDefaultColorNodes()
    logics = {"application": app_logic}
    for key, name, cls in (("segmentations", "Segmentations", "vtkSlicerSegmentationsModuleLogic"),
                           ("markups", "Markups", "vtkSlicerMarkupsLogic")):
        if hasattr(slicer, cls):
            logic = getattr(slicer, cls)()
            logic.SetMRMLScene(scene)
            logic.SetMRMLApplicationLogic(app_logic)
            app_logic.SetModuleLogic(name, logic)
            logics[key] = logic
    scene._cochleaai_logics = logics
    return prepare_scene(scene)


@contextmanager
def _rollback(scene) -> Iterator[list]:
    """Collect nodes added by a call; remove them again if the call fails."""
    created: list = []
    try:
        yield created
    except BaseException:
        for node in reversed(created):
            try:
                if node is not None and node.GetScene() is scene:
                    scene.RemoveNode(node)
            except Exception:  # pragma: no cover - best effort cleanup
                pass
        raise


def _check_scene(scene):
    if scene is None or not hasattr(scene, "AddNode"):
        raise CochleaAIError("A vtkMRMLScene is required (slicer.mrmlScene inside Slicer, "
                             "cochleaai.slicer.mrml.new_scene() outside).")
    return prepare_scene(scene)


def _place(scene, node, name: str, created: list, display: bool = True):
    """Name the node, add it (if new to the scene) and give it a display node."""
    node.SetName(str(name))
    if node.GetScene() is None:
        scene.AddNode(node)
        created.append(node)
    elif node.GetScene() is not scene:
        raise CochleaAIError(f"Node '{node.GetName()}' belongs to another scene; pass a node of this scene.")
    if display and hasattr(node, "CreateDefaultDisplayNodes") and node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
        if node.GetDisplayNode() is not None:
            created.append(node.GetDisplayNode())
    return node


def _check_reuse(node, class_name: str, what: str):
    if node is not None and not node.IsA(class_name):
        raise CochleaAIError(f"Cannot store a {what} in '{node.GetName()}' ({node.GetClassName()}); "
                             f"pass a {class_name} or no node.")


# --------------------------------------------------------------------------- matrices

def ijk_to_ras_matrix(volume: Volume) -> np.ndarray:
    """The 4x4 IJK-to-RAS matrix MRML uses for ``volume`` (LPS index-to-physical, x/y flipped)."""
    return _FLIP4 @ volume.index_to_physical_matrix


def _vtk_matrix(array: np.ndarray):
    import vtk

    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(array[r, c]))
    return m


def _numpy_matrix(m) -> np.ndarray:
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def _image_data(array: np.ndarray, oriented: bool = False):
    """A deep-copied ``vtkImageData`` (or ``vtkOrientedImageData``) of a (z, y, x) array."""
    import vtk
    from vtk.util import numpy_support

    if oriented:
        image = _slicer().vtkOrientedImageData()
    else:
        image = vtk.vtkImageData()
    nz, ny, nx = array.shape
    image.SetDimensions(nx, ny, nz)
    flat = np.ascontiguousarray(array).reshape(-1)           # x fastest, as VTK stores voxels
    scalars = numpy_support.numpy_to_vtk(flat, deep=True)
    scalars.SetName("ImageScalars")
    image.GetPointData().SetScalars(scalars)
    return image


def _image_array(image) -> np.ndarray:
    """A (z, y, x) copy of a single-component ``vtkImageData``'s voxels."""
    from vtk.util import numpy_support

    nx, ny, nz = image.GetDimensions()
    scalars = image.GetPointData().GetScalars()
    return numpy_support.vtk_to_numpy(scalars).reshape(nz, ny, nx).copy()


# --------------------------------------------------------------------------- volumes

def _voxel_array_for_mrml(volume: Volume, labelmap: bool) -> np.ndarray:
    if not isinstance(volume, Volume):
        raise CochleaAIError(f"Expected a Volume, got {type(volume).__name__}.")
    volume.check_finite("volume")
    arr = volume.numeric_array("volume")
    if labelmap and arr.dtype.kind == "f":
        if not np.all(arr == np.round(arr)):
            raise CochleaAIError("A labelmap needs integer label values; round or threshold the "
                                 "volume first, or load it as a scalar volume.")
        arr = arr.astype(np.int32 if np.abs(arr).max() > 32767 else np.int16)
    return arr


def volume_to_node(scene, volume: Volume, name: str, node=None, labelmap: bool = False):
    """Put ``volume`` into a scalar (or labelmap) volume node; voxels are copied.

    The node's IJK-to-RAS is the Volume's LPS geometry with x and y flipped, set from the
    exact spacing, origin and direction (no matrix decomposition).
    """
    slicer = _slicer()
    scene = _check_scene(scene)
    class_name = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    _check_reuse(node, "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLVolumeNode", "volume")
    if node is not None and not node.IsA("vtkMRMLScalarVolumeNode"):
        raise CochleaAIError(f"'{node.GetName()}' is a {node.GetClassName()}; pass a scalar volume node.")
    arr = _voxel_array_for_mrml(volume, labelmap)
    image = _image_data(arr)
    ras_dirs = (np.diag([-1.0, -1.0, 1.0]) @ volume.direction)
    ras_origin = lps_to_ras(volume.origin)
    with _rollback(scene) as created:
        if node is None:
            node = getattr(slicer, class_name)()
        node.SetAndObserveImageData(image)
        node.SetSpacing(*(float(s) for s in volume.spacing))
        node.SetOrigin(*(float(o) for o in ras_origin))
        node.SetIJKToRASDirections(*(float(v) for v in ras_dirs.reshape(-1)))
        _place(scene, node, name, created)
    return node


def node_to_volume(node) -> Volume:
    """A Volume (LPS, voxels copied) from a scalar volume node.

    A linear parent transform is applied to the geometry; a non-linear one must be hardened first.
    """
    import vtk

    if node is None:
        raise CochleaAIError("No volume selected; choose an input volume.")
    if not node.IsA("vtkMRMLScalarVolumeNode"):
        raise CochleaAIError(f"'{node.GetName()}' is a {node.GetClassName()}, not a scalar volume; "
                             "select a scalar volume.")
    image = node.GetImageData()
    if image is None or image.GetPointData() is None or image.GetPointData().GetScalars() is None \
            or min(image.GetDimensions()) < 1 or image.GetNumberOfPoints() == 0:
        raise CochleaAIError(f"The volume '{node.GetName()}' has no voxels; load or compute it first.")
    if image.GetNumberOfScalarComponents() != 1:
        raise CochleaAIError(f"'{node.GetName()}' has {image.GetNumberOfScalarComponents()} values per "
                             "voxel (colour or vector volume); select a scalar volume.")
    arr = _image_array(image)

    directions = vtk.vtkMatrix4x4()
    node.GetIJKToRASDirectionMatrix(directions)
    ras_dirs = _numpy_matrix(directions)[:3, :3]
    spacing = np.array(node.GetSpacing(), dtype=float)
    ras_origin = np.array(node.GetOrigin(), dtype=float)
    extent = image.GetExtent()
    if extent[0] or extent[2] or extent[4]:                  # extent not starting at 0
        ras_origin = ras_origin + ras_dirs @ (spacing * np.array(extent[0::2], dtype=float))

    parent = node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise CochleaAIError(f"'{node.GetName()}' is under a non-linear transform; harden the "
                                 "transform on the volume first.")
        to_world = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(to_world)
        m = np.eye(4)
        m[:3, :3] = ras_dirs @ np.diag(spacing)
        m[:3, 3] = ras_origin
        m = _numpy_matrix(to_world) @ m
        spacing = np.linalg.norm(m[:3, :3], axis=0)
        ras_dirs = m[:3, :3] / spacing
        ras_origin = m[:3, 3]
    direction = np.diag([-1.0, -1.0, 1.0]) @ ras_dirs
    return Volume(arr, spacing, ras_to_lps(ras_origin), direction)


# --------------------------------------------------------------------------- segmentations

def _geometry_from_serialized(text: str) -> Optional[Volume]:
    """Parse Slicer's "Reference image geometry" string into a zero uint8 Volume (LPS)."""
    try:
        values = [float(v) for v in str(text).strip().strip(";").split(";") if v.strip() != ""]
    except ValueError:
        return None
    if len(values) != 22:
        return None
    ijk_to_lps = _FLIP4 @ np.array(values[:16]).reshape(4, 4)
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
    slicer = _slicer()
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
    slicer = _slicer()
    scene = _check_scene(scene)
    if not isinstance(reference, Volume):
        raise CochleaAIError("segmentation_from_masks needs the reference Volume giving the geometry.")
    _check_reuse(node, "vtkMRMLSegmentationNode", "segmentation")
    checked = check_segments(segments, reference.shape)
    matrix = _vtk_matrix(ijk_to_ras_matrix(reference))
    labelmap_name = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()

    vtk_segments = []
    taken: List[str] = []
    for seg, mask in checked:
        image = _image_data(mask.astype(np.uint8), oriented=True)
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

    with _rollback(scene) as created:
        if node is None:
            node = slicer.vtkMRMLSegmentationNode()
        segmentation = node.GetSegmentation()
        segmentation.RemoveAllSegments()
        segmentation.SetSourceRepresentationName(labelmap_name)
        for seg_id, segment in vtk_segments:
            if not segmentation.AddSegment(segment, seg_id):
                raise CochleaAIError(f"Could not add segment '{segment.GetName()}' to the segmentation.")
        segmentation.CollapseBinaryLabelmaps(False)       # share layers where segments do not overlap
        _place(scene, node, name, created)
        key = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
        if reference_volume_node is not None:
            if not reference_volume_node.IsA("vtkMRMLVolumeNode"):
                raise CochleaAIError("reference_volume_node must be a volume node.")
            node.SetReferenceImageGeometryParameterFromVolumeNode(reference_volume_node)
        else:
            segmentation.SetConversionParameter(key, slicer_geometry_string(reference))
        if create_closed_surface and vtk_segments:
            _ensure_converter_rules()
            if not node.CreateClosedSurfaceRepresentation():
                raise CochleaAIError("Slicer could not build the 3D surfaces of the segmentation; "
                                     "create them from the Segmentations module instead.")
    return node


def _oriented_image_geometry(image) -> Tuple[Volume, np.ndarray]:
    """(Volume with the image's LPS grid and voxels, same as a (z, y, x) array)."""
    import vtk

    m = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(m)
    ijk_to_lps = _FLIP4 @ _numpy_matrix(m)
    extent = image.GetExtent()
    spacing = np.linalg.norm(ijk_to_lps[:3, :3], axis=0)
    direction = ijk_to_lps[:3, :3] / spacing
    origin = ijk_to_lps[:3, :3] @ np.array(extent[0::2], dtype=float) + ijk_to_lps[:3, 3]
    arr = _image_array(image)
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
    slicer = _slicer()
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
        tag = _get_tag(segment, _LABEL_TAG).strip()
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


def _get_tag(segment, key: str) -> str:
    """A segment tag's value, or "" (works with the various Python wrappings of GetTag)."""
    import vtk

    try:
        holder = vtk.reference("")
        if segment.GetTag(key, holder):
            return str(holder)
    except TypeError:
        pass
    return ""


# --------------------------------------------------------------------------- markups

def markups_from_points(scene, markups: Markups, node=None, show_labels: bool = True):
    """A point list (``kind="point"``) or curve node holding ``markups`` (LPS -> RAS), with labels.

    ``show_labels=False`` hides the point labels in the views (they stay in the node: a curve
    of 60 labelled points is unreadable with them shown).
    """
    import vtk

    slicer = _slicer()
    scene = _check_scene(scene)
    if not isinstance(markups, Markups):
        raise CochleaAIError(f"Expected Markups, got {type(markups).__name__}.")
    class_name = "vtkMRMLMarkupsCurveNode" if markups.kind == "curve" else "vtkMRMLMarkupsFiducialNode"
    if node is not None and node.GetClassName() != class_name:
        raise CochleaAIError(f"Cannot store {markups.kind} markups in '{node.GetName()}' "
                             f"({node.GetClassName()}); pass a {class_name} or no node.")
    ras = lps_to_ras(markups.points)
    descriptions = markups.descriptions or [""] * len(markups)
    with _rollback(scene) as created:
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
        _place(scene, node, markups.name, created)
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
    import vtk

    slicer = _slicer()
    scene = _check_scene(scene)
    if node is not None and not node.IsA("vtkMRMLMarkupsFiducialNode"):
        raise CochleaAIError(f"'{node.GetName()}' is not a point list; choose a point list or none.")
    with _rollback(scene) as created:
        if node is None:
            node = slicer.vtkMRMLMarkupsFiducialNode()
            _place(scene, node, name, created)
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
    slicer = _slicer()
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


# --------------------------------------------------------------------------- tables

def _is_scalar(value) -> bool:
    return isinstance(value, (str, bytes, numbers.Number, np.generic)) or value is None


def _column_array(name: str, values: Sequence):
    """A VTK array for one table column: int, double or string as the values allow."""
    import vtk

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
    slicer = _slicer()
    scene = _check_scene(scene)
    _check_reuse(node, "vtkMRMLTableNode", "table")
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
    with _rollback(scene) as created:
        if node is None:
            node = slicer.vtkMRMLTableNode()
        was_modifying = node.StartModify()
        try:
            node.RemoveAllColumns()
            for array in arrays:
                node.AddColumn(array)
        finally:
            node.EndModify(was_modifying)
        _place(scene, node, name, created, display=False)
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


# --------------------------------------------------------------------------- models

def _flip_polydata(polydata):
    """A deep copy of ``polydata`` with x and y negated (points, normals and vectors)."""
    import vtk

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
    import vtk

    slicer = _slicer()
    scene = _check_scene(scene)
    _check_reuse(node, "vtkMRMLModelNode", "surface model")
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
    with _rollback(scene) as created:
        if node is None:
            node = slicer.vtkMRMLModelNode()
        node.SetAndObservePolyData(copy)
        _place(scene, node, name, created)
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
    import vtk

    if node is None or not node.IsA("vtkMRMLModelNode") or node.GetPolyData() is None:
        raise CochleaAIError("No surface model selected; choose a model node.")
    if str(coordinate_system).upper() == "LPS":
        return _flip_polydata(node.GetPolyData())
    out = vtk.vtkPolyData()
    out.DeepCopy(node.GetPolyData())
    return out


# --------------------------------------------------------------------------- phantom

def add_phantom_to_scene(scene, phantom, prefix: str = "Phantom") -> Dict[str, object]:
    """Show a phantom: its CT volume, its segmentation (referencing the CT) and its landmarks.

    ``phantom`` needs ``ct`` (Volume), ``segments`` (list of (Segment, mask)), ``landmarks``
    (Markups); ``truth`` is not shown. Nodes are named "<prefix> CT", "<prefix> segmentation"
    and "<prefix> landmarks". Returns ``{"volume", "segmentation", "landmarks"}`` nodes.
    """
    scene = _check_scene(scene)
    for attribute in ("ct", "segments", "landmarks"):
        if not hasattr(phantom, attribute):
            raise CochleaAIError(f"The phantom has no '{attribute}'; build it with cochleaai.phantom.")
    if not isinstance(phantom.ct, Volume):
        raise CochleaAIError("The phantom's 'ct' must be a Volume.")
    if not isinstance(phantom.landmarks, Markups):
        raise CochleaAIError("The phantom's 'landmarks' must be cochleaai.Markups.")
    check_segments(phantom.segments, phantom.ct.shape)      # refuse bad masks before touching the scene
    with _rollback(scene) as created:
        volume_node = volume_to_node(scene, phantom.ct, f"{prefix} CT")
        created.extend([volume_node, volume_node.GetDisplayNode()])
        segmentation_node = segmentation_from_masks(scene, phantom.segments, phantom.ct,
                                                    f"{prefix} segmentation",
                                                    reference_volume_node=volume_node)
        created.extend([segmentation_node, segmentation_node.GetDisplayNode()])
        landmarks = phantom.landmarks
        landmarks = Markups(landmarks.points, landmarks.labels, landmarks.kind,
                            f"{prefix} landmarks", landmarks.descriptions)
        landmarks_node = markups_from_points(scene, landmarks)
        created.extend([landmarks_node, landmarks_node.GetDisplayNode()])
    return {"volume": volume_node, "segmentation": segmentation_node, "landmarks": landmarks_node}


def put_in_folder(scene, nodes, folder_name: str, beside=None) -> int:
    """Group ``nodes`` in a new folder of the Data module's tree, next to ``beside`` (under its
    study when it came from DICOM, else under the scene); returns the folder's item ID (0
    when the scene has no subject hierarchy). Nodes that have no item yet (a headless scene)
    get one in the folder."""
    slicer = _slicer()
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(_check_scene(scene))
    if hierarchy is None:
        return 0
    parent = hierarchy.GetSceneItemID()
    item = hierarchy.GetItemByDataNode(beside) if beside is not None else 0
    if item:
        parent = hierarchy.GetItemParent(item) or parent
    folder = hierarchy.CreateFolderItem(parent, hierarchy.GenerateUniqueItemName(str(folder_name)))
    for node in nodes:
        if node is None:
            continue
        item = hierarchy.GetItemByDataNode(node)
        if item:
            hierarchy.SetItemParent(item, folder)
        else:
            hierarchy.CreateItem(folder, node)
    return folder


# --------------------------------------------------------------------------- saving

_SAVED_CLASSES = ("vtkMRMLVolumeNode", "vtkMRMLSegmentationNode", "vtkMRMLMarkupsNode",
                  "vtkMRMLModelNode", "vtkMRMLTableNode", "vtkMRMLTransformNode")


def _safe_file_stem(name: str) -> str:
    stem = re.sub(r"[^0-9A-Za-z._-]+", "_", str(name)).strip("._") or "node"
    return stem[:100]


def _has_data(node) -> bool:
    if node.IsA("vtkMRMLVolumeNode"):
        return node.GetImageData() is not None
    if node.IsA("vtkMRMLModelNode"):
        return node.GetPolyData() is not None
    return True


def save_scene(scene, folder, name: str = "scene") -> Path:
    """Write every data node (volumes, segmentations, markups, models, tables, transforms) and
    the ``.mrml`` scene file into ``folder``; returns the path of the ``.mrml`` file.

    Files get Slicer's default formats (.nrrd, .seg.nrrd, .mrk.json, .vtk, .tsv) and names
    from the node names; the scene refers to them by relative paths, so the folder can be
    moved and opened in Slicer (File > Load Scene).
    """
    scene = _check_scene(scene)
    folder = Path(folder).resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CochleaAIError(f"Cannot create '{folder}' ({exc}); choose a writable folder.") from exc
    used: set = set()
    failures = []
    seen = set()
    for class_name in _SAVED_CLASSES:
        nodes = scene.GetNodesByClass(class_name)
        for i in range(nodes.GetNumberOfItems()):
            node = nodes.GetItemAsObject(i)
            if node.GetID() in seen or not node.GetSaveWithScene() or not _has_data(node):
                continue
            seen.add(node.GetID())
            storage = node.GetStorageNode()
            if storage is None:
                if not node.AddDefaultStorageNode():
                    continue
                storage = node.GetStorageNode()
                if storage is None:
                    continue
            extension = storage.GetDefaultWriteFileExtension() or "nrrd"
            stem = _safe_file_stem(node.GetName())
            candidate, n = stem, 1
            while f"{candidate}.{extension}".lower() in used:
                n += 1
                candidate = f"{stem}_{n}"
            filename = f"{candidate}.{extension}"
            used.add(filename.lower())
            storage.SetFileName(str(folder / filename))
            if not storage.WriteData(node):
                failures.append(f"{node.GetName()} -> {filename}")
    if failures:
        raise CochleaAIError("Could not write " + "; ".join(failures)
                             + ". Check that the folder is writable and the disk not full.")
    mrml_path = folder / f"{_safe_file_stem(name)}.mrml"
    scene.SetRootDirectory(str(folder))
    scene.SetURL(str(mrml_path))
    if not scene.Commit():
        raise CochleaAIError(f"Could not write the scene file '{mrml_path}'.")
    return mrml_path


# --------------------------------------------------------------------------- sequences

def _ensure_sequence_classes(scene) -> None:
    slicer = _slicer()
    for class_name, tag in (("vtkMRMLSequenceNode", "Sequence"),
                            ("vtkMRMLSequenceBrowserNode", "SequenceBrowser")):
        if not scene.GetClassNameByTag(tag) and hasattr(slicer, class_name):
            scene.RegisterNodeClass(getattr(slicer, class_name)())


def sequence_from_volumes(scene, volumes: Sequence[Volume], name: str,
                          index_name: str = "frame") -> Dict[str, object]:
    """A playable volume sequence: a sequence node holding one volume per frame, a sequence
    browser (play it with the Sequences toolbar) and the proxy volume node it shows.

    Returns ``{"sequence", "browser", "proxy"}``. The frames are copies; on error the scene is
    left as it was.
    """
    slicer = _slicer()
    scene = _check_scene(scene)
    volumes = list(volumes)
    if len(volumes) < 1:
        raise CochleaAIError("A sequence needs at least one volume.")
    for v in volumes:
        _voxel_array_for_mrml(v, labelmap=False)           # refuse bad frames before any change
    _ensure_sequence_classes(scene)
    with _rollback(scene) as created:
        sequence = scene.AddNewNodeByClass("vtkMRMLSequenceNode", f"{name} sequence")
        if sequence is None:
            raise CochleaAIError("This MRML build has no sequence nodes; update Slicer.")
        created.append(sequence)
        sequence.SetIndexName(index_name)
        sequence.SetIndexUnit("")
        sequence.SetIndexType(sequence.NumericIndex)
        for i, volume in enumerate(volumes):
            frame = volume_to_node(scene, volume, f"{name} frame {i}")
            try:
                sequence.SetDataNodeAtValue(frame, str(i))
            finally:
                scene.RemoveNode(frame)
        browser = scene.AddNewNodeByClass("vtkMRMLSequenceBrowserNode", f"{name} browser")
        created.append(browser)
        browser.SetAndObserveMasterSequenceNodeID(sequence.GetID())
        sequences_logic = slicer.vtkSlicerSequencesLogic()
        sequences_logic.SetMRMLScene(scene)
        before = set(node_ids(scene))
        sequences_logic.UpdateProxyNodesFromSequences(browser)
        created.extend(n for n in nodes_in(scene) if n.GetID() not in before)
        sequences_logic.SetMRMLScene(None)
        proxy = browser.GetProxyNode(sequence)
        if proxy is not None:
            proxy.SetName(name)
            if proxy.GetDisplayNode() is None:
                proxy.CreateDefaultDisplayNodes()
    return {"sequence": sequence, "browser": browser, "proxy": proxy}


def nodes_in(scene) -> list:
    """Every node now in ``scene``."""
    return [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]


def node_ids(scene) -> List[str]:
    """IDs of all nodes now in ``scene`` (a snapshot to find or remove what a job added)."""
    return [n.GetID() for n in nodes_in(scene) if n is not None]
