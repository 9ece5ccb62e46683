"""The Metal Artifact Reduction panel on a real MRML scene (slicer-core) with stand-in Qt:
each action reads its inputs here, runs a core function in a worker process (one test runs
the real worker; the others play it in this process, through pickle, with
``run_jobs_in_this_process``) and adds the nodes here."""
from __future__ import annotations

import json
import pickle
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
for _folder in (ROOT, ROOT / "MetalArtifactReduction"):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

slicer = pytest.importorskip("slicer", reason="slicer-core (real MRML) is not installed")

from module_widgets import build_widget  # noqa: E402
from slicer_stand_in import run_jobs_in_this_process  # noqa: E402

from cochleaai import worker  # noqa: E402
from cochleaai.mar import dispatch  # noqa: E402
from cochleaai.mar.margan import user_training  # noqa: E402
from cochleaai.simulation import ct  # noqa: E402
from cochleaai.simulation.ct import ScanConfig  # noqa: E402
from cochleaai.simulation.projector import FanBeamGeometry  # noqa: E402
from cochleaai.slicer import mrml  # noqa: E402
from cochleaai.slicer.gui.jobs import JobRunner  # noqa: E402

QUICK = ScanConfig(geometry=FanBeamGeometry(n_views=360))
ACTIONS = ("reduceButton", "simulateButton", "simulatePairsButton", "trainButton")


@pytest.fixture(scope="module")
def shared(phantom_scene):
    """A phantom and a quick simulated implant in it (the widget's simulation is replayed from it)."""
    scene, logic, phantom = phantom_scene
    inputs = logic.read_simulation_inputs(scene, phantom["volume"], array="flex28", depth_deg=450.0, seed=2,
                                          config=QUICK)
    sim = logic.compute(inputs)
    nodes = logic.add_simulation_nodes(inputs, sim)
    return {"scene": scene, "phantom": phantom, "sim": sim, "nodes": nodes}


@pytest.fixture
def panel(monkeypatch, shared):
    """The module's widget, set up on the shared scene: ``(widget, ui, calls)``."""
    built = build_widget(monkeypatch, "MetalArtifactReduction", shared["scene"])
    yield built.widget, built.ui, built.calls
    node = built.widget.parameters.parameterNode
    built.widget.cleanup()          # unbinds the panel from the parameter node
    shared["scene"].RemoveNode(node)    # the next test starts from the panel's defaults


def _recorded_jobs(monkeypatch):
    """Replace runInProcess: record each job (nothing runs) and return the records."""
    jobs = []

    def record(self, description, function, args=(), kwargs=None, finish=None, share=1.0):
        jobs.append({"description": description, "function": function, "args": tuple(args),
                     "kwargs": dict(kwargs or {}), "running": self.running})
        return None

    monkeypatch.setattr(JobRunner, "runInProcess", record)
    return jobs


def _fake_model(folder: Path) -> Path:
    """A MARGAN weights file with its card: enough for the checks made before a job starts."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mine.pt").write_bytes(b"weights")
    (folder / "mine.json").write_text(json.dumps({"format": "cochleaai.margan/1"}))
    return folder / "mine.pt"


def test_every_action_runs_a_core_function_on_plain_data(panel, shared, monkeypatch, tmp_path):
    """Each button's job names a core function the worker accepts, with picklable arguments
    (no MRML node), and a model chosen in the Logic goes as its checked file."""
    widget, ui, calls = panel
    jobs = _recorded_jobs(monkeypatch)
    p = widget.parameters
    ui.inputVolumeSelector.setCurrentNode(shared["nodes"]["volume"])
    ui.preopVolumeSelector.setCurrentNode(shared["phantom"]["volume"])
    ui.pairsFolderPathLineEdit.currentPath = str(tmp_path / "pairs")
    model = _fake_model(tmp_path / "model")
    widget.logic.model = str(model)
    p.method = type(p.method)["margan"]
    count = shared["scene"].GetNumberOfNodes()
    for name in ACTIONS:
        getattr(ui, name).emit("clicked(bool)", False)
    assert calls["errors"] == []
    assert [job["function"] for job in jobs] == [dispatch.reduce_and_find_contacts, ct.simulate_postop,
                                                 user_training.simulate_user_pairs,
                                                 user_training.train_user_model_file]
    for job in jobs:
        reference = worker.function_reference(job["function"])          # a core function: no error
        assert not reference.startswith("cochleaai.slicer")
        pickle.dumps((job["args"], job["kwargs"]))                       # plain data only
    reduce_job = jobs[0]
    assert reduce_job["args"][1:] == ("margan", p.thresholdHU)
    assert reduce_job["kwargs"]["model"] == str(model.absolute())
    assert reduce_job["args"][0].same_geometry(mrml.node_to_volume(shared["nodes"]["volume"]))
    assert jobs[2]["args"][1:] == (str(tmp_path / "pairs"), p.trainPairs)
    assert jobs[3]["args"] == (str(tmp_path / "pairs"), str(tmp_path / "pairs" / "margan_user.pt"), p.trainSteps)
    assert shared["scene"].GetNumberOfNodes() == count                  # nothing added: nothing ran

    # a model file gone before the job: refused here, nothing started
    model.unlink()
    ui.reduceButton.emit("clicked(bool)", False)
    assert len(jobs) == 4 and "does not exist" in calls["errors"][-1]
    assert "failed" in ui.statusLabel.text and shared["scene"].GetNumberOfNodes() == count


def test_reduce_runs_in_a_worker_process_and_adds_the_nodes(panel, shared):
    """The real worker process: LI on the simulated implant, the nodes and the status of today."""
    widget, ui, calls = panel
    p = widget.parameters
    volume = shared["nodes"]["volume"]
    before = mrml.node_to_volume(volume).array.copy()
    ui.inputVolumeSelector.setCurrentNode(volume)
    p.method = type(p.method)["li"]
    p.outputVolume = None
    count = shared["scene"].GetNumberOfNodes()
    ui.reduceButton.emit("clicked(bool)", False)
    assert calls["errors"] == [], calls["errors"]
    out = p.outputVolume
    assert out is not None and out.GetName() == f"{volume.GetName()} LI"
    assert out.GetAttribute("CochleaAI.MARMethod") == "li"
    assert shared["scene"].GetNumberOfNodes() > count
    assert calls["layers"][-1]["background"] is out
    found = re.match(r"Artifacts reduced \(LI\); (\d+) contacts marked\.", ui.statusLabel.text)
    assert found and int(found.group(1)) >= 6, ui.statusLabel.text            # found in the worker too
    assert "worker process" in ui.logTextEdit.toPlainText()
    assert ui.reduceButton.text == "Reduce artifacts" and ui.reduceButton.enabled and not widget.runner.running
    np.testing.assert_array_equal(mrml.node_to_volume(volume).array, before)      # input untouched


def test_simulate_shows_the_metal_in_3d_only_when_asked(panel, shared, monkeypatch):
    widget, ui, calls = panel
    run_jobs_in_this_process(monkeypatch)
    seen = []

    def replay(preop, model, array, depth_deg, seed=0, config=None, artifact_mode="injected", progress=None):
        seen.append((array, depth_deg, seed, ui.simulateButton.text))
        progress(1.0, "simulated")
        return shared["sim"]

    monkeypatch.setattr(ct, "simulate_postop", replay)
    p = widget.parameters
    ui.preopVolumeSelector.setCurrentNode(shared["phantom"]["volume"])
    surface = slicer.vtkSegmentationConverter.GetSegmentationClosedSurfaceRepresentationName()
    made = []
    for show in (False, True):
        p.show3D = show
        ui.simulateButton.emit("clicked(bool)", False)
        assert calls["errors"] == [], calls["errors"]
        made.append(p.postopVolume)
        metal = list(shared["scene"].GetNodesByClass("vtkMRMLSegmentationNode"))[-1]
        assert metal.GetName() == f"{shared['phantom']['volume'].GetName()} CI metal"
        assert metal.GetSegmentation().ContainsRepresentation(surface) == show
        assert calls["layers"][-1]["background"] is made[-1]
    assert seen[0] == (p.array.key, p.depthDeg, p.simulationSeed, "Cancel")   # the button was its Cancel
    assert made[0] is not made[1] and made[1].GetName().endswith("CI post-op (simulated)")
    assert ui.statusLabel.text == "Simulated flex28 at 450 deg: 11 contacts inside the cochlea."
    assert ui.simulateButton.text == "Simulate implant" and not widget.runner.running


def test_training_runs_in_the_worker_and_reduce_then_uses_its_model_file(panel, shared, monkeypatch, tmp_path):
    widget, ui, calls = panel
    run_jobs_in_this_process(monkeypatch)
    model = _fake_model(tmp_path / "pairs")

    def pairs(scans, folder, n, seed=0, progress=None):
        assert [s.name for s in scans] == [shared["phantom"]["volume"].GetName()]
        return {"pairs_dir": folder, "pairs": n}

    def train(folder, path, steps, progress=None):
        return {"model_path": str(model), "training": {"seconds": 12.0, "val_rmse_hu": 40.0,
                                                       "val_rmse_hu_input": 90.0}}

    monkeypatch.setattr(user_training, "simulate_user_pairs", pairs)
    monkeypatch.setattr(user_training, "train_user_model_file", train)
    ui.preopVolumeSelector.setCurrentNode(shared["phantom"]["volume"])
    ui.pairsFolderPathLineEdit.currentPath = str(tmp_path / "pairs")
    ui.simulatePairsButton.emit("clicked(bool)", False)
    assert ui.statusLabel.text == f"{widget.parameters.trainPairs} training pairs written to {tmp_path / 'pairs'}."
    ui.trainButton.emit("clicked(bool)", False)
    assert calls["errors"] == [], calls["errors"]
    assert ui.statusLabel.text == ("Trained in 12 s; validation RMSE 40.0 HU (input 90.0 HU). MARGAN now uses "
                                   "this model.")
    assert widget.logic.model == str(model.absolute())      # the file, not a network in Slicer's process

    seen = {}

    def reduce(volume, method, threshold_hu, progress=None, **kwargs):
        seen.update(kwargs, method=method)
        return dispatch.MarResult(volume.copy(volume.array.astype(np.float32)), volume.array > 1e9, method,
                                  ["No metal found."])

    monkeypatch.setattr(dispatch, "reduce_and_find_contacts", reduce)
    p = widget.parameters
    p.method = type(p.method)["margan"]
    ui.inputVolumeSelector.setCurrentNode(shared["phantom"]["volume"])
    ui.reduceButton.emit("clicked(bool)", False)
    assert calls["errors"] == [] and seen["method"] == "margan" and seen["model"] == str(model.absolute())
    assert ui.statusLabel.text == "No metal found." and p.outputVolume.GetName().endswith(" MARGAN")


def test_errors_in_the_job_and_refused_inputs_leave_the_scene_as_it_was(panel, shared, monkeypatch):
    widget, ui, calls = panel
    run_jobs_in_this_process(monkeypatch)
    scene = shared["scene"]
    count = scene.GetNumberOfNodes()
    ui.inputVolumeSelector.setCurrentNode(None)
    ui.reduceButton.emit("clicked(bool)", False)                       # refused before anything runs
    assert "Select the post-operative CT volume" in calls["errors"][-1]
    p = widget.parameters
    p.method = type(p.method)["nmar"]
    p.thresholdHU = 500.0                                               # most of the phantom: not HU metal
    ui.inputVolumeSelector.setCurrentNode(shared["nodes"]["volume"])
    ui.reduceButton.emit("clicked(bool)", False)                       # refused by the core function
    assert "metal threshold" in calls["errors"][-1] and "failed" in ui.statusLabel.text
    assert scene.GetNumberOfNodes() == count and not widget.runner.running
    assert ui.reduceButton.text == "Reduce artifacts" and ui.reduceButton.enabled
