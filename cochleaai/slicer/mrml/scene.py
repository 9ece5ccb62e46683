"""The MRML scene: the ``slicer`` package, a headless scene set up like Slicer's, the
conventions every node-making adapter follows (rollback, placing a node, reusing a node),
folders of the Data module, saving a scene and listing its nodes."""
from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

from cochleaai.errors import CochleaAIError


def slicer_module():
    """The ``slicer`` package (Slicer's, or slicer-core's MRML), or a CochleaAIError saying how to get it."""
    try:
        import slicer  # noqa: F401  lazy: only inside Slicer or with slicer-core installed
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


def ensure_converter_rules() -> None:
    """Register the segmentation representation converters if nobody did (headless MRML)."""
    slicer = slicer_module()
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    present = {rule.GetClassName() for rule in factory.GetConverterRules()}
    for class_name in _CONVERTER_RULES:
        if class_name not in present and hasattr(slicer, class_name):
            factory.RegisterConverterRule(getattr(slicer, class_name)())


def prepare_scene(scene):
    """Register what the adapters need in ``scene`` if missing (idempotent, cheap).

    Inside Slicer everything is already registered and nothing happens. Returns ``scene``.
    """
    slicer = slicer_module()
    if scene is None:
        raise CochleaAIError("No MRML scene given.")
    for class_name in _NODE_CLASSES:
        if not scene.IsNodeClassRegistered(class_name) and hasattr(slicer, class_name):
            scene.RegisterNodeClass(getattr(slicer, class_name)())
    ensure_converter_rules()
    return scene


def new_scene():
    """A headless ``vtkMRMLScene`` set up like the Slicer application's.

    Creates the application logic with the default colour tables and the Segmentations and
    Markups module logics (kept alive as the scene's ``_cochleaai_logics`` attribute), and
    registers the converter rules and storage node classes. Use it in batch scripts and
    tests; inside Slicer use ``slicer.mrmlScene``.
    """
    slicer = slicer_module()
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
def rollback(scene) -> Iterator[list]:
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


def check_scene(scene):
    """``scene`` prepared for the adapters, or a CochleaAIError when it is not a scene."""
    if scene is None or not hasattr(scene, "AddNode"):
        raise CochleaAIError("A vtkMRMLScene is required (slicer.mrmlScene inside Slicer, "
                             "cochleaai.slicer.mrml.new_scene() outside).")
    return prepare_scene(scene)


def place_node(scene, node, name: str, created: list, display: bool = True):
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


def check_reuse(node, class_name: str, what: str):
    """Refuse a ``node=`` argument of the wrong class before anything changes."""
    if node is not None and not node.IsA(class_name):
        raise CochleaAIError(f"Cannot store a {what} in '{node.GetName()}' ({node.GetClassName()}); "
                             f"pass a {class_name} or no node.")


def is_one_of(node, others) -> bool:
    """Whether ``node`` is one of ``others`` (the same object or the same scene ID)."""
    if node is None:
        return False
    node_id = node.GetID()
    return any(other is node or (node_id and other is not None and other.GetID() == node_id) for other in others)


def check_not_an_input(output_node, inputs, what: str = "output") -> None:
    """Refuse an output node that is one of the job's input nodes: a result never replaces
    what it was computed from."""
    if is_one_of(output_node, inputs):
        raise CochleaAIError(f"The {what} node '{output_node.GetName()}' is also an input of this job; "
                             "choose another node for the result, or none to make a new one.")


def put_in_folder(scene, nodes, folder_name: str, beside=None) -> int:
    """Group ``nodes`` in a new folder of the Data module's tree, next to ``beside`` (under its
    study when it came from DICOM, else under the scene); returns the folder's item ID (0
    when the scene has no subject hierarchy). Nodes that have no item yet (a headless scene)
    get one in the folder."""
    slicer = slicer_module()
    hierarchy = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(check_scene(scene))
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
    scene = check_scene(scene)
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



def nodes_in(scene) -> list:
    """Every node now in ``scene``."""
    return [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]


def node_ids(scene) -> List[str]:
    """IDs of all nodes now in ``scene`` (a snapshot to find or remove what a job added)."""
    return [n.GetID() for n in nodes_in(scene) if n is not None]
