"""Long jobs in their own process: the ``run-job`` command and the runner that starts it.

The runner is driven as the module widgets drive it, with stand-in Qt widgets and a stand-in
``slicer.app``; the process is started by Slicer's own ``slicer.util.launchConsoleProcess``
(slicer-core's ``util.py``). The jobs are :func:`cochleaai.worker.check_worker` (progress,
log lines, a result or the failure asked for) and a real segmentation. Cancel to idle, the
longest gap between two turns of the event loop and a worker killed by a signal are measured
here; the figures are printed and recorded (``record_property``).
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from cochleaai import worker
from cochleaai.errors import EXIT_USER_ERROR, CochleaAIError
from cochleaai.progress import parse_progress_line
from cochleaai.slicer.gui.jobs import JobRunner
from qt_stand_ins import PlainTextEdit, Widget
from slicer_stand_in import ProcessEnvironment, slicer_core_util

ROOT = Path(__file__).resolve().parents[2]
REAL_UTIL = slicer_core_util()
pytestmark = pytest.mark.skipif(REAL_UTIL is None, reason="slicer-core (Slicer's util.py) is not installed")
pytest.importorskip("torch", reason="the worker is the command line, which imports the methods (they need torch)")


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cochleaai", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=300)


# ------------------------------------------------------------------ the command
def test_run_job_writes_the_result_and_reports_progress_as_json_lines(tmp_path):
    worker.write_job(tmp_path, worker.check_worker, 4)
    done = _cli("--progress", "json", "run-job", str(tmp_path), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    reports = [parse_progress_line(line) for line in done.stderr.splitlines()]
    fractions = [r[0] for r in reports if r is not None]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert "worker check: step 4 of 4" in done.stdout
    result = pickle.loads((tmp_path / worker.RESULT_FILE).read_bytes())
    assert result["steps"] == 4 and result["pid"] != os.getpid()
    assert not (tmp_path / worker.ERROR_FILE).exists()


def test_other_commands_report_json_progress_too(tmp_path):
    done = _cli("--progress", "json", "phantom", "--seed", "1", "--out", str(tmp_path / "p"))
    assert done.returncode == 0, done.stderr
    reports = [parse_progress_line(line) for line in done.stderr.splitlines() if line.strip()]
    assert reports and all(r is not None for r in reports) and reports[-1][0] == 1.0


def test_run_job_refuses_a_function_outside_the_core(tmp_path):
    job = {"function": "os:system", "args": ["echo owned"], "kwargs": {}}
    (tmp_path / worker.JOB_FILE).write_bytes(pickle.dumps(job))
    done = _cli("run-job", str(tmp_path))
    assert done.returncode == EXIT_USER_ERROR and "owned" not in done.stdout
    error = json.loads((tmp_path / worker.ERROR_FILE).read_text())
    assert error["kind"] == "user" and "only run a function of the CochleaAI core" in error["message"]
    with pytest.raises(CochleaAIError, match="CochleaAI core"):
        worker.write_job(tmp_path, "cochleaai.slicer.logic:generate_phantom_nodes")


@pytest.mark.parametrize("fail, kind, status", [("user", "user", EXIT_USER_ERROR), ("bug", "bug", 1)])
def test_run_job_writes_what_went_wrong(tmp_path, fail, kind, status):
    worker.write_job(tmp_path, worker.check_worker, 1, fail=fail)
    done = _cli("run-job", str(tmp_path))
    assert done.returncode == status
    error = json.loads((tmp_path / worker.ERROR_FILE).read_text())
    assert error["kind"] == kind and not (tmp_path / worker.RESULT_FILE).exists()
    if kind == "bug":
        assert "RuntimeError" in error["details"] and "check_worker" in error["details"]


def test_a_gpu_request_without_a_gpu_is_refused_in_words(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    worker.write_job(tmp_path, worker.check_worker, 1)
    done = _cli("run-job", str(tmp_path), "--device", "gpu")
    assert done.returncode == EXIT_USER_ERROR
    assert "No GPU" in json.loads((tmp_path / worker.ERROR_FILE).read_text())["message"]


# ------------------------------------------------------------------ the runner
@pytest.fixture
def fake_slicer(monkeypatch):
    """``slicer`` as the runner sees it: the event loop (its turns timed), error dialogs, and
    Slicer's own process launcher."""
    calls = {"errors": [], "turns": [], "on_turn": None}
    real = sys.modules.get("slicer")       # slicer-core's MRML, when a test made a real scene
    module = types.ModuleType("slicer")
    module.mrmlScene = object()
    if real is not None:
        module.__getattr__ = lambda name: getattr(real, name)

    def process_events():
        calls["turns"].append(time.perf_counter())
        if calls["on_turn"] is not None:
            calls["on_turn"]()

    startup = ProcessEnvironment(os.environ)
    module.app = types.SimpleNamespace(processEvents=process_events, layoutManager=lambda: None,
                                       startupEnvironment=lambda: startup)
    module.util = types.SimpleNamespace(
        errorDisplay=lambda text, **kw: calls["errors"].append((text, kw)),
        launchConsoleProcess=REAL_UTIL.launchConsoleProcess, startupEnvironment=REAL_UTIL.startupEnvironment)
    monkeypatch.setitem(sys.modules, "slicer", module)
    return calls


@pytest.fixture
def runner():
    return JobRunner(Widget(), Widget(), Widget(), busyWidgets=[Widget()], logBox=PlainTextEdit())


def _alive(pid) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_job_runs_in_another_process_and_finishes_here(runner, fake_slicer):
    seen = {}

    def finish(result):
        seen["finish"] = (result, runner.running, [w.enabled for w in runner.busyWidgets])
        return "nodes"

    assert runner.runInProcess("Check", worker.check_worker, (3,), {"seconds": 0.05}, finish=finish) == "nodes"
    result, running, busy = seen["finish"]
    assert result["steps"] == 3 and result["pid"] != os.getpid() and running and busy == [False]
    assert not _alive(result["pid"]) and runner.worker is None
    assert "worker check: step 3 of 3" in runner.logBox.toPlainText()
    assert "done in" in runner.statusLabel.text and runner.progressBar.value == runner.progressBar.range[1]
    assert [w.enabled for w in runner.busyWidgets] == [True] and not fake_slicer["errors"]


def test_cancel_kills_the_worker_at_once(runner, fake_slicer, record_property):
    timing = {}

    def click_when_running():
        if runner.worker is not None and runner.worker.pid and "step" in runner.statusLabel.text \
                and "clicked" not in timing:
            timing["clicked"], timing["pid"] = time.perf_counter(), runner.worker.pid
            timing["folder"] = runner.worker.folder
            runner.cancelButton.emit("clicked(bool)", False)

    fake_slicer["on_turn"] = click_when_running
    finished = []
    assert runner.runInProcess("Long job", worker.check_worker, (100,), {"seconds": 0.2},
                               finish=finished.append) is None
    idle = time.perf_counter() - timing["clicked"]
    record_property("cancel_to_idle_s", round(idle, 3))
    print(f"\nCancel to idle: {idle * 1000:.0f} ms")
    assert idle < 1.0
    assert finished == [] and not runner.running and not _alive(timing["pid"])
    assert not timing["folder"].exists()
    assert "cancelled" in runner.statusLabel.text and not fake_slicer["errors"]


def test_a_worker_killed_by_a_signal_is_an_error_and_slicer_goes_on(runner, fake_slicer, record_property):
    killed = {}

    def kill_when_running():
        if runner.worker is not None and "step" in runner.statusLabel.text and "pid" not in killed:
            killed["pid"] = runner.worker.pid
            os.kill(killed["pid"], signal.SIGKILL)

    fake_slicer["on_turn"] = kill_when_running
    finished = []
    assert runner.runInProcess("Segment cochlea", worker.check_worker, (100,), {"seconds": 0.2},
                               finish=finished.append) is None
    (text, kwargs), = fake_slicer["errors"]
    assert "stopped unexpectedly (SIGKILL)" in text and "scene" in text
    assert finished == [] and "failed" in runner.statusLabel.text and not runner.running
    # a crash inside the worker (it aborts): the same, and the next job runs
    fake_slicer["on_turn"] = None
    assert runner.runInProcess("Crash", worker.check_worker, (1,), {"fail": "crash"}) is None
    assert "SIGABRT" in fake_slicer["errors"][-1][0]
    assert runner.runInProcess("Again", worker.check_worker, (1,))["steps"] == 1


def test_errors_in_the_worker_are_displayed(runner, fake_slicer):
    assert runner.runInProcess("Segment", worker.check_worker, (1,), {"fail": "user"}) is None
    text, kwargs = fake_slicer["errors"][0]
    assert "asked to fail with a user error" in text and "detailedText" not in kwargs
    assert runner.runInProcess("Segment", worker.check_worker, (1,), {"fail": "bug"}) is None
    text, kwargs = fake_slicer["errors"][1]
    assert "asked to fail with a bug" in text and "RuntimeError" in kwargs["detailedText"]


def test_apply_reads_cancel_while_its_job_runs(runner, fake_slicer):
    apply = Widget(text="Segment cochlea")
    runner.busyWidgets.append(apply)
    seen = {}

    def click_apply_when_running():
        if runner.worker is not None and "step" in runner.statusLabel.text and "text" not in seen:
            seen["text"], seen["enabled"] = apply.text, apply.enabled
            apply.emit("clicked(bool)", False)      # the same button, now Cancel

    def action(*_unused):
        seen["result"] = runner.runInProcess("Segment cochlea", worker.check_worker, (100,), {"seconds": 0.2})

    apply.connect("clicked(bool)", runner.guard(action, apply))
    fake_slicer["on_turn"] = click_apply_when_running
    apply.emit("clicked(bool)", False)
    assert seen["text"] == "Cancel" and seen["enabled"]
    assert seen["result"] is None and "cancelled" in runner.statusLabel.text
    assert apply.text == "Segment cochlea" and apply.enabled


def test_the_event_loop_keeps_turning_during_a_segmentation(runner, fake_slicer, record_property):
    """A real segmentation of a small phantom, as the module runs it."""
    from cochleaai.phantom.core import make_phantom
    from cochleaai.segmentation.config import SegmentConfig
    from cochleaai.segmentation.pipeline import segment

    phantom = make_phantom(2, fov="roi")
    settings = SegmentConfig(outer_iterations=3, samples=10)
    start = time.perf_counter()
    result = runner.runInProcess("Segment cochlea", segment, (phantom.ct, {}, settings))
    end = time.perf_counter()
    assert result is not None and result.sroi.array.any(), fake_slicer["errors"]
    edges = [start, *fake_slicer["turns"], end]
    longest = max(b - a for a, b in zip(edges, edges[1:]))
    record_property("segmentation_seconds", round(end - start, 2))
    record_property("longest_event_loop_gap_s", round(longest, 3))
    print(f"\nsegmentation in a worker {end - start:.1f} s: {len(fake_slicer['turns'])} event-loop turns, "
          f"longest gap {longest * 1000:.0f} ms")
    assert longest < 0.5, "the GUI thread stopped turning the event loop"


def test_closing_the_scene_kills_the_worker_and_drops_its_result(runner, fake_slicer, monkeypatch):
    observers = {}
    scene = types.SimpleNamespace(StartCloseEvent=100, AddObserver=lambda event, callback: observers.setdefault(
        len(observers) + 1, (event, callback)) and len(observers), RemoveObserver=lambda tag: observers.pop(tag))
    monkeypatch.setattr(sys.modules["slicer"], "mrmlScene", scene)
    seen = {}

    def close_scene():
        if runner.worker is not None and "step" in runner.statusLabel.text and "pid" not in seen:
            seen["pid"] = runner.worker.pid
            for event, callback in list(observers.values()):
                callback(scene, event)

    fake_slicer["on_turn"] = close_scene
    finished = []
    assert runner.runInProcess("Train", worker.check_worker, (100,), {"seconds": 0.2},
                               finish=finished.append) is None
    assert finished == [] and not observers and not _alive(seen["pid"])
    assert "scene was closed" in runner.statusLabel.text and not fake_slicer["errors"]


def test_the_phantom_panel_job_builds_in_a_worker_and_adds_real_nodes(scene, runner, fake_slicer):
    from cochleaai.slicer.logic import CochleaAIModuleLogic, phantom_node_problems

    logic = CochleaAIModuleLogic()
    count = scene.GetNumberOfNodes()
    nodes = runner.runInProcess("Generate phantom", logic.phantom_function, (4,), {"fov": "roi"},
                                finish=lambda phantom: logic.add_phantom(scene, phantom, 4, "roi"))
    assert not fake_slicer["errors"] and phantom_node_problems(scene, nodes) == []
    assert scene.GetNumberOfNodes() > count and nodes["volume"].GetName().startswith("Phantom4_roi")
