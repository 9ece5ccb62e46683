"""The ``simulate-ci`` and ``mar`` commands end to end on a small phantom."""
from __future__ import annotations

import json

import numpy as np
import pytest

from cochleaai import io
from cochleaai.cli import main
from cochleaai.phantom.core import make_phantom


def test_simulate_ci_and_mar_write_their_files(tmp_path, capsys):
    ph = make_phantom(2, fov="roi")
    files = ph.save(tmp_path / "ph")
    out = tmp_path / "sim"
    assert main(["simulate-ci", str(files["ct"]), "--out", str(out), "--array", "flex28", "--depth", "480",
                 "--seed", "1", "--quiet"]) == 0
    for name in ("postop.nrrd", "metal.seg.nrrd", "contacts.mrk.json", "target.nrrd", "simulation.json",
                 "simulated_without_implant.nrrd"):
        assert (out / name).is_file(), name
    post = io.read_volume(out / "postop.nrrd")
    assert post.same_geometry(ph.ct) and post.array.max() >= 3000
    # the pair can be rebuilt: the default post-op is the pre-op plus (simulated with - without)
    clean = io.read_volume(out / "simulated_without_implant.nrrd")
    assert clean.same_geometry(ph.ct) and json.loads((out / "simulation.json").read_text())["artifact_mode"] == "injected"
    assert main(["simulate-ci", str(files["ct"]), "--out", str(tmp_path / "simulated"), "--array", "flex28",
                 "--depth", "480", "--seed", "1", "--artifact-mode", "simulated", "--quiet"]) == 0
    simulated = io.read_volume(tmp_path / "simulated" / "postop.nrrd").array.astype(np.int32)
    rebuilt = np.clip(ph.ct.array.astype(np.int32) + simulated - clean.array, -1024, 3071)
    inside = (simulated > -1024) & (simulated < 3071) & (clean.array > -1024) & (clean.array < 3071)
    assert inside.mean() > 0.9 and np.abs(rebuilt - post.array)[inside].max() <= 2    # rounding only
    contacts = io.read_markups(out / "contacts.mrk.json")
    assert len(contacts) == 12 and contacts.labels[0] == "E1"
    summary = json.loads((out / "simulation.json").read_text())
    assert summary["depth_deg"] == 480.0 and summary["n_contacts"] == 12
    assert main(["mar", str(out / "postop.nrrd"), "--out", str(out / "nmar.nrrd"),
                 "--contacts", str(out / "found.mrk.json"), "--quiet"]) == 0
    corrected = io.read_volume(out / "nmar.nrrd")
    assert corrected.same_geometry(post) and not np.array_equal(corrected.array, post.array)
    assert len(io.read_markups(out / "found.mrk.json")) >= 6
    # the geometric correction alone, and a refiner file that is not there
    assert main(["mar", str(out / "postop.nrrd"), "--out", str(out / "nmar2.nrrd"), "--contacts",
                 str(out / "geometric.mrk.json"), "--contact-refiner", "none", "--quiet"]) == 0
    geometric = io.read_markups(out / "geometric.mrk.json")
    assert len(geometric) == len(io.read_markups(out / "found.mrk.json"))
    assert main(["mar", str(out / "postop.nrrd"), "--out", str(out / "nmar3.nrrd"), "--contacts",
                 str(out / "x.mrk.json"), "--contact-refiner", str(out / "none.npz"), "--quiet"]) == 2
    assert not (out / "nmar3.nrrd").exists()                      # stopped before any work


def test_cli_errors_are_sentences(tmp_path, capsys):
    ph = make_phantom(2, fov="roi")
    ct = io.write_volume(ph.ct, tmp_path / "alone" / "ct.nrrd")
    assert main(["simulate-ci", str(ct), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "No cochlea model" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"theta": [1, 2]}')
    assert main(["simulate-ci", str(ct), "--out", str(tmp_path / "o"), "--model", str(bad), "--quiet"]) == 2
    assert "10 cochlea shape parameters" in capsys.readouterr().err
    (tmp_path / "alone" / "truth.json").write_text(json.dumps({"theta": ph.model.theta.tolist()}))
    with pytest.raises(SystemExit) as refused:          # checked when parsed, before the volume is read
        main(["simulate-ci", str(ct), "--out", str(tmp_path / "o"), "--depth", "5000", "--quiet"])
    assert refused.value.code == 2 and "--depth: must be from 0.0 to 1080.0" in capsys.readouterr().err
