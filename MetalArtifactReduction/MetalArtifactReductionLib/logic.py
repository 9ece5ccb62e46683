"""MetalArtifactReductionLogic: MRML nodes in, MRML nodes out.

No ``qt``, ``ctk``, ``slicer.app`` or ``slicer.modules`` here: this runs inside Slicer and
headless on ``slicer-core`` (the tests run it on a real ``vtkMRMLScene``).

Available now (inherited from ``CochleaAIModuleLogic``):
    ``generate_phantom(scene, seed, fov="roi", progress=None) -> {"volume", "segmentation", "landmarks"}``
To come: artifact reduction of a post-operative CT volume node (MARGAN inference).
"""
from cochleaai.slicer_logic import CochleaAIModuleLogic


class MetalArtifactReductionLogic(CochleaAIModuleLogic):
    """Logic of the Metal Artifact Reduction module."""
