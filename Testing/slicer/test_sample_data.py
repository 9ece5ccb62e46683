"""The Sample Data entries: the real specimen's checksum and the check of a downloaded file,
on local files (nothing downloads here)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cochleaai.errors import CochleaAIError
from cochleaai.slicer.sample_data import CATEGORY, REAL_SPECIMEN, RELEASE_URL, registration, verify

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
