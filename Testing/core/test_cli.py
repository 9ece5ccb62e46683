"""The command line and the demo job, end to end on small inputs."""
import json
import subprocess
import sys

import numpy as np
import pytest

from cochleaai import io
from cochleaai import cli
from cochleaai.cli import build_parser, main


def test_every_command_has_help(capsys):
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert {"phantom", "shape", "bench", "demo"} <= set(commands)
    for name in commands:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert "usage" in capsys.readouterr().out


def test_plugin_commands_are_found_on_python_39_too(monkeypatch):
    """Python 3.9's entry_points() (Slicer 5.8) returns a plain {group: entry points} dict."""
    from importlib.metadata import EntryPoint

    demo = EntryPoint("demo", "cochleaai.slicer.demo.cli:add_commands", cli.PLUGIN_GROUP)
    other = EntryPoint("other", "json:dumps", "another.group")
    monkeypatch.setattr(cli, "entry_points", lambda: {cli.PLUGIN_GROUP: [demo], "another.group": [other]})
    from cochleaai.slicer.demo.cli import add_commands
    assert cli.plugin_commands() == [add_commands]


def test_module_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "cochleaai", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "phantom" in out.stdout


def test_phantom_command_writes_files_that_read_back(tmp_path):
    assert main(["phantom", "--seed", "4", "--fov", "roi", "--out", str(tmp_path), "--quiet"]) == 0
    ct = io.read_volume(tmp_path / "ct.nrrd")
    assert ct.size == (60, 50, 50) and ct.array.dtype == np.int16
    _, segments = io.read_seg_nrrd(tmp_path / "labels.seg.nrrd")
    assert "Cochlea" in {s.name for s, _ in segments}
    marks = io.read_markups(tmp_path / "landmarks.mrk.json")
    assert set(marks.labels) == {"apex", "center", "round_window"}
    assert json.loads((tmp_path / "truth.json").read_text())["seed"] == 4


def test_shape_command_measures_the_requested_shape(tmp_path, capsys):
    assert main(["shape", "--a", "4.3", "--alpha", "0.9", "--edge", "0.3", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "shape.json").read_text())
    assert summary["parameters"]["a"] == 4.3 and summary["parameters"]["alpha"] == 0.9
    assert (tmp_path / "cochlea_shape.vtk").stat().st_size > 1000
    curve = io.read_markups(tmp_path / "scala_tympani_centerline.mrk.json")
    assert curve.kind == "curve" and curve.labels[0] == "0 deg"


def test_user_errors_exit_with_status_2(tmp_path, capsys):
    assert main(["shape", "--a", "99", "--out", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err


def test_demo_builds_a_scene_that_reloads(tmp_path):
    pytest.importorskip("slicer")
    from cochleaai.slicer import mrml
    from cochleaai.slicer.demo.scene import run

    summary = run(tmp_path, seed=1, fov="roi")
    assert (tmp_path / "phantom_slices.png").stat().st_size > 10000
    scene = mrml.new_scene()
    scene.SetURL(summary["scene"])
    assert scene.Import()
    names = {scene.GetNthNode(i).GetName() for i in range(scene.GetNumberOfNodes())}
    for expected in ("Phantom CT", "Phantom segmentation", "Phantom landmarks",
                     "Cochlea shape (truth)", "Scala tympani centerline"):
        assert expected in names
    volume = scene.GetFirstNodeByName("Phantom CT")
    assert volume.GetImageData() is not None
    assert summary["segment_voxels"]["Cochlea"] > 1000


def test_the_demo_reduces_the_artifact_on_the_grid_margan_knows(tmp_path):
    """The demo's implant step runs on MARGAN's 0.2 mm grid with the artifact added to the
    pre-op, so the shipped model sees what it was trained on and comes close to the pre-op."""
    pytest.importorskip("slicer")
    pytest.importorskip("torch")
    from cochleaai.mar.methods import default_model_available
    from cochleaai.phantom.core import make_phantom
    from cochleaai.slicer import mrml
    from cochleaai.slicer.demo.mar import demo_step

    if not default_model_available():
        pytest.skip("no MARGAN model in Resources/Models")
    ct = demo_step(make_phantom(1, fov="temporal"), mrml.new_scene(), tmp_path)
    assert "spacing=[0.2, 0.2, 0.2]" in ct["roi"]
    assert ct["rmse_hu_margan_vs_preop"] < 0.4 * ct["rmse_hu_postop_vs_preop"]
    assert ct["rmse_hu_margan_vs_preop"] < 0.4 * ct["rmse_hu_nmar_vs_preop"]
