"""``segment`` and ``segment-batch`` commands: files that read back, a batch CSV with QC."""
import csv
import json

import numpy as np
import pytest

from cochleaai import io
from cochleaai.cli import main
from cochleaai.errors import EXIT_FLAGGED
from cochleaai.markups import Markups
from cochleaai.phantom.core import make_phantom

FAST = ["--iterations", "2", "--samples", "5", "--quiet"]


def test_segment_command_writes_files_that_read_back(tmp_path):
    ph = make_phantom(seed=11, fov="roi")
    ph.save(tmp_path / "ph")
    lm = dict(zip(ph.landmarks.labels, ph.landmarks.points))
    io.write_markups_json(tmp_path / "points.mrk.json",
                          Markups(np.stack([lm["center"]]), ["Center"], name="clicks"))
    out = tmp_path / "seg"
    assert main(["segment", str(tmp_path / "ph" / "ct.nrrd"), "--out", str(out),
                 "--points", str(tmp_path / "points.mrk.json"), *FAST]) == 0
    reference, segments = io.read_seg_nrrd(out / "labels.seg.nrrd")
    assert [s.name for s, _ in segments] == ["Cochlea", "Cochlea shape model"]
    assert all(m.any() for _, m in segments)
    prob = io.read_volume(out / "probability.nrrd")
    assert prob.same_geometry(reference) and 0 <= prob.array.min() and prob.array.max() <= 1
    shape = json.loads((out / "shape.json").read_text())
    assert set(shape["measures"]["cdl_lateral_wall_mm"]) == {"value", "mean", "sd", "std", "low", "high"}
    assert shape["measures_interval_scale"] > 1          # the calibrated spread of the plan
    assert set(shape["measures_interval_factors"]) == {"cdl_organ_of_corti_mm", "cdl_lateral_wall_mm"}
    assert shape["label_map_vestibule_wedge_deg"] == 45.0      # the default, recorded with the files
    assert len(shape["theta"]) == 10 and np.array(shape["covariance"]).shape == (10, 10)
    curve = io.read_markups(out / "centerline.mrk.json")
    assert curve.labels[0] == "0 deg" and curve.labels[-1].endswith("deg")
    # the fitted centre lies near the clicked one
    assert np.linalg.norm(np.array(shape["landmarks_lps"]["center"]) - lm["center"]) < 1.5


def test_segment_batch_sorts_by_quality_survives_a_bad_file_and_resumes(tmp_path):
    folder = tmp_path / "in"
    for seed, name in ((12, "case.a.nrrd"), (13, "case.b.nrrd")):   # one stem before the first dot
        io.write_volume(make_phantom(seed=seed, fov="roi").ct, folder / name)
    (folder / "broken.nrrd").write_bytes(b"not an image")
    out = tmp_path / "out"
    # finished, with a failed volume: the exit status says so
    assert main(["segment-batch", str(folder), "--out", str(out), "--workers", "1", *FAST]) == EXIT_FLAGGED
    rows = list(csv.DictReader(open(out / "measures.csv")))
    assert len(rows) == 3
    good = [r for r in rows if not r.get("error")]
    bad = [r for r in rows if r.get("error")]
    assert len(good) == 2 and len(bad) == 1 and "broken" in bad[0]["input"] and rows[0] is bad[0]
    assert all(float(r["cdl_lateral_wall_mm"]) > 20 and r["qc_surface_mm"] for r in good)
    labels = {n: io.read_seg_nrrd(out / n / "labels.seg.nrrd")[1][0][1] for n in ("case.a", "case.b")}
    assert not np.array_equal(labels["case.a"], labels["case.b"])      # two volumes, two results
    assert sorted(r["output"] for r in good) == [str((out / n).absolute()) for n in ("case.a", "case.b")]

    # a rerun keeps the finished volumes and tries the broken file again
    stamp = (out / "case.a" / "labels.seg.nrrd").stat().st_mtime_ns
    assert main(["segment-batch", str(folder), "--out", str(out), *FAST]) == EXIT_FLAGGED
    again = list(csv.DictReader(open(out / "measures.csv")))
    assert sorted(r["status"] for r in again) == ["failed", "resumed", "resumed"]
    assert [r["cdl_lateral_wall_mm"] for r in again] == [r["cdl_lateral_wall_mm"] for r in rows]
    assert (out / "case.a" / "labels.seg.nrrd").stat().st_mtime_ns == stamp

    # two Dask workers write the same results as the serial run
    pytest.importorskip("distributed")
    dask = tmp_path / "dask"
    assert main(["segment-batch", str(folder), "--out", str(dask), "--dask-scheduler", "local",
                 "--workers", "2", *FAST]) == EXIT_FLAGGED
    for name in ("case.a", "case.b"):
        for file in ("probability.nrrd", "uncertainty.nrrd"):
            assert np.array_equal(io.read_volume(dask / name / file).array, io.read_volume(out / name / file).array)
        assert np.array_equal(io.read_seg_nrrd(dask / name / "labels.seg.nrrd")[1][0][1], labels[name])


def test_settings_options_reach_the_fit_settings():
    from cochleaai.cli import build_parser
    from cochleaai.segmentation.cli import _settings

    args = build_parser().parse_args(["segment", "ct.nrrd", "--out", "o", "--side", "left", "--no-placement",
                                      "--l-ref-final", "0.25", "--shape-step", "bfgs"])
    s = _settings(args)
    assert (s.side, s.search_placement, s.l_ref_final, s.shape_step) == ("left", False, 0.25, "bfgs")
    default = _settings(build_parser().parse_args(["segment", "ct.nrrd", "--out", "o"]))
    assert default.search_placement and default.search_orientation
    assert (default.n_params, default.label_map) == (10, "lumen-wall")
    args = build_parser().parse_args(["segment", "ct.nrrd", "--out", "o", "--no-orientation-search",
                                      "--parameters", "12", "--label-map", "shape-model", "--label-band", "0.5",
                                      "--any-orientation", "--vestibule-wedge", "0"])
    s = _settings(args)
    assert (s.search_orientation, s.n_params, s.label_map, s.label_band_mm) == (False, 12, "shape-model", 0.5)
    assert s.any_orientation and not default.any_orientation
    assert (s.vestibule_wedge_deg, default.vestibule_wedge_deg) == (0.0, 45.0)


def test_calibrate_shape_command_is_registered():
    from cochleaai.cli import build_parser

    args = build_parser().parse_args(["calibrate-shape", "--data", "d", "--out", "t.json"])
    assert args.func.__name__ == "_cmd_calibrate" and args.data == "d"


def test_batch_rows_are_ordered_for_review():
    from cochleaai.segmentation.cli import review_order

    rows = [{"input": "fine", "suspect": False, "qc_surface_mm": 0.2},
            {"input": "flagged by contrast", "suspect": True, "qc_surface_mm": 0.1},
            {"input": "broken", "error": "not an image"},
            {"input": "finer", "suspect": False, "qc_surface_mm": 0.1},
            {"input": "flagged by surface", "suspect": True, "qc_surface_mm": 0.9}]
    assert [r["input"] for r in sorted(rows, key=review_order)] == [
        "broken", "flagged by surface", "flagged by contrast", "fine", "finer"]


def test_segment_refuses_a_points_file_without_usable_labels(tmp_path, capsys):
    ph = make_phantom(seed=11, fov="roi")
    io.write_volume(ph.ct, tmp_path / "ct.nrrd")
    io.write_markups_json(tmp_path / "p.mrk.json", Markups(np.zeros((1, 3)), ["somewhere"]))
    assert main(["segment", str(tmp_path / "ct.nrrd"), "--out", str(tmp_path / "o"),
                 "--points", str(tmp_path / "p.mrk.json"), "--quiet"]) == 2
    assert "center" in capsys.readouterr().err
