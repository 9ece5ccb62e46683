"""The One-Shot Landmarks panel (stand-in Qt, real MRML from slicer-core): Train and Detect
read their nodes here, run a core function in a worker process (``JobRunner.runInProcess``)
with plain data and the models as files, and add the result nodes after; a refused input,
an error or Cancel leaves the scene as it was.

One test runs the real worker processes (tiny training case, a few seconds); the others play
the jobs in this process (``run_jobs_in_this_process``: the function found by its reference,
the arguments and the result through pickle, as to and from the worker)."""
from __future__ import annotations

import pickle
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
for _folder in (ROOT, ROOT / "OneShotLandmarks", ROOT / "Testing"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

slicer = pytest.importorskip("slicer", reason="slicer-core (real MRML) is not installed")
torch = pytest.importorskip("torch")

from landmark_cases import TINY, tiny_case  # noqa: E402
from module_widgets import build_widget  # noqa: E402
from slicer_stand_in import run_jobs_in_this_process  # noqa: E402

from cochleaai import io, worker  # noqa: E402
from cochleaai.errors import CochleaAIError  # noqa: E402
from cochleaai.landmarks import jobs  # noqa: E402
from cochleaai.landmarks.model_io import OneShotModel, phantom_model_path  # noqa: E402
from cochleaai.progress import Cancelled  # noqa: E402
from cochleaai.segments import COCHLEA  # noqa: E402
from cochleaai.slicer import mrml  # noqa: E402
from cochleaai.slicer.gui.jobs import JobRunner  # noqa: E402
from cochleaai.volume import Volume  # noqa: E402

MODULE = "OneShotLandmarks"


@pytest.fixture
def panel(monkeypatch, scene):
    """The module's widget set up on ``scene`` with its .ui file's stand-in widgets; what it
    showed (errors, tables) is recorded in ``panel.calls``."""
    return build_widget(monkeypatch, MODULE, scene)


def record_jobs(monkeypatch):
    """Every ``runInProcess`` call from now on, checked as the worker would take it (a core
    function, plain picklable arguments, no torch module among them), then run as it was
    going to (call it after ``run_jobs_in_this_process`` to play the jobs in this process)."""
    seen = []
    play = JobRunner.runInProcess

    def record(self, description, function, args=(), kwargs=None, finish=None, share=1.0):
        worker.function_reference(function)      # raises for a function outside the core
        pickle.dumps((tuple(args), dict(kwargs or {})))
        assert not any(isinstance(a, (torch.nn.Module, OneShotModel))
                       for a in _flat([*args, *(kwargs or {}).values()]))
        seen.append(types.SimpleNamespace(description=description, function=function, args=tuple(args),
                                          kwargs=dict(kwargs or {}), share=share))
        return play(self, description, function, args, kwargs, finish, share)

    monkeypatch.setattr(JobRunner, "runInProcess", record)
    return seen


def _flat(values):
    for value in values:
        if isinstance(value, (list, tuple)):
            yield from _flat(value)
        else:
            yield value


def _training_nodes(scene):
    ref, ref_mask, lm, val, val_mask = tiny_case()
    return {"referenceVolume": mrml.volume_to_node(scene, ref, "Reference"),
            "referenceSegmentation": mrml.segmentation_from_masks(scene, [(COCHLEA, ref_mask)], ref, "Reference seg"),
            "referenceLandmarks": mrml.markups_from_points(scene, lm),
            "validationVolume": mrml.volume_to_node(scene, val, "Validation"),
            "validationSegmentation": mrml.segmentation_from_masks(scene, [(COCHLEA, val_mask)], val,
                                                                   "Validation seg")}


def test_train_and_detect_run_core_functions_in_worker_processes(panel, monkeypatch):
    """The real worker: Train writes the model file (no save path: a file of the Logic's own)
    and Detect reads it there; the nodes are added here, the buttons read Cancel meanwhile."""
    jobs_seen = record_jobs(monkeypatch)
    widget, ui, scene = panel.widget, panel.ui, panel.scene
    nodes = _training_nodes(scene)
    for name, node in nodes.items():
        setattr(widget.parameters, name, node)
    monkeypatch.setattr(type(widget), "trainConfig", lambda self: TINY)   # seconds, not minutes
    widget.runner.threads = 1                       # tiny networks: one torch thread is fastest
    buttons = []        # (text, enabled) of Train and Detect while the job runs
    monkeypatch.setattr(slicer.app, "processEvents", lambda: buttons.append(
        (ui.trainButton.text, ui.trainButton.enabled, ui.detectButton.text, ui.detectButton.enabled)))
    count = scene.GetNumberOfNodes()

    ui.trainButton.emit("clicked(bool)", False)
    assert panel.calls.errors == []
    assert ui.statusLabel.text.startswith("Trained in ") and "Detect now uses this model." in ui.statusLabel.text
    assert scene.GetNumberOfNodes() == count                # training only reads the scene
    train = jobs_seen[-1]
    assert (train.description, train.function) == ("Train one-shot model", jobs.train_to_file)
    assert train.kwargs["record"]["data"]["reference"] == "Reference"
    path = Path(widget.logic.model_path)
    assert path == Path(train.kwargs["output_path"]) and path.is_file() and path.with_suffix(".json").is_file()
    assert widget.logic.model.labels == ["top", "knob"]
    assert buttons and set(buttons) == {("Cancel", True, "Detect landmarks", False)}
    assert (ui.trainButton.text, ui.trainButton.enabled) == ("Train", True)
    buttons.clear()

    ui.targetVolumesSelector.checked_nodes = [nodes["validationVolume"]]
    ui.detectButton.emit("clicked(bool)", False)
    assert panel.calls.errors == []
    detect = jobs_seen[-1]
    assert (detect.description, detect.function) == ("Detect landmarks", jobs.detect_volumes)
    assert detect.args[0] == [str(path)]                    # the trained model, as its file
    assert [type(v) for v in detect.args[1]] == [Volume] and detect.args[2] == ["Validation"]
    table = scene.GetNodeByID(panel.calls.tables[-1])
    assert table.GetName() == "Landmark detection confidence"
    assert mrml.table_to_dict(table)["Volume"] == ["Validation"]
    assert ui.statusLabel.text.startswith("Landmarks placed in ") and "of 1 volume(s)" in ui.statusLabel.text
    assert buttons and set(buttons) == {("Train", False, "Cancel", True)}
    assert (ui.detectButton.text, ui.detectButton.enabled) == ("Detect landmarks", True)


def _blank_volumes(folder):
    blank = Volume(np.full((30, 30, 30), 40, np.int16), 0.5)      # no structure: a row each, quickly
    for name in ("ct.nrrd", "ear.nii.gz"):
        io.write_volume(blank, folder / name)


def test_detect_from_files_with_more_references_sends_paths(panel, monkeypatch, tmp_path):
    """A model file, a folder of more references and a folder of volume files all reach the
    job as paths (checked here first: a model loads in milliseconds)."""
    run_jobs_in_this_process(monkeypatch)
    jobs_seen = record_jobs(monkeypatch)
    widget, ui, scene = panel.widget, panel.ui, panel.scene
    references = tmp_path / "references"
    references.mkdir()
    for stem in ("r1", "r2"):
        for suffix in (".pt", ".json"):
            shutil.copy(phantom_model_path().with_suffix(suffix), references / f"{stem}{suffix}")
    _blank_volumes(tmp_path / "volumes")
    ui.modelPathLineEdit.currentPath = str(phantom_model_path())
    ui.referenceModelsPathLineEdit.currentPath = str(references)
    ui.targetFolderPathLineEdit.currentPath = str(tmp_path / "volumes")
    count = scene.GetNumberOfNodes()

    ui.detectButton.emit("clicked(bool)", False)
    assert panel.calls.errors == []
    job = jobs_seen[-1]
    assert job.function is jobs.detect_volumes and job.share == widget.logic.detect_share
    assert job.args[0] == [str(phantom_model_path()), str(references / "r1.pt"), str(references / "r2.pt")]
    assert job.args[1] == [str(tmp_path / "volumes" / "ct.nrrd"), str(tmp_path / "volumes" / "ear.nii.gz")]
    table = scene.GetNodeByID(panel.calls.tables[-1])
    assert mrml.table_to_dict(table)["Volume"] == ["ct", "ear"]
    assert scene.GetNumberOfNodes() > count
    assert ui.statusLabel.text == ("Landmarks placed in 0 of 2 volume(s) without a flag; see the table "
                                   "'Landmark detection confidence'.")

    # a damaged reference is refused before any job starts
    (references / "r2.pt").write_bytes(b"not a model")
    count, started = scene.GetNumberOfNodes(), len(jobs_seen)
    ui.detectButton.emit("clicked(bool)", False)
    assert panel.calls.errors and "r2.pt" in panel.calls.errors[-1]
    assert len(jobs_seen) == started and scene.GetNumberOfNodes() == count


def test_refused_inputs_errors_and_cancel_leave_the_scene_as_it_was(panel, monkeypatch):
    run_jobs_in_this_process(monkeypatch)
    jobs_seen = record_jobs(monkeypatch)
    widget, ui, scene = panel.widget, panel.ui, panel.scene
    count = scene.GetNumberOfNodes()

    ui.trainButton.emit("clicked(bool)", False)             # no reference: refused, nothing started
    assert panel.calls.errors and "reference volume" in panel.calls.errors[-1]
    assert jobs_seen == [] and widget.logic.model_path is None

    target = mrml.volume_to_node(scene, tiny_case()[0], "Target")
    ui.targetVolumesSelector.checked_nodes = [target]
    count = scene.GetNumberOfNodes()

    def fail(*args, progress=None, **kwargs):
        progress(0.5, "detecting")
        raise CochleaAIError("the detection failed here")

    monkeypatch.setattr(jobs, "detect_volumes", fail)
    ui.detectButton.emit("clicked(bool)", False)
    assert "the detection failed here" in panel.calls.errors[-1]
    assert ui.statusLabel.text == "Detect landmarks: failed."
    assert scene.GetNumberOfNodes() == count
    assert jobs_seen[-1].args[0] == [widget.logic.model_path]   # the shipped model, by its file

    def cancel(*args, progress=None, **kwargs):
        widget.runner.requestCancel()
        progress(0.5, "detecting")
        raise AssertionError("not reached: the report raises Cancelled")

    monkeypatch.setattr(jobs, "detect_volumes", cancel)
    errors = len(panel.calls.errors)
    ui.detectButton.emit("clicked(bool)", False)
    assert ui.statusLabel.text == "Detect landmarks: cancelled. The scene was left as it was."
    assert len(panel.calls.errors) == errors and scene.GetNumberOfNodes() == count
    assert (ui.detectButton.text, ui.detectButton.enabled) == ("Detect landmarks", True)

    def interrupted(*args, progress=None, **kwargs):      # training cancelled: no model is kept
        raise Cancelled("Cancelled by the user.")

    for name, node in _training_nodes(scene).items():
        setattr(widget.parameters, name, node)
    kept = widget.logic.model_path
    monkeypatch.setattr(jobs, "train_to_file", interrupted)
    ui.trainButton.emit("clicked(bool)", False)
    assert ui.statusLabel.text == "Train one-shot model: cancelled. The scene was left as it was."
    assert widget.logic.model_path == kept
    assert jobs_seen[-1].kwargs["config"].max_steps == widget.parameters.maxSteps
