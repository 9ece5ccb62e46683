"""Sequence nodes: a playable series of volumes."""
from __future__ import annotations

from typing import Dict, Sequence

from cochleaai.errors import CochleaAIError
from cochleaai.slicer.mrml.scene import check_scene, node_ids, nodes_in, rollback, slicer_module
from cochleaai.slicer.mrml.volumes import volume_to_node, voxel_array_for_mrml
from cochleaai.volume import Volume

# --------------------------------------------------------------------------- sequences

def _ensure_sequence_classes(scene) -> None:
    slicer = slicer_module()
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
    slicer = slicer_module()
    scene = check_scene(scene)
    volumes = list(volumes)
    if len(volumes) < 1:
        raise CochleaAIError("A sequence needs at least one volume.")
    for v in volumes:
        voxel_array_for_mrml(v, labelmap=False)           # refuse bad frames before any change
    _ensure_sequence_classes(scene)
    with rollback(scene) as created:
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

