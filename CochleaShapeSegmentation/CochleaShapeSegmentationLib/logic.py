"""CochleaShapeSegmentationLogic: MRML nodes in, MRML nodes out.

No ``qt``, ``ctk``, ``slicer.app`` or ``slicer.modules`` here: this runs inside Slicer and
headless on ``slicer-core`` (the tests run it on a real ``vtkMRMLScene``).

Available now (inherited from ``CochleaAIModuleLogic``):
    ``generate_phantom(scene, seed, fov="roi", progress=None) -> {"volume", "segmentation", "landmarks"}``
To come: shape-model segmentation of a CT volume node into a segmentation node, with
parameter uncertainty.
"""
from cochleaai.slicer_logic import CochleaAIModuleLogic


class CochleaShapeSegmentationLogic(CochleaAIModuleLogic):
    """Logic of the Cochlea Shape Segmentation module."""
