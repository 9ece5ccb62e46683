"""The Sample Data entries: the real specimen ships with the extension (its checksum and the
check of the file); both registrations as Slicer's Sample Data module takes them
(``sample_data_stand_in``, which refuses what Slicer refuses)."""
from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import pytest
from sample_data_stand_in import SampleDataLogic, SampleDataSource

from cochleaai.errors import CochleaAIError
from cochleaai.io import read_volume
from cochleaai.slicer.sample_data import CATEGORY, EXTENSION_ICON, PHANTOM, REAL_SPECIMEN, registration, thumbnail, verify

ROOT = Path(__file__).resolve().parents[2]


def test_registration_arguments():
    args = registration(REAL_SPECIMEN, print, "icon.png")
    assert args["category"] == CATEGORY and args["sampleName"] == REAL_SPECIMEN.name
    assert args["uris"] == args["fileNames"] == [] and args["customDownloader"] is print
    assert args["thumbnailFileName"] == "icon.png"
    assert "doi:10.1016/j.dib.2019.104782" in REAL_SPECIMEN.citation


def test_the_real_specimen_ships_with_the_extension_and_is_checked(tmp_path):
    """Offline: the file is in the source tree (installed with the common library by
    CMakeLists.txt), small, the data set's CT, and a changed copy is refused."""
    path = REAL_SPECIMEN.path
    assert path.is_relative_to(ROOT / "Resources" / "SampleData") and verify(path, REAL_SPECIMEN) == path
    assert path.stat().st_size < 3_000_000
    assert "Resources/SampleData" in (ROOT / "CMakeLists.txt").read_text()
    ct = read_volume(path)
    assert ct.array.ndim == 3 and float(ct.array.max()) > 1000 and float(ct.array.min()) < -500
    changed = tmp_path / REAL_SPECIMEN.file_name
    shutil.copyfile(path, changed)
    with open(changed, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(CochleaAIError, match="reinstall"):
        verify(changed, REAL_SPECIMEN)


def test_no_entry_depends_on_a_download():
    """No release upload to depend on: no URL in the sample entries' module."""
    source = (ROOT / "cochleaai" / "slicer" / "sample_data.py").read_text()
    assert "https://" not in source and "releases/download" not in source


def test_a_missing_or_wrong_file_is_refused(tmp_path):
    with pytest.raises(CochleaAIError, match="missing.*reinstall"):
        verify(tmp_path / "absent.nii.gz", REAL_SPECIMEN)
    (tmp_path / "other.nii.gz").write_bytes(b"not the specimen")
    with pytest.raises(CochleaAIError, match="not the published"):
        verify(tmp_path / "other.nii.gz", REAL_SPECIMEN)


def test_the_stand_in_refuses_what_slicer_refuses():
    """Slicer's ``SampleDataSource`` takes ``len()`` of uris and fileNames and wants every
    per-file field as long as uris."""
    with pytest.raises(TypeError):                  # a custom downloader alone (Slicer 5.8-5.12)
        SampleDataSource(sampleName="made on click", customDownloader=print)
    with pytest.raises(TypeError):                  # a list of URIs without file names
        SampleDataSource(sampleName="s", uris=["https://x/a.nrrd"])
    with pytest.raises(ValueError, match="same length"):
        SampleDataSource(sampleName="s", uris=["https://x/a.nrrd"], fileNames=["a.nrrd", "b.nrrd"])
    with pytest.raises(ValueError, match="at the same time"):
        SampleDataSource(sampleName="s", uris="https://x/a", fileNames="a", loadFileType="VolumeFile",
                         loadFileTypes="VolumeFile")
    one = SampleDataSource(sampleName="s", uris="https://x/a.nrrd", fileNames="a.nrrd", checksums="SHA256:0")
    assert one.fileNames == ["a.nrrd"] and one.nodeNames == [None] and one.checksums == ["SHA256:0"]
    assert one.sampleDescription == "s" and one.loadFileProperties == {}


@pytest.fixture
def sample_data_module(monkeypatch):
    """``slicer.modules``, where Slicer's Sample Data module keeps the registered sources."""
    monkeypatch.setitem(sys.modules, "slicer", types.SimpleNamespace(modules=types.SimpleNamespace()))
    return sys.modules["slicer"].modules


def test_both_entries_register_as_slicer_takes_them(sample_data_module):
    clicked = []
    loaded = []
    SampleDataLogic.registerCustomSampleDataSource(**registration(REAL_SPECIMEN, loaded.append, thumbnail()))
    SampleDataLogic.registerCustomSampleDataSource(**registration(PHANTOM, clicked.append, thumbnail()))
    SampleDataLogic.registerCustomSampleDataSource(**registration(REAL_SPECIMEN, loaded.append, thumbnail()))  # once
    real, phantom = sample_data_module.sampleDataSources[CATEGORY]
    assert real.sampleName == REAL_SPECIMEN.name and real.uris == real.fileNames == []
    assert phantom.sampleName == PHANTOM.name and phantom.uris == phantom.fileNames == []
    assert real.thumbnailFileName == phantom.thumbnailFileName == str(EXTENSION_ICON)
    phantom.customDownloader(phantom)
    real.customDownloader(real)
    assert clicked == [phantom] and loaded == [real]
