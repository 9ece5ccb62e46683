"""Scalar and labelmap volume nodes <-> :class:`~cochleaai.volume.Volume`, and the VTK
matrix and image helpers the other adapters share (LPS <-> RAS by flipping x and y)."""
from __future__ import annotations

import numpy as np
import vtk
from vtk.util import numpy_support

from cochleaai.errors import CochleaAIError
from cochleaai.slicer.mrml.scene import check_reuse, check_scene, place_node, rollback, slicer_module
from cochleaai.volume import Volume, lps_to_ras, ras_to_lps

#: IJK-to-RAS = FLIP_XY @ IJK-to-LPS (and back: the flip is its own inverse).
FLIP_XY = np.diag([-1.0, -1.0, 1.0, 1.0])


# --------------------------------------------------------------------------- matrices

def ijk_to_ras_matrix(volume: Volume) -> np.ndarray:
    """The 4x4 IJK-to-RAS matrix MRML uses for ``volume`` (LPS index-to-physical, x/y flipped)."""
    return FLIP_XY @ volume.index_to_physical_matrix


def vtk_matrix(array: np.ndarray):
    """A ``vtkMatrix4x4`` holding a 4x4 numpy array."""
    m = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            m.SetElement(r, c, float(array[r, c]))
    return m


def numpy_matrix(m) -> np.ndarray:
    """A 4x4 numpy array of a ``vtkMatrix4x4``."""
    return np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])


def image_data(array: np.ndarray, oriented: bool = False):
    """A deep-copied ``vtkImageData`` (or ``vtkOrientedImageData``) of a (z, y, x) array."""
    if oriented:
        image = slicer_module().vtkOrientedImageData()
    else:
        image = vtk.vtkImageData()
    nz, ny, nx = array.shape
    image.SetDimensions(nx, ny, nz)
    flat = np.ascontiguousarray(array).reshape(-1)           # x fastest, as VTK stores voxels
    scalars = numpy_support.numpy_to_vtk(flat, deep=True)
    scalars.SetName("ImageScalars")
    image.GetPointData().SetScalars(scalars)
    return image


def image_array(image) -> np.ndarray:
    """A (z, y, x) copy of a single-component ``vtkImageData``'s voxels."""
    nx, ny, nz = image.GetDimensions()
    scalars = image.GetPointData().GetScalars()
    return numpy_support.vtk_to_numpy(scalars).reshape(nz, ny, nx).copy()


# --------------------------------------------------------------------------- volumes

def voxel_array_for_mrml(volume: Volume, labelmap: bool) -> np.ndarray:
    """The voxels of ``volume`` as MRML stores them (labelmaps as integers); refuses a bad volume."""
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
    slicer = slicer_module()
    scene = check_scene(scene)
    class_name = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    check_reuse(node, "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLVolumeNode", "volume")
    if node is not None and not node.IsA("vtkMRMLScalarVolumeNode"):
        raise CochleaAIError(f"'{node.GetName()}' is a {node.GetClassName()}; pass a scalar volume node.")
    arr = voxel_array_for_mrml(volume, labelmap)
    image = image_data(arr)
    ras_dirs = (np.diag([-1.0, -1.0, 1.0]) @ volume.direction)
    ras_origin = lps_to_ras(volume.origin)
    with rollback(scene) as created:
        if node is None:
            node = getattr(slicer, class_name)()
        node.SetAndObserveImageData(image)
        node.SetSpacing(*(float(s) for s in volume.spacing))
        node.SetOrigin(*(float(o) for o in ras_origin))
        node.SetIJKToRASDirections(*(float(v) for v in ras_dirs.reshape(-1)))
        place_node(scene, node, name, created)
    return node


def node_to_volume(node) -> Volume:
    """A Volume (LPS, voxels copied) from a scalar volume node.

    A linear parent transform is applied to the geometry; a non-linear one must be hardened first.
    """
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
    arr = image_array(image)

    directions = vtk.vtkMatrix4x4()
    node.GetIJKToRASDirectionMatrix(directions)
    ras_dirs = numpy_matrix(directions)[:3, :3]
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
        m = numpy_matrix(to_world) @ m
        spacing = np.linalg.norm(m[:3, :3], axis=0)
        ras_dirs = m[:3, :3] / spacing
        ras_origin = m[:3, 3]
    direction = np.diag([-1.0, -1.0, 1.0]) @ ras_dirs
    return Volume(arr, spacing, ras_to_lps(ras_origin), direction)

