"""The shared widget helpers (cochleaai.slicer.gui.jobs and .panels) driven with stand-in Qt widgets.

Slicer's Qt is not available to pytest, so small fakes play the progress bar, buttons,
spin box, combo box and the few ``slicer`` functions the helpers call. This checks the
helpers' own behaviour (progress, Cancel, error display, re-entrancy, parameter node,
one job slot for all modules), not Qt; jobs in a worker process are tested in test_worker_jobs.py.
"""
from __future__ import annotations

import sys
import threading
import types

import pytest

from cochleaai import CochleaAIError

from cochleaai.slicer.gui.jobs import JobRunner
from cochleaai.slicer.gui.panels import FieldOfView, PhantomPanel
from qt_stand_ins import ComboBox, NodeSelector, Widget


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
    busy_before = Widget(enabled=False)  # disabled for another reason: must stay so
    return JobRunner(Widget(), Widget(), Widget(), busyWidgets=[Widget(), busy_before])


def test_successful_run_reports_and_restores_widgets(runner, fake_slicer):
    seen = []

    def job(x, progress):
        seen.append((runner.cancelButton.enabled, [w.enabled for w in runner.busyWidgets]))
        progress(0.5, "half way")
        seen.append((runner.progressBar.value, runner.statusLabel.text))
        return x * 2

    assert runner.run("Double", job, 21) == 42
    assert seen[0] == (True, [False, False])
    assert seen[1][0] == 500 and seen[1][1].startswith("half way (")
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
    """The phantom's two parts: the core function a worker runs, and the nodes made here."""

    def __init__(self):
        self.calls = []

    @staticmethod
    def phantom_function(seed, fov="roi", progress=None):
        return f"phantom {seed} {fov}"

    def add_phantom(self, scene, phantom, seed, fov, progress=None):
        self.calls.append((scene, phantom, seed, fov))
        progress(1.0, "ready")
        return {"volume": "volume-node", "segmentation": None, "landmarks": "points"}


def _panel(runner):
    logic = FakeLogic()
    parameters = types.SimpleNamespace(phantomSeed=1, phantomFieldOfView=FieldOfView.roi)
    made = []

    def make_logic():           # the Logic is made on first use, after the dependency check
        made.append(logic)
        return logic

    panel = PhantomPanel(make_logic, runner, lambda: parameters, Widget(), (Widget(), ComboBox()), NodeSelector())
    return logic, parameters, panel, made


def test_phantom_panel_generates_and_shows_the_volume(runner, fake_slicer, monkeypatch):
    jobs = []

    def in_this_process(description, function, args=(), kwargs=None, finish=None, share=1.0):
        jobs.append((description, function, args, kwargs))
        return runner.run(description, lambda progress: finish(function(*args, **kwargs)))

    monkeypatch.setattr(runner, "runInProcess", in_this_process)
    logic, parameters, panel, made = _panel(runner)
    assert panel.generateButton in runner.busyWidgets and len(runner.busyWidgets) == 5
    assert made == []
    parameters.phantomSeed, parameters.phantomFieldOfView = 12, FieldOfView.temporal
    panel.generateButton.emit("clicked(bool)", False)
    assert jobs == [("Generate phantom", FakeLogic.phantom_function, (12,), {"fov": "temporal"})]
    assert logic.calls == [(sys.modules["slicer"].mrmlScene, "phantom 12 temporal", 12, "temporal")]
    assert made == [logic]
    assert panel.volumeSelector.current == "volume-node"
    assert fake_slicer["layers"] == [{"background": "volume-node", "fit": True}]
    assert "seed 12" in runner.statusLabel.text


# ------------------------------------------------------------------ scene and quit
class FakeScene:
    """Plays slicer.mrmlScene's observer calls: the runner watches it for a scene close."""

    StartCloseEvent = 100

    def __init__(self):
        self.observers = {}

    def AddObserver(self, event, callback):
        tag = len(self.observers) + 1
        self.observers[tag] = (event, callback)
        return tag

    def RemoveObserver(self, tag):
        del self.observers[tag]

    def close(self):
        for event, callback in list(self.observers.values()):
            if event == self.StartCloseEvent:
                callback(self, "StartCloseEvent")


def test_show_failure_reports_refused_inputs(runner, fake_slicer):
    try:
        raise CochleaAIError("No input volume selected; choose the CT volume to segment.")
    except CochleaAIError as error:
        runner.showFailure("Segment", error)
    (text, kwargs), = fake_slicer["errors"]
    assert "No input volume selected" in text and "detailedText" not in kwargs
    assert "failed" in runner.statusLabel.text and not runner.running


# ------------------------------------------------------------------ one job at a time, everywhere
def test_one_job_at_a_time_across_modules(runner, fake_slicer):
    other = JobRunner(Widget(), Widget(), Widget())     # another module's runner
    inside = {}

    def job(progress):
        inside["run"] = other.run("Other job", lambda progress: "ran")
        inside["ready"] = other.ready()
        inside["status"] = other.statusLabel.text
        return "first"

    assert runner.run("Segment cochlea", job) == "first"
    assert inside["run"] is None and inside["ready"] is False
    assert "Segment cochlea is running" in inside["status"]
    assert other.run("Other job", lambda progress: "ran") == "ran"      # free again afterwards


def test_closing_the_scene_cancels_a_gui_thread_job(runner, fake_slicer, monkeypatch):
    scene = FakeScene()
    monkeypatch.setattr(sys.modules["slicer"], "mrmlScene", scene)
    steps = []

    def job(progress):
        for k in range(5):
            progress(k / 5)
            steps.append(k)
            if k == 1:
                scene.close()
        return "stale"

    assert runner.run("Generate phantom", job) is None
    assert steps == [0, 1] and not scene.observers
    assert "scene was closed" in runner.statusLabel.text


@pytest.mark.parametrize("signal", ["aboutToQuit()", "lastWindowClosed()"])
def test_quitting_slicer_cancels_the_job(runner, fake_slicer, monkeypatch, signal):
    slots = {}
    app = sys.modules["slicer"].app
    monkeypatch.setattr(app, "connect", lambda s, slot: slots.setdefault(s, []).append(slot), raising=False)
    monkeypatch.setattr(app, "disconnect", lambda s, slot: slots[s].remove(slot), raising=False)
    quit_now = threading.Event()

    def job(progress):
        progress(0.1)
        for slot in list(slots[signal]):    # Slicer is closing while the job runs
            slot()
        quit_now.set()
        progress(0.2)
        return "too late"

    assert runner.run("Train", job) is None
    assert quit_now.is_set() and "Slicer is closing" in runner.statusLabel.text
    assert all(not connected for connected in slots.values())       # disconnected again
    assert runner.run("Train", job) is None and "Slicer is closing" in runner.statusLabel.text


class FakeDependencies:
    def __init__(self, outcome):
        self.outcome, self.calls, self.message = outcome, 0, "Nothing was installed."

    def ensure(self):
        self.calls += 1
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def test_guarded_actions_run_only_after_the_dependency_check(fake_slicer):
    ran = []
    for outcome, expected in ((True, ["ran"]), (False, []), (CochleaAIError("Install the PyTorch extension."), [])):
        ran.clear()
        runner = JobRunner(Widget(), Widget(), Widget(), dependencies=FakeDependencies(outcome))
        button = Widget()
        button.connect("clicked(bool)", runner.guard(lambda checked: ran.append("ran")))
        button.emit("clicked(bool)", False)
        assert ran == expected and runner.dependencies.calls == 1
    assert runner.statusLabel.text.endswith("failed.")
    assert "Install the PyTorch extension." in fake_slicer["errors"][-1][0]
    declined = JobRunner(Widget(), Widget(), Widget(), dependencies=FakeDependencies(False))
    assert not declined.ready() and declined.statusLabel.text == "Nothing was installed."


@pytest.mark.parametrize("agreed", [True, False])
def test_show_table_asks_before_switching_to_a_layout_with_a_table_view(fake_slicer, monkeypatch, agreed):
    from cochleaai.slicer.gui.panels import show_table

    slicer = sys.modules["slicer"]
    seen = []
    layout = types.SimpleNamespace(tableWidget=lambda index: None, setLayout=seen.append)
    selection = types.SimpleNamespace(SetActiveTableID=seen.append)
    monkeypatch.setattr(slicer.app, "layoutManager", lambda: layout)
    monkeypatch.setattr(slicer.app, "applicationLogic", lambda: types.SimpleNamespace(
        GetSelectionNode=lambda: selection, PropagateTableSelection=lambda: seen.append("shown")),
        raising=False)
    monkeypatch.setattr(slicer, "vtkMRMLLayoutNode", types.SimpleNamespace(SlicerLayoutFourUpTableView=42),
                        raising=False)
    monkeypatch.setattr(slicer.util, "confirmYesNoDisplay", lambda text, **kw: seen.append(
        ("asked", kw.get("dontShowAgainSettingsKey"))) or agreed, raising=False)
    show_table(types.SimpleNamespace(GetID=lambda: "vtkMRMLTableNode1", GetName=lambda: "Measures"))
    asked = ("asked", "CochleaAI/SwitchToTableLayout")
    assert seen == ([asked, 42, "vtkMRMLTableNode1", "shown"] if agreed else
                    [asked, "vtkMRMLTableNode1", "shown"])


def test_work_outside_a_runner_holds_the_same_job_slot(runner, fake_slicer):
    """The Sample Data module's phantom runs outside any module's runner: it takes the slot
    too, so it never runs beside a job, and no job starts beside it."""
    from cochleaai.slicer.gui.jobs import job_slot

    inside = {}

    def job(progress):
        with pytest.raises(CochleaAIError, match="Segment cochlea is running"):
            with job_slot("Phantom from Sample Data"):
                inside["ran"] = True
        return "done"

    assert runner.run("Segment cochlea", job) == "done" and "ran" not in inside
    with job_slot("Phantom from Sample Data"):
        assert not runner.ready() and "Phantom from Sample Data is running" in runner.statusLabel.text
        assert runner.run("Segment cochlea", lambda progress: "ran") is None
    assert runner.run("Segment cochlea", lambda progress: "ran") == "ran"      # released
