"""The shared widget helpers (cochleaai.slicer_widgets) driven with stand-in Qt widgets.

Slicer's Qt is not available to pytest, so small fakes play the progress bar, buttons,
spin box, combo box and the few ``slicer`` functions the helpers call. This checks the
helpers' own behaviour (progress, Cancel, error display, re-entrancy, parameter node),
not Qt.
"""
from __future__ import annotations

import sys
import types

import pytest

from cochleaai import CochleaAIError

from cochleaai.slicer_logic import FIELDS_OF_VIEW
from cochleaai.slicer_widgets import JobRunner, PhantomPanel


class FakeWidget:
    def __init__(self, enabled=True):
        self.enabled = enabled
        self.text = ""
        self._slots = {}

    def connect(self, signal, slot):
        self._slots.setdefault(signal, []).append(slot)

    def emit(self, signal, *args):
        for slot in self._slots.get(signal, []):
            slot(*args)


class FakeProgressBar(FakeWidget):
    def setRange(self, low, high):
        self.range = (low, high)

    def setValue(self, value):
        self.value = value


class FakeSpinBox(FakeWidget):
    value = 0

    def setRange(self, low, high):
        self.range = (low, high)


class FakeComboBox(FakeWidget):
    def __init__(self):
        super().__init__()
        self.items, self.currentIndex = [], -1

    def clear(self):
        self.items, self.currentIndex = [], -1

    def addItem(self, label, data):
        self.items.append((label, data))
        if self.currentIndex < 0:
            self.currentIndex = 0

    def itemData(self, index):
        return self.items[index][1] if 0 <= index < len(self.items) else None

    def findData(self, data):
        return next((i for i, (_, d) in enumerate(self.items) if d == data), -1)


class FakeSelector(FakeWidget):
    current = None

    def setCurrentNode(self, node):
        self.current = node
        self.emit("currentNodeChanged(vtkMRMLNode*)", node)


class FakeParameterNode:
    def __init__(self):
        self.values = {}

    def GetParameter(self, name):
        return self.values.get(name, "")

    def SetParameter(self, name, value):
        self.values[name] = value


@pytest.fixture
def fake_slicer(monkeypatch):
    calls = {"errors": [], "layers": [], "events": 0}
    module = types.ModuleType("slicer")
    module.mrmlScene = object()

    def process_events():
        calls["events"] += 1

    module.app = types.SimpleNamespace(processEvents=process_events, layoutManager=lambda: None)
    module.util = types.SimpleNamespace(
        errorDisplay=lambda text, **kw: calls["errors"].append((text, kw)),
        setSliceViewerLayers=lambda **kw: calls["layers"].append(kw))
    monkeypatch.setitem(sys.modules, "slicer", module)
    return calls


@pytest.fixture
def runner():
    busy_before = FakeWidget(enabled=False)  # disabled for another reason: must stay so
    return JobRunner(FakeProgressBar(), FakeWidget(), FakeWidget(), busyWidgets=[FakeWidget(), busy_before])


def test_successful_run_reports_and_restores_widgets(runner, fake_slicer):
    seen = []

    def job(x, progress):
        seen.append((runner.cancelButton.enabled, [w.enabled for w in runner.busyWidgets]))
        progress(0.5, "half way")
        seen.append((runner.progressBar.value, runner.statusLabel.text))
        return x * 2

    assert runner.run("Double", job, 21) == 42
    assert seen[0] == (True, [False, False])
    assert seen[1] == (500, "half way")
    assert [w.enabled for w in runner.busyWidgets] == [True, False]
    assert not runner.cancelButton.enabled and not runner.running
    assert runner.progressBar.value == runner.progressBar.range[1]
    assert "done" in runner.statusLabel.text
    assert fake_slicer["events"] >= 1 and not fake_slicer["errors"]


def test_cancel_button_stops_the_job(runner, fake_slicer):
    steps = []

    def job(progress):
        for k in range(10):
            progress(k / 10, f"step {k}")
            steps.append(k)
            if k == 2:
                runner.cancelButton.emit("clicked(bool)", False)
        return "finished"

    assert runner.run("Long job", job) is None
    assert steps == [0, 1, 2]
    assert "cancelled" in runner.statusLabel.text
    assert not fake_slicer["errors"]
    assert [w.enabled for w in runner.busyWidgets] == [True, False]


def test_user_error_is_displayed(runner, fake_slicer):
    def job(progress):
        raise CochleaAIError("Select a CT volume first.")

    assert runner.run("Segment", job) is None
    (text, kwargs), = fake_slicer["errors"]
    assert "Select a CT volume first." in text and "detailedText" not in kwargs
    assert "failed" in runner.statusLabel.text


def test_unexpected_error_shows_the_traceback(runner, fake_slicer):
    def job(progress):
        raise ZeroDivisionError("boom")

    assert runner.run("Segment", job) is None
    (text, kwargs), = fake_slicer["errors"]
    assert "boom" in text and "ZeroDivisionError" in kwargs["detailedText"]
    assert not runner.running


def test_a_second_job_cannot_start_while_one_runs(runner, fake_slicer):
    inner = []

    def job(progress):
        inner.append(runner.run("Nested", lambda progress: "nested"))
        return "outer"

    assert runner.run("Outer", job) == "outer"
    assert inner == [None]


def test_cancel_between_jobs_does_nothing(runner, fake_slicer):
    runner.requestCancel()
    assert runner.run("Quick", lambda progress: progress(1.0) or "ok") == "ok"


class FakeLogic:
    def __init__(self):
        self.parameterNode = FakeParameterNode()
        self.calls = []

    def getParameterNode(self):
        return self.parameterNode

    def generate_phantom(self, scene, seed, fov, progress=None):
        self.calls.append((scene, seed, fov))
        progress(1.0, "ready")
        return {"volume": "volume-node", "segmentation": None, "landmarks": "points"}


def _panel(runner):
    logic = FakeLogic()
    panel = PhantomPanel(logic, runner, FakeSpinBox(), FakeComboBox(), FakeWidget(), FakeSelector())
    return logic, panel


def test_phantom_panel_generates_and_shows_the_volume(runner, fake_slicer):
    logic, panel = _panel(runner)
    assert [d for _, d in panel.fieldOfViewComboBox.items] == list(FIELDS_OF_VIEW)
    assert panel.generateButton in runner.busyWidgets
    panel.seedSpinBox.value = 12
    panel.fieldOfViewComboBox.currentIndex = panel.fieldOfViewComboBox.findData("temporal")
    panel.generateButton.emit("clicked(bool)", False)
    assert logic.calls == [(sys.modules["slicer"].mrmlScene, 12, "temporal")]
    assert panel.volumeSelector.current == "volume-node"
    assert fake_slicer["layers"] == [{"background": "volume-node", "fit": True}]
    assert "seed 12" in runner.statusLabel.text


def test_phantom_panel_keeps_values_in_the_parameter_node(runner, fake_slicer):
    logic, panel = _panel(runner)
    panel.seedSpinBox.value = 9
    panel.seedSpinBox.emit("valueChanged(int)", 9)
    assert logic.parameterNode.values[PhantomPanel.SEED_PARAMETER] == "9"
    logic.parameterNode.values.update({PhantomPanel.SEED_PARAMETER: "33",
                                       PhantomPanel.FOV_PARAMETER: "temporal"})
    panel.restore()
    assert panel.seed == 33 and panel.fieldOfView == "temporal"
    logic.parameterNode.values[PhantomPanel.SEED_PARAMETER] = "not a number"
    panel.restore()  # ignored, and the widget's value is written back
    assert logic.parameterNode.values[PhantomPanel.SEED_PARAMETER] == "33"
