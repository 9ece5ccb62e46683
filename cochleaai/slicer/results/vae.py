"""The MRML volume nodes the VAE tools write (the LangevinVAEExplorer Logic and the demo):
their names, and the node attribute recording the latent point a volume was decoded from."""
from __future__ import annotations

import numpy as np

from cochleaai.slicer import mrml

GENERATED_NAME = "Generated cochlea"
RECONSTRUCTION_NAME = "Reconstructed cochlea"
LATENT_MAP_NAME = "Latent map"
LATENT_ATTRIBUTE = "CochleaAI.LatentCoordinates"
#: Node attribute of a reconstruction: the share of the encoded volume it misses
#: (:func:`cochleaai.vae.explore.reconstruction_mismatch`).
MISMATCH_ATTRIBUTE = "CochleaAI.ReconstructionMismatch"


def put_volume(scene, volume, name: str, node=None, z=None, inputs=()):
    """Write ``volume`` into ``node``, or else into the scene's scalar volume node called
    ``name`` (reused, so that sliders regenerate one node), or else a new node; ``z``, when
    given, is recorded in :data:`LATENT_ATTRIBUTE`. Returns the node. ``inputs``: the job's
    input nodes, never written into (a node given as ``node`` is refused, one found by name
    is passed over)."""
    mrml.check_not_an_input(node, inputs)
    if node is None:
        node = scene.GetFirstNodeByName(name) if scene is not None else None
        if node is not None and (not node.IsA("vtkMRMLScalarVolumeNode") or mrml.is_one_of(node, inputs)):
            node = None
    node = mrml.volume_to_node(scene, volume, name, node=node)
    if z is not None:
        node.SetAttribute(LATENT_ATTRIBUTE, " ".join(f"{v:.5f}" for v in np.ravel(z)))
    return node
