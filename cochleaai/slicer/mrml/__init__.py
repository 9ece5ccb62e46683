"""MRML nodes <-> CochleaAI core types (Volume, masks, Markups, tables, surfaces).

The only package of ``cochleaai`` that talks to Slicer. It needs just MRML, which Slicer
provides and the ``slicer-core`` pip package provides headless (no Qt); ``slicer`` is imported
inside the functions (:func:`.scene.slicer_module`) so that ``import cochleaai.slicer.mrml``
works without it. One file per kind of node: :mod:`.scene` (set-up, rollback, folders,
saving), :mod:`.volumes`, :mod:`.segmentations`, :mod:`.markups`, :mod:`.tables`,
:mod:`.models`, :mod:`.sequences`; everything public is re-exported here.

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

from cochleaai.slicer.mrml.markups import markups_from_points, named_point_list, points_from_markups, roi_index_box
from cochleaai.slicer.mrml.models import model_from_polydata, polydata_from_model
from cochleaai.slicer.mrml.scene import (check_not_an_input, check_scene, is_one_of, new_scene, node_ids, nodes_in,
                                         prepare_scene, put_in_folder, save_scene)
from cochleaai.slicer.mrml.segmentations import (masks_from_segmentation, segment_tag, segmentation_from_masks,
                                                 segmentation_reference_geometry)
from cochleaai.slicer.mrml.sequences import sequence_from_volumes
from cochleaai.slicer.mrml.tables import table_from_dict, table_to_dict
from cochleaai.slicer.mrml.volumes import ijk_to_ras_matrix, node_to_volume, volume_to_node

__all__ = [
    "new_scene", "prepare_scene", "check_scene", "ijk_to_ras_matrix",
    "volume_to_node", "node_to_volume",
    "segmentation_from_masks", "masks_from_segmentation", "segmentation_reference_geometry", "segment_tag",
    "markups_from_points", "points_from_markups", "named_point_list", "roi_index_box",
    "table_from_dict", "table_to_dict",
    "model_from_polydata", "polydata_from_model",
    "sequence_from_volumes", "save_scene", "put_in_folder", "nodes_in", "node_ids", "check_not_an_input", "is_one_of",
]
