"""OneShotLandmarksLogic: MRML nodes in, MRML nodes out.

No ``qt``, ``ctk``, ``slicer.app`` or ``slicer.modules`` here: this runs inside Slicer and
headless on ``slicer-core`` (the tests run it on a real ``vtkMRMLScene``).

Available now (inherited from ``CochleaAIModuleLogic``):
    ``generate_phantom(scene, seed, fov="roi", progress=None) -> {"volume", "segmentation", "landmarks"}``
To come: one-shot training from a reference volume with landmarks, and landmark detection
on a target volume node.
"""
from cochleaai.slicer_logic import CochleaAIModuleLogic


class OneShotLandmarksLogic(CochleaAIModuleLogic):
    """Logic of the One-Shot Landmarks module."""
