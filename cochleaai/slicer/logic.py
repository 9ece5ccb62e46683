"""What the four module Logic classes share: MRML in, MRML out, no Qt.

This file sits in the Logic layer (see DESIGN.md). It may use MRML through
``cochleaai.slicer.mrml`` and, when it is there, Slicer's ``ScriptedLoadableModuleLogic``
base class; it never imports ``qt``, ``ctk``, ``slicer.app`` or ``slicer.modules``,
so every Logic built on it runs headless on ``slicer-core`` as well as inside Slicer.

Use::

    from cochleaai.slicer.logic import CochleaAIModuleLogic

    class MyModuleLogic(CochleaAIModuleLogic):
        ...                      # the module's own methods

    nodes = MyModuleLogic().generate_phantom(scene, seed=3, fov="roi", progress=cb)
    nodes["volume"], nodes["segmentation"], nodes["landmarks"]
"""
from __future__ import annotations

import contextlib
from typing import Any, Dict, List, Optional, Union

from cochleaai.errors import CochleaAIError
from cochleaai.phantom.core import make_phantom
from cochleaai.phantom.options import DEFAULT_SEED, FIELDS_OF_VIEW, MAX_SEED  # noqa: F401  (the panel's choices)
from cochleaai.phantom.options import check_field_of_view as phantom_check_field_of_view
from cochleaai.phantom.options import check_seed as phantom_check_seed
from cochleaai.progress import Cancelled, Progress, ProgressCallback
from cochleaai.slicer.mrml import node_ids, nodes_in
from cochleaai.slicer.results.phantom import add_phantom_to_scene

try:  # inside Slicer: the real base class (parameter node support, etc.)
    from slicer.ScriptedLoadableModule import ScriptedLoadableModuleLogic as _SlicerLogicBase  # only in Slicer
except ImportError:  # headless (slicer-core or no Slicer at all)
    _SlicerLogicBase = object

#: Keys of the dictionary returned by :func:`generate_phantom_nodes`.
PHANTOM_ROLES = ("volume", "segmentation", "landmarks")

#: Node attributes that record how a phantom node was made (the seed makes it reproducible).
SEED_ATTRIBUTE = "CochleaAI.PhantomSeed"
FOV_ATTRIBUTE = "CochleaAI.PhantomFieldOfView"

# Share of the progress bar spent building the phantom arrays; the rest is MRML work.
_BUILD_SHARE = 0.85


def check_seed(seed: Any) -> int:
    """Return ``seed`` as an int in [0, 2**31 - 1] or raise a :class:`CochleaAIError`; the
    phantom's own rule (:func:`cochleaai.phantom.options.check_seed`), text such as a stored
    parameter ("7") included."""
    return phantom_check_seed(seed, text=True)


def check_field_of_view(fov: Any) -> str:
    """Return the field-of-view key or raise a :class:`CochleaAIError` naming the choices
    (the phantom's own rule, :func:`cochleaai.phantom.options.check_field_of_view`)."""
    return phantom_check_field_of_view(fov)


def remove_nodes_added_since(scene, before_ids) -> None:
    """Remove every node whose ID is not in ``before_ids`` (newest first).

    Used to leave the scene as it was when a job fails or is cancelled half way.
    """
    before_ids = set(before_ids)
    added = [n for n in nodes_in(scene) if n is not None and n.GetID() not in before_ids]
    for node in reversed(added):
        if scene.IsNodePresent(node):
            scene.RemoveNode(node)


@contextlib.contextmanager
def scene_unchanged_on_failure(scene):
    """Run the block that adds result nodes; if it raises (Cancel included), the nodes it
    added are removed again before the exception propagates, so the scene is as it was."""
    before = node_ids(scene)
    try:
        yield
    except BaseException:
        remove_nodes_added_since(scene, before)
        raise


def generate_phantom_nodes(scene, seed: int = DEFAULT_SEED, fov: str = "roi",
                           progress: "Union[Progress, ProgressCallback, None]" = None,
                           prefix: Optional[str] = None) -> Dict[str, Any]:
    """Build a synthetic temporal-bone CT phantom and add it to ``scene``.

    Returns the new nodes by role: ``"volume"`` (scalar volume, HU), ``"segmentation"``
    (named segments) and ``"landmarks"`` (markups), as made by
    ``cochleaai.slicer.results.phantom.add_phantom_to_scene``. Each node records its seed and field of
    view as node attributes (:data:`SEED_ATTRIBUTE`, :data:`FOV_ATTRIBUTE`).

    ``progress(fraction, message)`` is called along the way; it may raise
    :class:`~cochleaai.progress.Cancelled` to stop. On cancellation or any error the
    scene is left exactly as it was (nodes added so far are removed) and the
    exception propagates. The same as :func:`make_phantom` (the part a worker process
    runs) and :func:`add_phantom_nodes` in a row.
    """
    if scene is None:
        raise CochleaAIError("No MRML scene was given to put the phantom in.")
    seed = check_seed(seed)
    fov = check_field_of_view(fov)
    report = Progress.wrap(progress)
    report(0.0, f"Building phantom (seed {seed}, {fov})")
    phantom = make_phantom(seed, fov=fov, progress=report.stage(0.0, _BUILD_SHARE))
    return add_phantom_nodes(scene, phantom, seed, fov, progress=report.stage(_BUILD_SHARE, 1.0), prefix=prefix)


def add_phantom_nodes(scene, phantom, seed: int, fov: str,
                      progress: "Union[Progress, ProgressCallback, None]" = None,
                      prefix: Optional[str] = None) -> Dict[str, Any]:
    """Add a phantom made by :func:`make_phantom` (``seed``, ``fov``) to ``scene``; returns the
    nodes by role (see :func:`generate_phantom_nodes`). On an error or Cancel the nodes added so
    far are removed again."""
    if scene is None:
        raise CochleaAIError("No MRML scene was given to put the phantom in.")
    if prefix is None:
        prefix = f"Phantom{seed}_{fov}"
    report = Progress.wrap(progress)
    report(0.0, "Adding the phantom to the scene")
    with scene_unchanged_on_failure(scene):
        nodes = dict(add_phantom_to_scene(scene, phantom, prefix=prefix))
        for node in nodes.values():
            if node is not None and hasattr(node, "SetAttribute"):
                node.SetAttribute(SEED_ATTRIBUTE, str(seed))
                node.SetAttribute(FOV_ATTRIBUTE, fov)
        report(1.0, "Phantom ready")
    return nodes


def phantom_node_problems(scene, nodes: Dict[str, Any]) -> List[str]:
    """Check what :func:`generate_phantom_nodes` returned; an empty list means all is well."""
    problems = []
    expected_class = {"volume": "vtkMRMLScalarVolumeNode",
                      "segmentation": "vtkMRMLSegmentationNode",
                      "landmarks": "vtkMRMLMarkupsNode"}
    for role in PHANTOM_ROLES:
        node = nodes.get(role) if isinstance(nodes, dict) else None
        if node is None:
            problems.append(f"no {role!r} node was returned")
            continue
        if not node.IsA(expected_class[role]):
            problems.append(f"the {role} node is a {node.GetClassName()}, not a {expected_class[role]}")
        elif not scene.IsNodePresent(node):
            problems.append(f"the {role} node is not in the scene")
        elif node.GetAttribute(SEED_ATTRIBUTE) is None:
            problems.append(f"the {role} node does not record its seed")
    if not problems:
        image = nodes["volume"].GetImageData()
        dims = image.GetDimensions() if image is not None else (0, 0, 0)
        if min(dims) < 2:
            problems.append(f"the phantom volume has no usable voxels (dimensions {dims})")
        segmentation = nodes["segmentation"].GetSegmentation()
        if segmentation is None or segmentation.GetNumberOfSegments() == 0:
            problems.append("the phantom segmentation has no segments")
        if nodes["landmarks"].GetNumberOfControlPoints() == 0:
            problems.append("the phantom landmarks node has no points")
    return problems


def self_test_phantom_logic(logic, scene, seed: int = DEFAULT_SEED, fov: str = "roi") -> List[str]:
    """The checks every module's Slicer self-test runs on its Logic; returns problems found.

    1. a bad field of view is refused with a :class:`CochleaAIError` and the scene is untouched;
    2. cancelling at the first progress report leaves the scene untouched;
    3. a real run adds the volume, segmentation and landmarks (see :func:`phantom_node_problems`).
    """
    problems = []
    count = scene.GetNumberOfNodes()
    try:
        logic.generate_phantom(scene, seed=seed, fov="not-a-field-of-view")
        problems.append("an unknown field of view was accepted")
    except CochleaAIError:
        pass
    if scene.GetNumberOfNodes() != count:
        problems.append("a refused request changed the scene")

    def cancel_now(fraction, message):
        raise Cancelled("test cancellation")

    try:
        logic.generate_phantom(scene, seed=seed, fov=fov, progress=cancel_now)
        problems.append("cancelling did not stop phantom generation")
    except Cancelled:
        pass
    if scene.GetNumberOfNodes() != count:
        problems.append("a cancelled run changed the scene")

    fractions = []
    nodes = logic.generate_phantom(scene, seed=seed, fov=fov,
                                   progress=lambda f, m: fractions.append(f))
    problems.extend(phantom_node_problems(scene, nodes))
    if not fractions or fractions[-1] != 1.0:
        problems.append("progress did not reach 1.0")
    return problems


class PhantomLogicMixin:
    """Gives a Logic class ``generate_phantom`` (see :func:`generate_phantom_nodes`), and the
    same in two parts for a worker process: ``phantom_function`` (the core function it runs)
    and ``add_phantom`` (the nodes)."""

    phantom_function = staticmethod(make_phantom)

    @staticmethod
    def add_phantom(scene, phantom, seed: int, fov: str, progress=None, prefix: Optional[str] = None):
        return add_phantom_nodes(scene, phantom, seed, fov, progress=progress, prefix=prefix)

    def generate_phantom(self, scene, seed: int = DEFAULT_SEED, fov: str = "roi",
                         progress: "Union[Progress, ProgressCallback, None]" = None,
                         prefix: Optional[str] = None) -> Dict[str, Any]:
        return generate_phantom_nodes(scene, seed, fov, progress=progress, prefix=prefix)


class CochleaAIModuleLogic(PhantomLogicMixin, _SlicerLogicBase):
    """Base of every CochleaAI module Logic.

    A ``ScriptedLoadableModuleLogic`` inside Slicer (so ``getParameterNode()`` works there),
    a plain object on ``slicer-core``. Methods take the scene explicitly, so tests can
    pass a fresh ``vtkMRMLScene`` and Slicer passes ``slicer.mrmlScene``.
    """

    #: True when the Slicer base class is in use (inside the Slicer application).
    in_slicer = _SlicerLogicBase is not object

    def __init__(self):
        if self.in_slicer:
            _SlicerLogicBase.__init__(self)
