"""Damaged, cut-off and oversized image files are refused with one clear sentence, before
SimpleITK reads them; the intact files still load bit-identically. Every file is written here."""
from __future__ import annotations

import gzip
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cochleaai.errors import CochleaAIError
from cochleaai.io import read_dicom_series, read_volume, write_dicom_series, write_volume
from cochleaai.volume import Volume

ROOT = Path(__file__).resolve().parents[3]
LIMIT_ENV = "COCHLEAAI_MEMORY_LIMIT_GB"


@pytest.fixture
def ct() -> Volume:
    """Random HU values: any damage to the compressed data changes voxels."""
    array = np.random.default_rng(0).integers(-1000, 3000, size=(20, 30, 40)).astype(np.int16)
    return Volume(array, spacing=(0.1, 0.1, 0.1))


def written(ct: Volume, folder: Path, name: str, compress: bool) -> Path:
    """``ct`` written to ``folder/name``, checked to load back bit-identically."""
    path = write_volume(ct, folder / name, compress=compress)
    assert np.array_equal(read_volume(path).array, ct.array)
    return path


def data_file(path: Path) -> Path:
    """The file that holds the voxels: the header's own, or the one beside a .nhdr/.mhd."""
    return next((p for p in path.parent.iterdir() if p != path), path)


def zero_middle(path: Path) -> None:
    """Eight zero bytes in the middle of the compressed voxels: the stream still inflates
    (SimpleITK reads half garbage), its checksum no longer matches."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2:len(data) // 2 + 8] = bytes(8)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["ct.nrrd", "ct.nhdr", "ct.mha", "ct.mhd"])
def test_compressed_data_with_a_checksum_error_are_refused(tmp_path, ct, name):
    path = written(ct, tmp_path, name, compress=True)
    zero_middle(data_file(path))
    with pytest.raises(CochleaAIError, match=r"is damaged: .*\((CRC|Adler-32 checksum) error\)") as info:
        read_volume(path)
    assert data_file(path).name in str(info.value)


@pytest.mark.parametrize("name,compress", [("ct.nii", False), ("ct.nii.gz", True), ("ct.nrrd", False),
                                           ("ct.nrrd", True), ("ct.nhdr", False), ("ct.mha", False),
                                           ("ct.mha", True), ("ct.mhd", False)])
def test_cut_off_files_are_refused(tmp_path, ct, name, compress):
    path = written(ct, tmp_path, name, compress)
    data = data_file(path)
    data.write_bytes(data.read_bytes()[:data.stat().st_size * 2 // 3])
    with pytest.raises(CochleaAIError, match="is shorter than its header says"):
        read_volume(path)


def test_a_header_without_its_data_file_says_which_file_is_missing(tmp_path, ct):
    """(SimpleITK already names a missing NRRD data file; not a MetaImage one.)"""
    path = written(ct, tmp_path, "ct.mhd", compress=False)
    data_file(path).unlink()
    with pytest.raises(CochleaAIError, match=r"keeps its voxels in 'ct\.raw', which is not beside it"):
        read_volume(path)


def huge_claim(folder: Path, ext: str, side: int = 2000) -> Path:
    """A few hundred bytes whose header claims side^3 int16 voxels."""
    path = folder / f"huge{ext}"
    if ext == ".nrrd":
        header = f"NRRD0004\ntype: short\ndimension: 3\nsizes: {side} {side} {side}\nendian: little\nencoding: gzip\n\n"
        path.write_bytes(header.encode() + gzip.compress(bytes(1000)))
    elif ext == ".mha":
        header = (f"ObjectType = Image\nNDims = 3\nDimSize = {side} {side} {side}\nElementType = MET_SHORT\n"
                  "ElementDataFile = LOCAL\n")
        path.write_bytes(header.encode() + bytes(1000))
    else:
        sitk.WriteImage(sitk.Image([4, 4, 4], sitk.sitkInt16), str(path))
        with open(path, "r+b") as handle:
            handle.seek(42)                               # dim[1:4] of the NIfTI-1 header
            handle.write(struct.pack("<3h", side, side, side))
    return path


@pytest.mark.parametrize("ext", [".nrrd", ".nii", ".mha"])
@pytest.mark.parametrize("limit_gb,message", [("8", r"2000 x 2000 x 2000 = 8\.00e9 voxels, 16\.0 GB.*8\.0 GB"),
                                              ("1000", "is shorter than its header says")],
                         ids=["beyond-the-limit", "within-the-limit"])
def test_a_huge_claim_is_refused_before_memory_is_spent(tmp_path, monkeypatch, ext, limit_gb, message):
    """Beyond the memory limit the size is refused; within it, the missing data are."""
    path = huge_claim(tmp_path, ext)

    def read_image(*args, **kwargs):
        raise AssertionError("SimpleITK was asked to read the image")
    monkeypatch.setattr(sitk, "ReadImage", read_image)
    monkeypatch.setenv(LIMIT_ENV, limit_gb)
    start = time.perf_counter()
    with pytest.raises(CochleaAIError, match=message):
        read_volume(path)
    assert time.perf_counter() - start < 5.0


def test_a_ct_of_usual_size_passes_the_memory_check(tmp_path, monkeypatch):
    """512 x 512 x 400 int16 (210 MB) is never refused for its size on the memory here."""
    monkeypatch.delenv(LIMIT_ENV, raising=False)
    path = tmp_path / "ct.nrrd"
    path.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 512 512 400\nendian: little\n"
                     b"encoding: raw\n\n" + bytes(100))
    with pytest.raises(CochleaAIError, match="is shorter than its header says"):
        read_volume(path)


def test_a_dicom_series_beyond_the_memory_limit_is_refused(tmp_path, monkeypatch, ct):
    write_dicom_series(ct, tmp_path)
    monkeypatch.setenv(LIMIT_ENV, "0.0001")
    with pytest.raises(CochleaAIError, match="DICOM series .* claims 40 x 30 x 20 = 2.40e4 voxels"):
        read_dicom_series(tmp_path)


@pytest.mark.parametrize("odd", ["uncompressed .nii.gz", "bytes after the gzip stream", "two gzip members"])
def test_files_that_simpleitk_reads_whole_are_not_refused(tmp_path, ct, odd):
    """Like zlib's gzread, the check reads uncompressed data under a .gz name, ignores what
    follows the stream and reads on into a next gzip member."""
    nii = write_volume(ct, tmp_path / "ct.nii", compress=False).read_bytes()
    path = tmp_path / "odd.nii.gz"
    if odd == "uncompressed .nii.gz":
        path.write_bytes(nii)
    elif odd == "bytes after the gzip stream":
        path.write_bytes(gzip.compress(nii) + b"not gzip" * 10)
    else:
        path.write_bytes(gzip.compress(nii[:1000]) + gzip.compress(nii[1000:]))
    assert np.array_equal(read_volume(path).array, ct.array)


def test_the_command_line_says_so_in_one_line(tmp_path, ct):
    path = written(ct, tmp_path, "ct.nrrd", compress=True)
    zero_middle(path)
    out = subprocess.run([sys.executable, "-m", "cochleaai", "segment", str(path), "--out", str(tmp_path / "out"),
                          "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and len(lines) == 1, out.stderr
    assert lines[0].startswith("error: 'ct.nrrd' is damaged")
