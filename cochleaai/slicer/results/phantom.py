"""A phantom as MRML nodes: its CT volume, its segmentation and its landmarks (the phantom
button of every module, the demo scene and the tests)."""
from __future__ import annotations

from typing import Dict

from cochleaai.errors import CochleaAIError
from cochleaai.io import check_segments
from cochleaai.markups import Markups
from cochleaai.slicer import mrml
from cochleaai.slicer.mrml.scene import rollback
from cochleaai.volume import Volume


def add_phantom_to_scene(scene, phantom, prefix: str = "Phantom") -> Dict[str, object]:
    """Show a phantom: its CT volume, its segmentation (referencing the CT) and its landmarks.

    ``phantom`` needs ``ct`` (Volume), ``segments`` (list of (Segment, mask)), ``landmarks``
    (Markups); ``truth`` is not shown. Nodes are named "<prefix> CT", "<prefix> segmentation"
    and "<prefix> landmarks". Returns ``{"volume", "segmentation", "landmarks"}`` nodes.
    """
    scene = mrml.check_scene(scene)
    for attribute in ("ct", "segments", "landmarks"):
        if not hasattr(phantom, attribute):
            raise CochleaAIError(f"The phantom has no '{attribute}'; build it with cochleaai.phantom.")
    if not isinstance(phantom.ct, Volume):
        raise CochleaAIError("The phantom's 'ct' must be a Volume.")
    if not isinstance(phantom.landmarks, Markups):
        raise CochleaAIError("The phantom's 'landmarks' must be cochleaai.Markups.")
    check_segments(phantom.segments, phantom.ct.shape)      # refuse bad masks before touching the scene
    with rollback(scene) as created:
        volume_node = mrml.volume_to_node(scene, phantom.ct, f"{prefix} CT")
        created.extend([volume_node, volume_node.GetDisplayNode()])
        segmentation_node = mrml.segmentation_from_masks(scene, phantom.segments, phantom.ct,
                                                         f"{prefix} segmentation",
                                                         reference_volume_node=volume_node)
        created.extend([segmentation_node, segmentation_node.GetDisplayNode()])
        landmarks = phantom.landmarks
        landmarks = Markups(landmarks.points, landmarks.labels, landmarks.kind,
                            f"{prefix} landmarks", landmarks.descriptions)
        landmarks_node = mrml.markups_from_points(scene, landmarks)
        created.extend([landmarks_node, landmarks_node.GetDisplayNode()])
    return {"volume": volume_node, "segmentation": segmentation_node, "landmarks": landmarks_node}
