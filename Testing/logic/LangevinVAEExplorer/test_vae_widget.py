"""The Langevin VAE Explorer panel (stand-in Qt, real MRML, the shipped model): Train, Encode
and Interpolate read their inputs on the GUI thread, run a core function of
``cochleaai.vae.jobs`` in a worker process and make their nodes when it ends; Load model and
the sliders stay on the GUI thread (a few milliseconds) and wait for a running job."""
from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
for folder in (ROOT, ROOT / "LangevinVAEExplorer"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

slicer = pytest.importorskip("slicer", reason="slicer-core (real MRML) is not installed")

from cochleaai import io, worker  # noqa: E402
from cochleaai.slicer import mrml  # noqa: E402
from cochleaai.slicer.gui.jobs import JobRunner  # noqa: E402
from cochleaai.slicer.results.vae import GENERATED_NAME, LATENT_ATTRIBUTE, RECONSTRUCTION_NAME  # noqa: E402
from cochleaai.vae import jobs  # noqa: E402
from cochleaai.vae.shipped import default_model_path  # noqa: E402
from cochleaai.volume import Volume  # noqa: E402
from qt_stand_ins import Widget  # noqa: E402
from module_widgets import build_widget  # noqa: E402
from slicer_stand_in import run_jobs_in_this_process, slicer_core_util  # noqa: E402

pytestmark = pytest.mark.skipif(not default_model_path().is_file(), reason="no shipped model")
MODULE = "LangevinVAEExplorer"


@pytest.fixture
def panel(monkeypatch, scene, one_torch_thread):
    """The module's widget set up on stand-in Qt widgets (the .ui file's) over a real scene;
    ``(widget, ui, calls)``, calls holding the error dialogs."""
    monkeypatch.setattr(slicer, "modules", types.SimpleNamespace(), raising=False)
    built = build_widget(monkeypatch, MODULE, scene)
    return built.widget, built.ui, built.calls


def _jobs_recorded(monkeypatch, ui):
    """Play runInProcess in this process (through pickle, the function found by its reference
    as the worker finds it) and record each job: its description, the function's reference
    and the action button that read "Cancel" while it ran."""
    run_jobs_in_this_process(monkeypatch)
    played = JobRunner.runInProcess
    recorded = []

    def record(self, description, function, args=(), kwargs=None, finish=None, share=1.0):
        entry = {"description": description, "function": worker.function_reference(function)}
        recorded.append(entry)

        def finishing(result):
            entry["cancel"] = sorted(name for name, w in vars(ui).items() if name != "cancelButton"
                                     and getattr(w, "className", "") == "QPushButton" and w.text == "Cancel")
            return finish(result) if finish is not None else result
        return played(self, description, function, args, kwargs, finishing, share)

    monkeypatch.setattr(JobRunner, "runInProcess", record)
    return recorded


def _phantoms(widget, scene, *seeds):
    return [widget.logic.generate_phantom(scene, seed=seed, fov="roi")["volume"] for seed in seeds]


def test_train_encode_and_interpolate_run_a_core_function_through_runInProcess(panel, scene, monkeypatch,
                                                                               tmp_path):
    widget, ui, calls = panel
    recorded = _jobs_recorded(monkeypatch, ui)
    ui.loadModelButton.emit("clicked(bool)", False)               # on the GUI thread: no worker
    assert recorded == [] and "latent dimension 2" in ui.modelInfoLabel.text
    phantom, other = _phantoms(widget, scene, 150, 152)
    expected = jobs.encode_with(widget.logic.model, widget.logic.card, mrml.node_to_volume(phantom))
    before = mrml.node_to_volume(phantom).array.copy()

    ui.volumeSelector.setCurrentNode(phantom)
    ui.encodeButton.emit("clicked(bool)", False)
    assert calls["errors"] == []
    assert recorded[-1] == {"description": "Encode", "function": "cochleaai.vae.jobs:encode",
                            "cancel": ["encodeButton"]}
    assert ui.encodeButton.text != "Cancel" and ui.encodeButton.enabled
    np.testing.assert_allclose([ui.latent1Slider.value, ui.latent2Slider.value], expected.z, atol=1e-5)
    assert ui.statusLabel.text.startswith("Encoded: z = ")
    reconstruction = scene.GetFirstNodeByName(RECONSTRUCTION_NAME)
    np.testing.assert_allclose(mrml.node_to_volume(reconstruction).array, expected.reconstruction.array, atol=1e-3)
    np.testing.assert_array_equal(mrml.node_to_volume(phantom).array, before)     # input untouched

    ui.interpolateFromSelector.setCurrentNode(phantom)
    ui.interpolateToSelector.setCurrentNode(other)
    widget.parameters.interpolationSteps = 3
    ui.interpolateButton.emit("clicked(bool)", False)
    assert calls["errors"] == []
    assert recorded[-1] == {"description": "Interpolate", "function": "cochleaai.vae.jobs:interpolate_volumes",
                            "cancel": ["interpolateButton"]}
    sequence = scene.GetFirstNodeByName("Latent interpolation sequence")
    assert sequence is not None and sequence.GetNumberOfDataNodes() == 3
    assert ui.statusLabel.text == "Interpolation ready: play it with the Sequences toolbar."

    folder = tmp_path / "vols"
    rng = np.random.default_rng(0)
    for i in range(3):
        io.write_volume(Volume(rng.normal(500, 300, size=(30, 30, 36)).astype(np.int16), 0.35), folder / f"v{i}.nrrd")
    ui.trainFolderLineEdit.currentPath = str(folder)
    ui.trainOutputLineEdit.currentPath = str(tmp_path / "trained")
    widget.parameters.trainEpochs = 1
    ui.trainButton.emit("clicked(bool)", False)
    assert calls["errors"] == []
    assert recorded[-1] == {"description": "Train", "function": "cochleaai.vae.jobs:train",
                            "cancel": ["trainButton"]}
    assert ui.modelInfoLabel.text.startswith("Trained and loaded")
    assert ui.modelPathLineEdit.currentPath == str(tmp_path / "trained")
    assert widget.logic.model_summary()["path"] == str(tmp_path / "trained")   # the sliders use it now
    assert [r["description"] for r in recorded] == ["Encode", "Interpolate", "Train"]


def test_refused_inputs_start_no_job_and_leave_the_scene_alone(panel, scene, monkeypatch):
    widget, ui, calls = panel
    recorded = _jobs_recorded(monkeypatch, ui)
    ui.loadModelButton.emit("clicked(bool)", False)
    count = scene.GetNumberOfNodes()
    ui.encodeButton.emit("clicked(bool)", False)                  # no volume selected
    ui.interpolateButton.emit("clicked(bool)", False)             # no volumes selected
    ui.trainButton.emit("clicked(bool)", False)                   # nowhere to save
    assert recorded == [] and scene.GetNumberOfNodes() == count
    assert len(calls["errors"]) == 3
    assert "Choose two volumes" in calls["errors"][1] and "where to save" in calls["errors"][2]
    assert ui.statusLabel.text == "Train: failed."


def test_sliders_decode_on_the_gui_thread_but_not_while_a_job_runs(panel, scene):
    widget, ui, calls = panel
    ui.latent1Slider.emit("valueChanged(double)", 0.5)              # no model yet: says so
    assert scene.GetFirstNodeByName(GENERATED_NAME) is None and "Load a model first" in ui.statusLabel.text
    ui.loadModelButton.emit("clicked(bool)", False)
    times = []
    for z1 in (0.5, 1.0, -1.0):
        ui.latent1Slider.value = z1
        start = time.perf_counter()
        ui.latent1Slider.emit("valueChanged(double)", z1)
        times.append(time.perf_counter() - start)
    generated = scene.GetFirstNodeByName(GENERATED_NAME)
    assert generated.GetAttribute(LATENT_ATTRIBUTE) == "-1.00000 0.00000"
    print(f"slider decode with the shipped model: {1000 * np.median(times):.1f} ms")
    assert np.median(times) < 0.5                                  # interactive: stays in process

    seen = []

    def busy(progress):
        ui.latent1Slider.value = 2.0
        ui.latent1Slider.emit("valueChanged(double)", 2.0)
        seen.append(ui.statusLabel.text)
    widget.runner.run("Busy", busy)                                 # a job of this panel
    other = JobRunner(Widget(), Widget(), Widget())                 # another module's job
    other.run("Segment cochlea", busy)
    assert generated.GetAttribute(LATENT_ATTRIBUTE) == "-1.00000 0.00000"   # not decoded during the jobs
    assert seen == ["Busy...", "Segment cochlea is running; wait for it or cancel it."]
    ui.latent1Slider.emit("valueChanged(double)", 2.0)              # once they ended: decoded
    assert generated.GetAttribute(LATENT_ATTRIBUTE) == "2.00000 0.00000"


@pytest.mark.skipif(slicer_core_util() is None, reason="slicer-core's util.py (the process launcher) is missing")
def test_encode_in_a_real_worker_process_and_its_cancel(panel, scene, monkeypatch):
    widget, ui, calls = panel
    ui.loadModelButton.emit("clicked(bool)", False)
    (phantom,) = _phantoms(widget, scene, 153)
    expected = jobs.encode_with(widget.logic.model, widget.logic.card, mrml.node_to_volume(phantom))
    ui.volumeSelector.setCurrentNode(phantom)

    clicks = []

    def click_cancel():             # the first turn of the event loop: the user clicks the button again
        if not clicks:
            clicks.append(ui.encodeButton.text)
            ui.encodeButton.emit("clicked(bool)", False)
    monkeypatch.setattr(slicer.app, "processEvents", click_cancel)
    count = scene.GetNumberOfNodes()
    ui.encodeButton.emit("clicked(bool)", False)
    assert clicks == ["Cancel"] and calls["errors"] == []
    assert ui.statusLabel.text == "Encode: cancelled. The scene was left as it was."
    assert scene.GetNumberOfNodes() == count and ui.encodeButton.text == "Encode selected volume"

    monkeypatch.setattr(slicer.app, "processEvents", lambda: None)
    ui.encodeButton.emit("clicked(bool)", False)
    assert calls["errors"] == [], calls["errors"]
    assert "worker process" in ui.logTextEdit.toPlainText()
    np.testing.assert_allclose([ui.latent1Slider.value, ui.latent2Slider.value], expected.z, atol=1e-4)
    assert ui.statusLabel.text.startswith("Encoded: z = ")
    assert scene.GetFirstNodeByName(RECONSTRUCTION_NAME) is not None
