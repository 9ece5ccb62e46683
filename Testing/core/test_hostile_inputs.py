"""Every command against a careless or hostile user: damaged files, bad numbers, outputs that
would overwrite something. For each case: the exit status, one clear message and no
traceback, every input unchanged (by hash) and no output left behind.

The files are made at test time: one small phantom, and damaged copies of it.
"""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cochleaai.cli import main
from cochleaai.errors import EXIT_FLAGGED, EXIT_USER_ERROR
from cochleaai.io import write_volume
from cochleaai.io.outputs import PARTIAL_PREFIX
from cochleaai.phantom.core import make_phantom
from cochleaai.volume import Volume


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A phantom (ct.nrrd, labels, landmarks, truth.json) and damaged or unsuitable volumes."""
    root = tmp_path_factory.mktemp("hostile")
    phantom = make_phantom(seed=4, fov="roi")
    phantom.save(root / "ph")
    ct = phantom.ct
    rng = np.random.default_rng(0)
    (root / "empty.nrrd").write_bytes(b"")
    (root / "garbage.nrrd").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (root / "text.nii.gz").write_bytes(gzip.compress(b"not an image at all"))
    (root / "folder.nrrd").mkdir()
    sitk.WriteImage(sitk.Image(32, 32, sitk.sitkInt16), str(root / "flat2d.nrrd"))
    sitk.WriteImage(sitk.Image([8, 8, 8, 3], sitk.sitkInt16), str(root / "time4d.nrrd"))
    sitk.WriteImage(sitk.Image([16, 16, 16], sitk.sitkVectorUInt8, 3), str(root / "rgb.nrrd"))
    nan = ct.array.astype(np.float32)
    nan[10, 10, 10] = np.nan
    write_volume(ct.copy(nan), root / "nan.nrrd")
    inf = ct.array.astype(np.float32)
    inf[5, 5, 5] = np.inf
    write_volume(ct.copy(inf), root / "inf.nrrd")
    write_volume(ct.copy(np.zeros(ct.shape, np.int16)), root / "zeros.nrrd")
    write_volume(ct.copy(np.clip((ct.array + 1024) // 16, 0, 255).astype(np.uint8)), root / "uint8.nrrd")
    write_volume(Volume(ct.array, spacing=(1000.0, 1000.0, 1000.0)), root / "metres.nrrd")
    write_volume(ct.copy(rng.normal(0, 400, ct.shape).astype(np.int16)), root / "noise.nrrd")
    write_volume(Volume(np.zeros((3, 3, 3), np.int16) + np.arange(3, dtype=np.int16), spacing=(0.2,) * 3),
                 root / "tiny.nrrd")
    # damage that a reader does not notice by itself: a checksum error, a file cut short
    crc = bytearray((root / "ph" / "ct.nrrd").read_bytes())
    middle = len(crc) - (len(crc) - crc.index(b"\n\n")) // 2
    crc[middle:middle + 16] = bytes(16)
    (root / "crc.nrrd").write_bytes(bytes(crc))
    for name in ("cut.nii", "cut.nii.gz"):
        write_volume(ct, root / name)
        whole = (root / name).read_bytes()
        (root / name).write_bytes(whole[: len(whole) * 2 // 3])
    # a header of 200 bytes that claims 2000^3 voxels (16 GB)
    (root / "huge.nrrd").write_bytes(b"NRRD0004\ntype: int16\ndimension: 3\nsizes: 2000 2000 2000\n"
                                     b"spacings: 0.2 0.2 0.2\nendian: little\nencoding: raw\n\n" + bytes(64))
    return root


def _hashes(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run(argv, capsys):
    """``main(argv)`` as the command line runs it: (exit status, stderr)."""
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exc:                      # argparse refuses an argument
        status = exc.code
    return status, capsys.readouterr().err


def assert_refused(status, err, expected=EXIT_USER_ERROR):
    assert status == expected, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err                     # one message, not a cascade
    assert len(lines[0]) > 25                       # a sentence, not a bare code


def assert_nothing_written(out: Path):
    assert not out.exists() or not any(out.rglob("*")), sorted(out.rglob("*"))


@pytest.fixture
def guarded(data):
    """Checks after the test that no input changed and no partial file was left."""
    before = _hashes(data)
    yield data
    assert _hashes(data) == before
    assert not list(data.rglob(PARTIAL_PREFIX + "*"))


# ------------------------------------------------------------------ damaged and unsuitable volumes
BAD_VOLUMES = ["missing.nrrd", "empty.nrrd", "garbage.nrrd", "text.nii.gz", "folder.nrrd", "flat2d.nrrd",
               "time4d.nrrd", "rgb.nrrd", "nan.nrrd", "inf.nrrd", "zeros.nrrd", "tiny.nrrd", "crc.nrrd", "cut.nii",
               "cut.nii.gz", "huge.nrrd"]


def _volume_commands(data, volume, out):
    """Each command that reads one volume, with ``volume`` as that volume."""
    return {
        "segment": ["segment", volume, "--out", out, "--quiet"],
        "simulate-ci": ["simulate-ci", volume, "--out", out, "--model", data / "ph" / "truth.json", "--quiet"],
        "mar": ["mar", volume, "--out", out / "reduced.nrrd", "--method", "li", "--quiet"],
        "vae encode": ["vae", "encode", "--input", volume, "--out", out / "reconstruction.nrrd"],
    }


@pytest.mark.parametrize("command", ["segment", "simulate-ci", "mar", "vae encode"])
@pytest.mark.parametrize("bad", BAD_VOLUMES)
def test_a_bad_volume_is_refused_in_one_sentence(guarded, tmp_path, capsys, command, bad):
    out = tmp_path / "out"
    status, err = run(_volume_commands(guarded, guarded / bad, out)[command], capsys)
    assert_refused(status, err)
    assert_nothing_written(out)


@pytest.mark.parametrize("command", ["simulate-ci", "mar"])
def test_eight_bit_grey_values_are_not_taken_for_hounsfield_units(guarded, tmp_path, capsys, command):
    out = tmp_path / "out"
    status, err = run(_volume_commands(guarded, guarded / "uint8.nrrd", out)[command], capsys)
    assert_refused(status, err)
    assert "Hounsfield" in err
    assert_nothing_written(out)


def test_voxels_in_metres_are_refused_before_the_fit(guarded, tmp_path, capsys):
    status, err = run(["segment", guarded / "metres.nrrd", "--out", tmp_path / "out", "--quiet"], capsys)
    assert_refused(status, err)
    assert "1000.0" in err and "header" in err
    assert_nothing_written(tmp_path / "out")


@pytest.mark.parametrize("command", ["segment-batch", "landmarks detect"])
def test_a_batch_reports_a_bad_file_and_exits_flagged(guarded, tmp_path, capsys, command):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "garbage.nrrd").write_bytes((guarded / "garbage.nrrd").read_bytes())
    argv = {"segment-batch": ["segment-batch", folder, "--out", tmp_path / "out", "--workers", "1", "--quiet"],
            "landmarks detect": ["landmarks", "detect", folder, "--out", tmp_path / "out", "--quiet"]}[command]
    status, err = run(argv, capsys)
    assert status == EXIT_FLAGGED, err
    assert "Traceback" not in err
    table = next((tmp_path / "out").glob("*.csv")).read_text()
    assert "garbage" in table
    assert not list((tmp_path / "out").rglob(PARTIAL_PREFIX + "*"))


# ------------------------------------------------------------------ outputs that would overwrite something
def _sentinel(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"the user's own file")
    return path.read_bytes()


def _existing_output_cases(data, out):
    """(argv, a file the command would write) for every command that writes."""
    ct = data / "ph" / "ct.nrrd"
    return {
        "phantom": (["phantom", "--out", out, "--quiet"], out / "ct.nrrd"),
        "shape": (["shape", "--out", out], out / "shape.json"),
        "segment": (["segment", ct, "--out", out, "--quiet"], out / "labels.seg.nrrd"),
        "calibrate-shape": (["calibrate-shape", "--data", data, "--out", out / "table.json", "--quiet"],
                            out / "table.json"),
        "calibrate-plan": (["calibrate-plan", "--out", out / "intervals.json", "--quiet"], out / "intervals.json"),
        "simulate-ci": (["simulate-ci", ct, "--out", out, "--quiet"], out / "postop.nrrd"),
        "mar": (["mar", ct, "--out", out / "reduced.nrrd", "--quiet"], out / "reduced.nrrd"),
        "mar --contacts": (["mar", ct, "--out", out / "reduced.nrrd", "--contacts", out / "c.mrk.json", "--quiet"],
                           out / "c.mrk.json"),
        "contacts-train": (["contacts-train", "--pairs", data, "--out", out / "refiner", "--quiet"],
                           out / "refiner.npz"),
        "landmarks train": (["landmarks", "train", "--reference", ct, "--mask", data / "ph" / "labels.seg.nrrd",
                             "--landmarks", data / "ph" / "landmarks.mrk.json", "--out", out / "lm", "--quiet"],
                            out / "lm.pt"),
        "vae train": (["vae", "train", "--out", out / "vae", "--quiet"], out / "vae.json"),
        "vae sample": (["vae", "sample", "--out", out], out / "latent_map.png"),
        "vae encode": (["vae", "encode", "--input", ct, "--out", out / "rec.nrrd"], out / "rec.nrrd"),
        "margan train": (["margan", "train", "--pairs", data, "--out", out / "margan", "--quiet"], out / "margan.pt"),
    }


@pytest.mark.parametrize("command", ["phantom", "shape", "segment", "calibrate-shape", "calibrate-plan",
                                     "simulate-ci", "mar",
                                     "mar --contacts", "contacts-train", "landmarks train", "vae train",
                                     "vae sample", "vae encode", "margan train"])
def test_a_file_already_there_is_not_replaced_without_force(guarded, tmp_path, capsys, command):
    out = tmp_path / "out"
    argv, target = _existing_output_cases(guarded, out)[command]
    content = _sentinel(target)
    status, err = run(argv, capsys)
    assert_refused(status, err)
    assert "--force" in err and target.name in err
    assert target.read_bytes() == content
    assert [p for p in out.rglob("*") if p.is_file()] == [target]       # nothing else written


def test_force_replaces_what_the_command_writes_and_nothing_else(guarded, tmp_path, capsys):
    out = tmp_path / "out"
    _sentinel(out / "ct.nrrd")
    mine = _sentinel(out / "notes.txt")
    status, err = run(["phantom", "--out", out, "--quiet", "--force"], capsys)
    assert status == 0, err
    assert (out / "ct.nrrd").read_bytes()[:4] == b"NRRD"
    assert (out / "notes.txt").read_bytes() == mine
    assert not list(out.glob(PARTIAL_PREFIX + "*"))


def _input_as_output_cases(data):
    ct = data / "ph" / "ct.nrrd"
    return {
        "mar --out": ["mar", ct, "--out", ct, "--quiet", "--force"],
        "mar --contacts": ["mar", ct, "--out", data / "x.nrrd", "--contacts", ct, "--quiet", "--force"],
        "vae encode --out": ["vae", "encode", "--input", ct, "--out", ct, "--force"],
        "segment --out": ["segment", ct, "--out", data / "ph", "--points", data / "ph" / "landmarks.mrk.json",
                          "--force", "--quiet"],
        "simulate-ci --out": ["simulate-ci", ct, "--out", data / "ph", "--model", data / "ph" / "truth.json",
                              "--force", "--quiet"],
    }


@pytest.mark.parametrize("case", ["mar --out", "mar --contacts", "vae encode --out"])
def test_an_input_is_never_written_over_even_with_force(guarded, capsys, case):
    status, err = run(_input_as_output_cases(guarded)[case], capsys)
    assert_refused(status, err)
    assert not (guarded / "x.nrrd").exists()


def _folder_commands(out):
    return {
        "phantom": ["phantom", "--out", out, "--quiet"],
        "shape": ["shape", "--out", out],
        "segment": ["segment", "{ct}", "--out", out, "--quiet"],
        "simulate-ci": ["simulate-ci", "{ct}", "--out", out, "--quiet"],
        "simulate-pairs": ["simulate-pairs", "--n", "1", "--out", out, "--quiet"],
        "vae sample": ["vae", "sample", "--out", out],
        "landmarks detect": ["landmarks", "detect", "{ct}", "--out", out, "--quiet"],
        "segment-batch": ["segment-batch", "{ct}", "--out", out, "--quiet"],
        "demo": ["demo", "--out", out, "--quiet"],
    }


@pytest.mark.parametrize("where", ["a file", "under a file", "unwritable"])
@pytest.mark.parametrize("command", ["phantom", "shape", "segment", "simulate-ci", "simulate-pairs", "vae sample",
                                     "landmarks detect", "segment-batch", "demo"])
def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(guarded, tmp_path, capsys,
                                                                            command, where):
    blocker = tmp_path / "blocker.txt"
    blocker.write_text("a file")
    out = {"a file": blocker, "under a file": blocker / "out", "unwritable": Path("/proc/cochleaai-test/out")}[where]
    argv = [str(a).replace("{ct}", str(guarded / "ph" / "ct.nrrd")) for a in _folder_commands(out)[command]]
    status, err = run(argv, capsys)
    assert_refused(status, err)
    assert blocker.read_text() == "a file"


def test_the_demo_does_not_write_into_a_folder_of_other_files(tmp_path, capsys):
    mine = _sentinel(tmp_path / "out" / "thesis.docx")
    status, err = run(["demo", "--out", tmp_path / "out", "--quiet"], capsys)
    assert_refused(status, err)
    assert (tmp_path / "out" / "thesis.docx").read_bytes() == mine
    assert len(list((tmp_path / "out").iterdir())) == 1


# ------------------------------------------------------------------ numbers checked when parsed
BAD_NUMBERS = [
    ["phantom", "--seed", "-1", "--out", "{out}"],
    ["phantom", "--seed", "x", "--out", "{out}"],
    ["shape", "--edge", "0", "--out", "{out}"],
    ["shape", "--a", "nan", "--out", "{out}"],
    ["bench", "sdf", "--seed", "-1"],
    ["segment", "{ct}", "--out", "{out}", "--seed", "-1"],
    ["segment", "{ct}", "--out", "{out}", "--iterations", "0"],
    ["segment", "{ct}", "--out", "{out}", "--samples", "-1"],
    ["segment", "{ct}", "--out", "{out}", "--l-ref-fit", "nan"],
    ["segment", "{ct}", "--out", "{out}", "--label-band", "-1"],
    ["segment", "{ct}", "--out", "{out}", "--vestibule-wedge", "120"],
    ["segment-batch", "{ct}", "--out", "{out}", "--workers", "0"],
    ["segment-batch", "{ct}", "--out", "{out}", "--threads", "-1"],
    ["simulate-ci", "{ct}", "--out", "{out}", "--depth", "-5"],
    ["simulate-ci", "{ct}", "--out", "{out}", "--seed", "-1"],
    ["simulate-ci", "{ct}", "--out", "{out}", "--kvp", "80"],
    ["simulate-pairs", "--out", "{out}", "--n", "0"],
    ["simulate-pairs", "--out", "{out}", "--n", "2", "--seed", "1.5"],
    ["mar", "{ct}", "--out", "{out}/r.nrrd", "--max-contacts", "0"],
    ["mar", "{ct}", "--out", "{out}/r.nrrd", "--max-contacts", "-1"],
    ["mar", "{ct}", "--out", "{out}/r.nrrd", "--threshold", "nan"],
    ["mar", "{ct}", "--out", "{out}/r.nrrd", "--threshold", "-1e9"],
    ["mar", "{ct}", "--out", "{out}/r.nrrd", "--threshold", "inf"],
    ["contacts-train", "--pairs", "{out}", "--out", "{out}/m", "--ridge", "-1"],
    ["landmarks", "train", "--specimen", "{out}", "--out", "{out}/m", "--max-steps", "0"],
    ["landmarks", "train", "--specimen", "{out}", "--out", "{out}/m", "--threads", "0"],
    ["landmarks", "train", "--specimen", "{out}", "--out", "{out}/m", "--max-seconds", "-3"],
    ["landmarks", "detect", "{ct}", "--out", "{out}", "--workers", "0"],
    ["vae", "train", "--out", "{out}/m", "--epochs", "0"],
    ["vae", "train", "--out", "{out}/m", "--lr", "-0.1"],
    ["vae", "train", "--out", "{out}/m", "--grid", "25,25"],
    ["vae", "train", "--out", "{out}/m", "--grid", "0,25,30"],
    ["vae", "train", "--out", "{out}/m", "--latent", "0"],
    ["vae", "train", "--out", "{out}/m", "--spacing", "0"],
    ["vae", "sample", "--out", "{out}", "--grid", "0"],
    ["vae", "sample", "--out", "{out}", "--threads", "-1"],
    ["vae", "sample", "--out", "{out}", "--n", "0"],
    ["vae", "encode", "--input", "{ct}", "--samples", "-2"],
    ["vae", "nll", "--k", "0"],
    ["vae", "nll", "--phantoms", "0"],
    ["margan", "train", "--pairs", "{out}", "--out", "{out}/m", "--steps", "0"],
    ["margan", "train", "--pairs", "{out}", "--out", "{out}/m", "--channels", "16"],
    ["margan", "train", "--pairs", "{out}", "--out", "{out}/m", "--lr-g", "0"],
    ["demo", "--out", "{out}", "--seed", "-4"],
]


@pytest.mark.parametrize("argv", BAD_NUMBERS, ids=[" ".join(a[:3]) + " " + " ".join(a[-2:]) for a in BAD_NUMBERS])
def test_a_bad_number_is_refused_when_parsed(guarded, tmp_path, capsys, argv):
    out = tmp_path / "out"
    argv = [a.replace("{ct}", str(guarded / "ph" / "ct.nrrd")).replace("{out}", str(out)) for a in argv]
    status, err = run(argv, capsys)
    assert_refused(status, err)
    assert "argument" in err                       # argparse names the option
    assert_nothing_written(out)


def test_a_negative_number_in_exponent_form_is_read_as_a_value(guarded, tmp_path, capsys):
    status, err = run(["mar", guarded / "ph" / "ct.nrrd", "--out", tmp_path / "r.nrrd", "--threshold", "-1e9"],
                      capsys)
    assert "expected one argument" not in err
    assert "-1024" in err and "-1e+09" in err


# ------------------------------------------------------------------ nonsense that finishes is flagged
def test_a_fit_on_noise_is_written_but_exits_flagged_with_its_reasons(guarded, tmp_path, capsys):
    status, err = run(["segment", guarded / "noise.nrrd", "--out", tmp_path / "out", "--quiet", "--samples", "0",
                       "--iterations", "2"], capsys)
    assert status == EXIT_FLAGGED, err
    assert "warning: the fit is suspect" in err and "Traceback" not in err
    assert (tmp_path / "out" / "labels.seg.nrrd").is_file()


def test_encoding_noise_is_flagged_as_outside_the_model(guarded, tmp_path, capsys):
    status, err = run(["vae", "encode", "--input", guarded / "noise.nrrd"], capsys)
    assert status == EXIT_FLAGGED
    assert "warning:" in err and "outside" in err and "Traceback" not in err


def test_encoding_a_phantom_is_not_flagged(guarded, capsys):
    status, err = run(["vae", "encode", "--input", guarded / "ph" / "ct.nrrd"], capsys)
    assert status == 0, err


def test_a_model_file_of_the_wrong_kind_is_named_as_given(guarded, tmp_path, capsys):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"x")
    status, err = run(["mar", guarded / "ph" / "ct.nrrd", "--out", tmp_path / "r.nrrd", "--contacts",
                       tmp_path / "c.mrk.json", "--contact-refiner", weights, "--quiet"], capsys)
    assert_refused(status, err)
    assert "model.pt" in err and "model.npz" not in err


def test_the_matrix_covers_every_command():
    """Every command of the command line is in the matrix above (a new one must join it)."""
    commands = {"phantom", "shape", "bench", "segment", "segment-batch", "calibrate-shape", "calibrate-plan",
                "simulate-ci", "simulate-pairs", "mar", "contacts-train", "landmarks", "vae", "margan", "demo"}
    covered = {a[0] for a in BAD_NUMBERS}
    covered |= {c.split()[0] for c in _existing_output_cases(Path("d"), Path("o"))}
    covered |= {c.split()[0] for c in _folder_commands(Path("o"))}
    assert commands <= covered
