"""The Sample Data entries: the real specimen's checksum and the check of a downloaded file,
on local files (nothing downloads here); both registrations as Slicer's Sample Data module
takes them (``sample_data_stand_in``, which refuses what Slicer refuses)."""
from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import pytest
from sample_data_stand_in import SampleDataLogic, SampleDataSource

from cochleaai.errors import CochleaAIError
from cochleaai.slicer.sample_data import (CATEGORY,
                                         EXTENSION_ICON,
                                         PHANTOM,
                                         REAL_SPECIMEN,
                                         RELEASE_URL,
                                         generated_registration,
                                         registration,
                                         thumbnail,
                                         verify)

LOCAL_COPY = (Path(__file__).resolve().parents[3] / "shared" / "data" / "real-ct" / "wimmer2019" / "T02" /
              REAL_SPECIMEN.file_name)


def test_registration_arguments():
    args = registration(REAL_SPECIMEN, "icon.png")
    assert args["category"] == CATEGORY and args["sampleName"] == REAL_SPECIMEN.name
    assert args["uris"] == [RELEASE_URL + REAL_SPECIMEN.file_name] and args["fileNames"] == [REAL_SPECIMEN.file_name]
    assert args["checksums"] == [f"SHA256:{REAL_SPECIMEN.sha256}"] and args["thumbnailFileName"] == "icon.png"
    assert "doi:10.1016/j.dib.2019.104782" in REAL_SPECIMEN.citation


def test_the_checksum_is_the_development_copy_s(tmp_path):
    if not LOCAL_COPY.is_file():
        pytest.skip("the development data (../shared/data/real-ct) is not beside this checkout")
    assert verify(LOCAL_COPY, REAL_SPECIMEN) == LOCAL_COPY
    changed = tmp_path / REAL_SPECIMEN.file_name
    shutil.copyfile(LOCAL_COPY, changed)
    with open(changed, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(CochleaAIError, match="download it again"):
        verify(changed, REAL_SPECIMEN)


def test_a_missing_or_wrong_file_is_refused(tmp_path):
    with pytest.raises(CochleaAIError, match="missing"):
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
    SampleDataLogic.registerCustomSampleDataSource(**registration(REAL_SPECIMEN, thumbnail()))
    SampleDataLogic.registerCustomSampleDataSource(**generated_registration(PHANTOM, clicked.append, thumbnail()))
    SampleDataLogic.registerCustomSampleDataSource(**registration(REAL_SPECIMEN, thumbnail()))    # once
    real, phantom = sample_data_module.sampleDataSources[CATEGORY]
    assert real.sampleName == REAL_SPECIMEN.name and real.loadFileTypes == ["VolumeFile"]
    assert phantom.sampleName == PHANTOM.name and phantom.uris == phantom.fileNames == []
    assert real.thumbnailFileName == phantom.thumbnailFileName == str(EXTENSION_ICON)
    phantom.customDownloader(phantom)
    assert clicked == [phantom]
