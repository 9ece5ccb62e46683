"""Points named as they are clicked: the Place buttons of CochleaShapeSegmentation (centre,
apex, round window) and OneShotLandmarks (the reference landmarks), on a real MRML scene
(slicer-core) with stand-in Qt widgets; a "click in a view" is played by setting the next
unplaced point's position, as Slicer's place mode does."""
from __future__ import annotations

import json

import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
for _folder in (ROOT / "CochleaShapeSegmentation", ROOT / "OneShotLandmarks"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

slicer = pytest.importorskip("slicer", reason="slicer-core (real MRML) is not installed")

from cochleaai.slicer import mrml  # noqa: E402
from cochleaai.slicer.gui.jobs import JobRunner  # noqa: E402
from cochleaai.slicer.gui.panels import PointPlacer  # noqa: E402
from cochleaai.volume import Volume  # noqa: E402
from qt_stand_ins import NodeSelector, PlaceWidget, Widget  # noqa: E402


def _click_in_a_view(node, ras):
    index = node.GetControlPointPlacementStartIndex()
    for i in range(index, node.GetNumberOfControlPoints()):     # the next point still to place
        if node.GetNthControlPointPositionStatus(i) == node.PositionUndefined:
            node.SetNthControlPointPosition(i, *ras)
            return node.GetNthControlPointLabel(i)
    return None


@pytest.fixture
def placing(scene, monkeypatch):
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    monkeypatch.setattr(slicer, "app", types.SimpleNamespace(processEvents=lambda: None), raising=False)
    errors = []
    monkeypatch.setattr(slicer, "util", types.SimpleNamespace(
        errorDisplay=lambda text, **kw: errors.append(text)), raising=False)
    runner = JobRunner(Widget(), Widget(), Widget())
    volume = mrml.volume_to_node(scene, Volume(np.zeros((4, 4, 4), np.int16), (1.0, 1.0, 1.0)), "Ear CT")
    return scene, runner, volume, errors


def test_cochlea_points_are_named_as_clicked(placing):
    from CochleaShapeSegmentationLib.logic import CochleaShapeSegmentationLogic
    scene, runner, volume, errors = placing
    logic = CochleaShapeSegmentationLogic()
    button, selector, place = Widget(), NodeSelector(), PlaceWidget()
    PointPlacer(runner, button, selector, place, lambda node: logic.points_node(scene, volume, node))
    assert place.mrmlScene is scene and button in runner.busyWidgets

    button.emit("clicked(bool)", False)
    node = selector.currentNode()
    assert node.GetName() == "Ear CT cochlea points" and place.node is node and place.placeModeEnabled
    assert "center, apex, round window" in runner.statusLabel.text
    assert [_click_in_a_view(node, p) for p in ([1, 2, 3], [4, 5, 6])] == ["center", "apex"]
    points = mrml.points_from_markups(node)
    assert points.labels == ["center", "apex"]        # the round window is not placed: not read
    np.testing.assert_allclose(points.points[1], [-4.0, -5.0, 6.0])          # RAS -> LPS

    button.emit("clicked(bool)", False)               # again: the same list, the rest to place
    assert selector.currentNode() is node and node.GetNumberOfControlPoints() == 3
    assert runner.statusLabel.text.endswith("round window.")
    assert _click_in_a_view(node, [7, 8, 9]) == "round window" and _click_in_a_view(node, [0, 0, 0]) is None
    button.emit("clicked(bool)", False)
    assert "All points are placed" in runner.statusLabel.text and errors == []


def test_reference_landmarks_are_named_as_clicked(placing):
    from OneShotLandmarksLib.logic import REFERENCE_LANDMARK_NAMES, OneShotLandmarksLogic
    from cochleaai.landmarks.model_io import default_model_path
    from cochleaai.phantom.core import make_phantom

    # the points a user clicks are those of the shipped model; the phantom's are the first three
    card = json.loads(default_model_path().with_suffix(".json").read_text())
    assert REFERENCE_LANDMARK_NAMES == tuple(card["reference"]["landmark_labels"])
    assert set(make_phantom(1, fov="roi").landmarks.labels) == set(REFERENCE_LANDMARK_NAMES[:3])
    scene, runner, volume, errors = placing
    logic = OneShotLandmarksLogic()
    button, selector, place = Widget(), NodeSelector(), PlaceWidget()
    PointPlacer(runner, button, selector, place,
                lambda node: logic.reference_landmarks_node(scene, volume, node))
    button.emit("clicked(bool)", False)
    node = selector.currentNode()
    assert node.GetName() == "Ear CT landmarks"
    assert [_click_in_a_view(node, [k, 0, 0]) for k in range(5)] == list(REFERENCE_LANDMARK_NAMES)

    selector.setCurrentNode(mrml.table_from_dict(scene, {"a": [1.0]}, "not points"))
    button.emit("clicked(bool)", False)               # refused, shown like a failed job
    assert errors and "not a point list" in errors[-1]
