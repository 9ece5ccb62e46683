"""The shared widget helpers (cochleaai.slicer.gui.jobs and .panels) driven with stand-in Qt widgets.

Slicer's Qt is not available to pytest, so small fakes play the progress bar, buttons,
spin box, combo box and the few ``slicer`` functions the helpers call. This checks the
helpers' own behaviour (progress, Cancel, error display, re-entrancy, parameter node,
background jobs on a real worker thread), not Qt.
"""
from __future__ import annotations

import sys
import threading
import time
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
        self.calls = []

    def generate_phantom(self, scene, seed, fov, progress=None):
        self.calls.append((scene, seed, fov))
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


def test_phantom_panel_generates_and_shows_the_volume(runner, fake_slicer):
    logic, parameters, panel, made = _panel(runner)
    assert panel.generateButton in runner.busyWidgets and len(runner.busyWidgets) == 5
    assert made == []
    parameters.phantomSeed, parameters.phantomFieldOfView = 12, FieldOfView.temporal
    panel.generateButton.emit("clicked(bool)", False)
    assert logic.calls == [(sys.modules["slicer"].mrmlScene, 12, "temporal")] and made == [logic]
    assert panel.volumeSelector.current == "volume-node"
    assert fake_slicer["layers"] == [{"background": "volume-node", "fit": True}]
    assert "seed 12" in runner.statusLabel.text


# ------------------------------------------------------------------ background jobs
WAIT = 10.0   # seconds; only reached when the code under test is broken


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


def _on_events(monkeypatch, action):
    """Make slicer.app.processEvents call ``action()`` (the user clicking, the scene closing)."""
    slicer = sys.modules["slicer"]
    process = slicer.app.processEvents

    def process_events():
        process()
        action()

    monkeypatch.setattr(slicer.app, "processEvents", process_events)


def test_background_job_computes_in_a_worker_and_finishes_here(runner, fake_slicer, monkeypatch):
    gui_thread = threading.get_ident()
    shown = threading.Event()
    seen = {}

    def watch():            # the GUI thread shows what the worker reported while it still runs
        if runner.progressBar.value == 250 and runner.statusLabel.text == "a quarter":
            shown.set()

    _on_events(monkeypatch, watch)

    def compute(progress):
        seen["compute"] = threading.get_ident()
        progress(0.25, "a quarter")
        seen["shown"] = shown.wait(WAIT)
        time.sleep(0.3)     # the GUI loop must wait for it, not spin
        return 21

    def finish(result):
        seen["finish"] = (threading.get_ident(), result, runner.running, runner.cancelButton.enabled,
                          [w.enabled for w in runner.busyWidgets])
        return result * 2

    started = time.monotonic()
    assert runner.runInBackground("Double", compute, finish) == 42
    elapsed = time.monotonic() - started
    assert seen["compute"] != gui_thread and seen["shown"]
    assert seen["finish"] == (gui_thread, 21, True, True, [False, False])
    # processEvents about every 50 ms while waiting, not in a tight loop
    assert 3 <= fake_slicer["events"] <= elapsed / 0.05 + 5
    assert [w.enabled for w in runner.busyWidgets] == [True, False]
    assert not runner.running and not runner.cancelButton.enabled
    assert runner.progressBar.value == runner.progressBar.range[1] and "done" in runner.statusLabel.text
    assert not fake_slicer["errors"]
    # without finish, the worker's result is returned
    assert runner.runInBackground("Plain", lambda progress: "value") == "value"


def test_cancel_stops_the_worker_at_its_next_report(runner, fake_slicer, monkeypatch):
    steps, finished = [], []
    clicked = threading.Event()

    def click_once_step_3_is_shown():
        if runner.progressBar.value == 300 and not clicked.is_set():
            runner.cancelButton.emit("clicked(bool)", False)
            clicked.set()

    _on_events(monkeypatch, click_once_step_3_is_shown)

    def compute(progress):
        for k in range(10):
            progress(k / 10, f"step {k}")
            steps.append(k)
            if k == 3:
                assert clicked.wait(WAIT)
        return "finished"

    assert runner.runInBackground("Long job", compute, finished.append) is None
    assert steps == [0, 1, 2, 3] and finished == []
    assert "cancelled" in runner.statusLabel.text and runner.progressBar.value == 0
    assert not fake_slicer["errors"] and not runner.running
    assert [w.enabled for w in runner.busyWidgets] == [True, False]
    # the next job is not cancelled by the previous one's click
    assert runner.runInBackground("Again", lambda progress: progress(1.0) or "ok") == "ok"


def test_a_result_is_dropped_when_cancel_comes_after_the_compute(runner, fake_slicer, monkeypatch):
    clicked, finished = threading.Event(), []

    def click():
        runner.requestCancel()
        clicked.set()

    _on_events(monkeypatch, click)

    def compute(progress):          # no report after the click: it ends normally
        assert clicked.wait(WAIT)
        return "result"

    assert runner.runInBackground("Job", compute, finished.append) is None
    assert finished == [] and "cancelled" in runner.statusLabel.text


def test_closing_the_scene_cancels_the_job(runner, fake_slicer, monkeypatch):
    scene = FakeScene()
    monkeypatch.setattr(sys.modules["slicer"], "mrmlScene", scene)
    closed, finished = threading.Event(), []

    def close_scene():
        if not closed.is_set():
            scene.close()
            closed.set()

    _on_events(monkeypatch, close_scene)

    def compute(progress):
        assert scene.observers                  # watched while the job runs
        assert closed.wait(WAIT)
        progress(0.5, "half way")
        return "stale"

    assert runner.runInBackground("Job", compute, finished.append) is None
    assert finished == [] and not scene.observers
    assert "scene was closed" in runner.statusLabel.text and not fake_slicer["errors"]


def test_errors_in_the_worker_are_displayed(runner, fake_slicer):
    def user_error(progress):
        progress(0.1)
        raise CochleaAIError("The point lies outside the image; move it.")

    finished = []
    assert runner.runInBackground("Segment", user_error, finished.append) is None
    (text, kwargs), = fake_slicer["errors"]
    assert "The point lies outside the image; move it." in text and "detailedText" not in kwargs
    assert "failed" in runner.statusLabel.text and finished == []

    def worker_bug(progress):
        return 1 / 0

    assert runner.runInBackground("Segment", worker_bug) is None
    text, kwargs = fake_slicer["errors"][1]
    assert "division by zero" in text
    assert "ZeroDivisionError" in kwargs["detailedText"] and "worker_bug" in kwargs["detailedText"]
    assert not runner.running and [w.enabled for w in runner.busyWidgets] == [True, False]


def test_errors_in_finish_are_displayed(runner, fake_slicer):
    def finish(result):
        raise CochleaAIError(f"The volume was removed ({result}).")

    assert runner.runInBackground("Segment", lambda progress: "r1", finish) is None
    (text, kwargs), = fake_slicer["errors"]
    assert "The volume was removed (r1)." in text and "failed" in runner.statusLabel.text


def test_a_second_job_cannot_start_while_a_background_job_runs(runner, fake_slicer, monkeypatch):
    attempts, ran = [], []

    def try_again():
        if not attempts:
            attempts.append(runner.runInBackground("Second", lambda progress: ran.append("second")))
            attempts.append(runner.run("Third", lambda progress: ran.append("third")))

    _on_events(monkeypatch, try_again)

    def compute(progress):
        time.sleep(0.2)             # long enough for the GUI loop to process events
        return "first"

    assert runner.runInBackground("First", compute) == "first"
    assert attempts == [None, None] and ran == []
    assert "First: done" in runner.statusLabel.text


def test_show_failure_reports_refused_inputs(runner, fake_slicer):
    try:
        raise CochleaAIError("No input volume selected; choose the CT volume to segment.")
    except CochleaAIError as error:
        runner.showFailure("Segment", error)
    (text, kwargs), = fake_slicer["errors"]
    assert "No input volume selected" in text and "detailedText" not in kwargs
    assert "failed" in runner.statusLabel.text and not runner.running


def test_an_error_in_the_event_loop_stops_the_worker(runner, fake_slicer, monkeypatch):
    from cochleaai.progress import Cancelled

    slicer = sys.modules["slicer"]
    process = slicer.app.processEvents
    go, stopped = threading.Event(), threading.Event()

    def broken():
        raise RuntimeError("event loop broke")

    monkeypatch.setattr(slicer.app, "processEvents", broken)

    def compute(progress):
        assert go.wait(WAIT)
        try:
            progress(0.5)
        except Cancelled:
            stopped.set()
            raise
        return "too late"

    with pytest.raises(RuntimeError, match="event loop broke"):
        runner.runInBackground("Job", compute)
    assert not runner.running and [w.enabled for w in runner.busyWidgets] == [True, False]
    monkeypatch.setattr(slicer.app, "processEvents", process)
    # the next job runs normally and does not revive the abandoned worker
    assert runner.runInBackground("Next", lambda progress: progress(1.0) or "next") == "next"
    go.set()
    assert stopped.wait(WAIT)


# ------------------------------------------------------------------ one job at a time, everywhere
def test_one_job_at_a_time_across_modules(runner, fake_slicer):
    other = JobRunner(Widget(), Widget(), Widget())     # another module's runner
    inside = {}

    def job(progress):
        inside["run"] = other.run("Other job", lambda progress: "ran")
        inside["background"] = other.runInBackground("Other job", lambda progress: "ran")
        inside["ready"] = other.ready()
        inside["status"] = other.statusLabel.text
        return "first"

    assert runner.run("Segment cochlea", job) == "first"
    assert inside["run"] is None and inside["background"] is None and inside["ready"] is False
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

    assert runner.runInBackground("Train", job) is None
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


def test_show_table_switches_to_a_layout_with_a_table_view(fake_slicer, monkeypatch):
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
    show_table(types.SimpleNamespace(GetID=lambda: "vtkMRMLTableNode1"))
    assert seen == [42, "vtkMRMLTableNode1", "shown"]
