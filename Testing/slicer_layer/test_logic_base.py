"""Every module's Logic on a real MRML scene (slicer-core), without Slicer's Qt.

The module folders hold the ``<Module>Lib`` packages, so they go on ``sys.path`` the way
Slicer puts a module's folder there. Some tests build a real phantom
(``cochleaai.phantom.core.make_phantom`` and ``cochleaai.slicer.results.phantom.add_phantom_to_scene``);
the rest use a small stand-in phantom so the shared Logic code is always exercised.
"""
from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("MetalArtifactReduction", "CochleaShapeSegmentation", "LangevinVAEExplorer",
           "OneShotLandmarks")
for _folder in [ROOT] + [ROOT / m for m in MODULES]:
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

slicer = pytest.importorskip("slicer", reason="slicer-core (real MRML) is not installed")
vtk = pytest.importorskip("vtk")

from cochleaai import CochleaAIError  # noqa: E402
from cochleaai.progress import Cancelled  # noqa: E402
from cochleaai.slicer import logic as slicer_logic  # noqa: E402


@pytest.fixture
def mrml_scene(request):
    """The shared ``scene`` fixture of conftest.py when there is one, else a fresh scene."""
    try:
        shared = request.getfixturevalue("scene")
    except pytest.FixtureLookupError:
        shared = None
    if shared is not None:
        yield shared
        return
    try:  # set up like Slicer's scene when the MRML bridge offers it
        from cochleaai.slicer.mrml import new_scene
        scene = new_scene()
    except ImportError:
        scene = slicer.vtkMRMLScene()
    yield scene
    scene.Clear(1)


def logic_class(module: str):
    return getattr(importlib.import_module(f"{module}Lib.logic"), f"{module}Logic")


# ---------------------------------------------------------------- stand-in phantom
def _fake_add_phantom_to_scene(scene, phantom, prefix="Phantom", fail_after_volume=False):
    """Make the three nodes the real ``add_phantom_to_scene`` returns, from tiny data."""
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"{prefix}_CT")
    image = vtk.vtkImageData()
    image.SetDimensions(*phantom.shape[::-1])
    image.AllocateScalars(vtk.VTK_SHORT, 1)
    volume.SetAndObserveImageData(image)
    if fail_after_volume:
        raise RuntimeError("simulated failure half way through")
    segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{prefix}_labels")
    segment = slicer.vtkSegment()
    segment.SetName("Cochlea")
    labels = slicer.vtkOrientedImageData()
    labels.SetDimensions(*phantom.shape[::-1])
    labels.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    segment.AddRepresentation("Binary labelmap", labels)
    segmentation.GetSegmentation().AddSegment(segment)
    landmarks = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", f"{prefix}_landmarks")
    landmarks.AddControlPoint(vtk.vtkVector3d(1.0, 2.0, 3.0), "apex")
    return {"volume": volume, "segmentation": segmentation, "landmarks": landmarks}


@pytest.fixture
def stand_in_phantom(monkeypatch):
    """Replace cochleaai.phantom / cochleaai.slicer.mrml by stand-ins; returns a dict of knobs and calls."""
    state = {"calls": [], "fail_after_volume": False}

    def make_phantom(seed, fov="roi", progress=None):
        state["calls"].append((seed, fov))
        for k in range(5):
            if progress is not None:
                progress(k / 4, f"step {k}")
        return np.zeros((4, 5, 6), dtype=np.int16)

    def add_phantom_to_scene(scene, phantom, prefix="Phantom"):
        return _fake_add_phantom_to_scene(scene, phantom, prefix, state["fail_after_volume"])

    # the shared Logic imports both at its top: replace them where it looks them up
    monkeypatch.setattr(slicer_logic, "make_phantom", make_phantom)
    monkeypatch.setattr(slicer_logic, "add_phantom_to_scene", add_phantom_to_scene)
    return state


# --------------------------------------------------------------------------- tests
@pytest.mark.parametrize("module", MODULES)
def test_logic_imports_and_runs_headless(module):
    cls = logic_class(module)
    logic = cls()
    assert isinstance(logic, slicer_logic.CochleaAIModuleLogic)
    assert callable(logic.generate_phantom)
    assert not cls.in_slicer  # slicer-core has no ScriptedLoadableModule


@pytest.mark.parametrize("fov, seed", [("ear", 1), ("", 1), ("roi", -1), ("roi", 2.5),
                                       ("roi", "seven"), ("roi", True), ("roi", 2**31)])
def test_bad_requests_are_refused_before_touching_the_scene(mrml_scene, fov, seed):
    logic = logic_class("CochleaShapeSegmentation")()
    count = mrml_scene.GetNumberOfNodes()
    with pytest.raises(CochleaAIError):
        logic.generate_phantom(mrml_scene, seed=seed, fov=fov)
    assert mrml_scene.GetNumberOfNodes() == count


@pytest.mark.parametrize("seed", [0, 7, 3.0, np.int64(5), 2**31 - 1, 2**31, -1, 2.5, True, "7", " 8 ", "a",
                                  "2.0", None, [1]])
def test_the_logic_uses_the_phantoms_seed_rule(seed):
    """One rule: the phantom's, with typed text ("7") read first; the largest seed is the
    spin box's 2**31 - 1, also for make_phantom."""
    from cochleaai.phantom import core, options

    def outcome(check, *args):
        try:
            return check(*args)
        except CochleaAIError as error:
            return str(error)

    assert outcome(slicer_logic.check_seed, seed) == outcome(options.check_seed, seed, True)
    if not isinstance(seed, str):
        assert outcome(options.check_seed, seed) == outcome(options.check_seed, seed, True)
    with pytest.raises(CochleaAIError, match="seed"):
        core.drawn_theta(2**31, "roi")


@pytest.mark.parametrize("fov", ["roi", "Temporal", "TEMPORAL", " roi", "roi ", "ear", "", 3, None])
def test_the_logic_uses_the_phantoms_field_of_view_rule(fov):
    from cochleaai.phantom import options

    def outcome(check):
        try:
            return check(fov)
        except CochleaAIError as error:
            return str(error)

    assert outcome(slicer_logic.check_field_of_view) == outcome(options.check_field_of_view)
    assert set(slicer_logic.FIELDS_OF_VIEW) == set(options.FOVS)        # a menu label for each


def test_no_scene_is_refused():
    with pytest.raises(CochleaAIError):
        logic_class("OneShotLandmarks")().generate_phantom(None, seed=1)


@pytest.mark.parametrize("module", MODULES)
def test_shared_phantom_flow_with_stand_in(module, mrml_scene, stand_in_phantom):
    reports = []
    nodes = logic_class(module)().generate_phantom(mrml_scene, seed="7", fov="Temporal",
                                                   progress=lambda f, m: reports.append((f, m)))
    assert stand_in_phantom["calls"] == [(7, "temporal")]
    assert slicer_logic.phantom_node_problems(mrml_scene, nodes) == []
    for node in nodes.values():
        assert node.GetAttribute(slicer_logic.SEED_ATTRIBUTE) == "7"
        assert node.GetAttribute(slicer_logic.FOV_ATTRIBUTE) == "temporal"
        assert node.GetName().startswith("Phantom7_temporal")
    fractions = [f for f, _ in reports]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0


def test_cancel_while_adding_nodes_leaves_scene_as_it_was(mrml_scene, stand_in_phantom):
    logic = logic_class("MetalArtifactReduction")()
    mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "UserVolume")
    before = slicer_logic.node_ids(mrml_scene)

    def cancel_at_the_end(fraction, message):
        if fraction >= 1.0:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        logic.generate_phantom(mrml_scene, seed=2, progress=cancel_at_the_end)
    assert slicer_logic.node_ids(mrml_scene) == before


def test_failure_half_way_leaves_scene_as_it_was(mrml_scene, stand_in_phantom):
    stand_in_phantom["fail_after_volume"] = True
    before = slicer_logic.node_ids(mrml_scene)
    with pytest.raises(RuntimeError, match="half way"):
        logic_class("LangevinVAEExplorer")().generate_phantom(mrml_scene, seed=3)
    assert slicer_logic.node_ids(mrml_scene) == before


def test_scene_unchanged_on_failure_removes_only_what_the_block_added(mrml_scene):
    mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "UserVolume")
    before = slicer_logic.node_ids(mrml_scene)
    with pytest.raises(Cancelled):
        with slicer_logic.scene_unchanged_on_failure(mrml_scene):
            mrml_scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "Result")
            mrml_scene.AddNewNodeByClass("vtkMRMLTableNode", "Result table")
            raise Cancelled("stop")
    assert slicer_logic.node_ids(mrml_scene) == before
    with slicer_logic.scene_unchanged_on_failure(mrml_scene):
        kept = mrml_scene.AddNewNodeByClass("vtkMRMLTableNode", "Kept")
    assert mrml_scene.IsNodePresent(kept) and len(slicer_logic.node_ids(mrml_scene)) == len(before) + 1


def test_slicer_self_test_checks_pass_with_stand_in(mrml_scene, stand_in_phantom):
    problems = slicer_logic.self_test_phantom_logic(logic_class("OneShotLandmarks")(), mrml_scene)
    assert problems == []


def test_small_phantom_through_the_real_mrml_bridge(monkeypatch):
    """Tiny phantom arrays, real ``add_phantom_to_scene`` and a scene set up like Slicer's."""
    from cochleaai import Volume
    from cochleaai.markups import Markups
    from cochleaai.segments import COCHLEA
    from cochleaai.slicer.mrml import new_scene

    def make_phantom(seed, fov="roi", progress=None):
        mask = np.zeros((8, 9, 10), dtype=bool)
        mask[2:5, 3:6, 4:8] = True
        progress(0.5, "half way")
        return types.SimpleNamespace(ct=Volume(np.where(mask, 1500, -1000).astype(np.int16), 0.2),
                                     segments=[(COCHLEA, mask)],
                                     landmarks=Markups(np.array([[0.5, 0.6, 0.7]]), name="landmarks"))

    monkeypatch.setattr(slicer_logic, "make_phantom", make_phantom)
    scene = new_scene()
    try:
        logic = logic_class("MetalArtifactReduction")()
        assert slicer_logic.self_test_phantom_logic(logic, scene) == []
        before = slicer_logic.node_ids(scene)
        with pytest.raises(Cancelled):
            logic.generate_phantom(scene, seed=4, progress=lambda f, m: _cancel_at(f, 1.0))
        assert slicer_logic.node_ids(scene) == before
    finally:
        scene.Clear(1)


def _cancel_at(fraction, limit):
    if fraction >= limit:
        raise Cancelled("stop")


# ---------------------------------------------------------- with the real phantom
@pytest.mark.parametrize("module", MODULES)
def test_generate_phantom_on_a_real_scene(module, mrml_scene):
    reports = []
    nodes = logic_class(module)().generate_phantom(mrml_scene, seed=5, fov="roi",
                                                   progress=lambda f, m: reports.append(f))
    assert set(slicer_logic.PHANTOM_ROLES) <= set(nodes)
    assert slicer_logic.phantom_node_problems(mrml_scene, nodes) == []
    assert reports and reports[-1] == 1.0
    assert all(0.0 <= f <= 1.0 for f in reports)
    assert nodes["volume"].GetAttribute(slicer_logic.SEED_ATTRIBUTE) == "5"


def test_real_phantom_self_test(mrml_scene):
    problems = slicer_logic.self_test_phantom_logic(logic_class("MetalArtifactReduction")(), mrml_scene)
    assert problems == []


def test_cancel_real_phantom_half_way(mrml_scene):
    count = mrml_scene.GetNumberOfNodes()
    calls = []

    def cancel_mid_build(fraction, message):
        calls.append(fraction)
        if fraction > 0.0:
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        logic_class("CochleaShapeSegmentation")().generate_phantom(mrml_scene, seed=1,
                                                                   progress=cancel_mid_build)
    assert mrml_scene.GetNumberOfNodes() == count
