"""Fixtures shared by the Metal Artifact Reduction tests (Logic and widget)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def phantom_scene():
    """A new MRML scene (slicer-core) with a ROI phantom (seed 1) made by the module's Logic:
    ``(scene, logic, phantom)``, the phantom as ``generate_phantom`` gives it. One per test
    module (its implant simulations are made on it); cleared after the module."""
    pytest.importorskip("slicer", reason="slicer-core (real MRML) is not installed")
    from MetalArtifactReductionLib.logic import MetalArtifactReductionLogic  # the test module put it on sys.path

    from cochleaai.slicer import mrml

    scene = mrml.new_scene()
    logic = MetalArtifactReductionLogic()
    phantom = logic.generate_phantom(scene, seed=1, fov="roi")
    yield scene, logic, phantom
    scene.Clear(1)
