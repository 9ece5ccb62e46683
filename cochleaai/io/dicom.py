"""A CT series in DICOM, one file per slice."""
from __future__ import annotations

import warnings
from datetime import datetime
from pathlib import Path
from typing import List, Optional

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import format_number_as_ds

from cochleaai.errors import CochleaAIError
from cochleaai.io.image_checks import check_memory, image_information
from cochleaai.volume import Volume

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def read_dicom_series(folder, series_uid: Optional[str] = None) -> Volume:
    """Read one DICOM series from ``folder`` (not its subfolders) as an LPS volume.

    With several series in the folder, the one with the most files is read (and a warning
    says so) unless ``series_uid`` names another.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CochleaAIError(f"The DICOM folder '{folder}' does not exist; select the folder that "
                             "holds the series files.")
    reader = sitk.ImageSeriesReader()
    show_warnings = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)      # our error below says it better
    try:
        series = list(reader.GetGDCMSeriesIDs(str(folder)))
    except RuntimeError:
        series = []
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(show_warnings)
    if not series:
        raise CochleaAIError(f"No DICOM image series found in '{folder}'; select the folder that "
                             "directly contains the .dcm files of one series.")
    files = {sid: list(reader.GetGDCMSeriesFileNames(str(folder), sid)) for sid in series}
    if series_uid is not None:
        if series_uid not in files:
            raise CochleaAIError(f"Series {series_uid} is not in '{folder}'; available: {', '.join(series)}.")
        chosen = series_uid
    else:
        chosen = max(series, key=lambda sid: len(files[sid]))
        if len(series) > 1:
            warnings.warn(f"{len(series)} DICOM series found in '{folder}'; reading series {chosen} "
                          f"({len(files[chosen])} files), the largest. Pass series_uid to choose "
                          "another.", stacklevel=2)
    try:    # the first file's header, times the files, before the reader allocates them all
        size, value_bytes, components = image_information(files[chosen][0])
    except RuntimeError:
        pass    # the series reader below says what is wrong
    else:
        check_memory(f"The DICOM series in '{folder}'", (*size[:2], int(np.prod(size[2:])) * len(files[chosen])),
                     value_bytes, components)
    reader.SetFileNames(files[chosen])
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise CochleaAIError(f"Cannot read the DICOM series in '{folder}': a file is damaged or the "
                             f"slices are inconsistent ({str(exc).strip().splitlines()[-1]}).") from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise CochleaAIError("The DICOM series is a colour/multi-component image; select a CT or MR "
                             "greyscale series.")
    if image.GetDimension() != 3:
        raise CochleaAIError(f"The DICOM series gives a {image.GetDimension()}D image; select a 3D series.")
    return Volume.from_sitk(image)


def _ds(value: float) -> str:
    """A DICOM decimal string (at most 16 characters) as close to ``value`` as possible."""
    value = float(value)
    if value == 0.0:
        return "0"
    return format_number_as_ds(value)


def _save_dicom_file(ds, path: Path) -> None:
    """Write ``ds`` as a DICOM file (128-byte preamble, file meta header), with pydicom 3 and
    with the pydicom 2.4 that Slicer 5.8 ships, whose ``save_as`` has other keywords."""
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(str(path), enforce_file_format=True)
    else:   # pydicom 2: the encoding must be on the dataset; write_like_original=False adds the header
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(str(path), write_like_original=False)


def write_dicom_series(volume: Volume, folder, patient_name: str = "CochleaAI^Phantom",
                       series_description: str = "CochleaAI synthetic CT",
                       patient_id: str = "COCHLEAAI", series_number: int = 1,
                       study_instance_uid: Optional[str] = None) -> List[Path]:
    """Write ``volume`` as a CT image series, one file per slice, into ``folder``.

    Voxels are stored as int16 with RescaleSlope/Intercept: integer volumes that fit int16
    (Hounsfield units) are stored exactly; other volumes are scaled into the int16 range,
    so their values come back rounded to that step. Each call generates new Series, SOP and
    Frame-of-reference UIDs (and a Study UID unless one is given). DICOM cannot describe a
    left-handed voxel grid; such a volume is written slice-reversed (the same image in space).
    Decimal geometry fields hold 16 characters, so positions keep about 1e-10 mm.
    Returns the written file paths, in slice order.
    """
    if not isinstance(volume, Volume):
        raise CochleaAIError(f"write_dicom_series expects a Volume, got {type(volume).__name__}.")
    volume.check_finite("volume to export")
    arr = volume.numeric_array("volume to export")
    direction = volume.direction.copy()
    origin = volume.origin.copy()
    if np.linalg.det(direction) < 0:                      # make k follow row x column
        origin = volume.index_to_physical([0.0, 0.0, arr.shape[0] - 1.0])
        direction[:, 2] *= -1.0
        arr = arr[::-1]

    lo, hi = float(arr.min()), float(arr.max())
    if arr.dtype.kind in "iu" and lo >= -32768 and hi <= 32767:
        slope, intercept = 1.0, 0.0
        stored = arr.astype(np.int16)
    else:
        slope = (hi - lo) / 65535.0 if hi > lo else 1.0
        intercept = lo + 32768.0 * slope
        stored = np.clip(np.round((arr.astype(np.float64) - intercept) / slope),
                         -32768, 32767).astype(np.int16)

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CochleaAIError(f"Cannot create the DICOM folder '{folder}' ({exc}).") from exc

    study_uid = study_instance_uid or generate_uid()
    series_uid = generate_uid()
    frame_uid = generate_uid()
    now = datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    sx, sy, sz = (float(s) for s in volume.spacing)
    row_dir, col_dir, slice_dir = direction[:, 0], direction[:, 1], direction[:, 2]
    window_center = (hi + lo) / 2.0 if arr.dtype.kind == "f" else 400.0
    window_width = max(hi - lo, 1.0) if arr.dtype.kind == "f" else 2000.0

    paths = []
    for k in range(stored.shape[0]):
        sop_uid = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

        ds = Dataset()
        ds.file_meta = meta
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
        ds.StudyTime = ds.SeriesTime = ds.ContentTime = time
        ds.AccessionNumber = ""
        ds.Modality = "CT"
        ds.Manufacturer = "CochleaAI"
        ds.ReferringPhysicianName = ""
        ds.StudyDescription = "CochleaAI"
        ds.SeriesDescription = str(series_description)[:64]
        ds.PatientName = str(patient_name)
        ds.PatientID = str(patient_id)
        ds.PatientBirthDate = ""
        ds.PatientSex = ""
        ds.SliceThickness = _ds(sz)
        ds.KVP = "120"
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = int(series_number)
        ds.InstanceNumber = k + 1
        position = origin + k * sz * slice_dir
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = [_ds(v) for v in np.concatenate([row_dir, col_dir])]
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = _ds(float(np.dot(position, slice_dir)))
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = int(stored.shape[1]), int(stored.shape[2])
        ds.PixelSpacing = [_ds(sy), _ds(sx)]           # (between rows, between columns)
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.WindowCenter = _ds(window_center)
        ds.WindowWidth = _ds(window_width)
        ds.RescaleIntercept = _ds(intercept)
        ds.RescaleSlope = _ds(slope)
        ds.RescaleType = "HU"
        ds.PixelData = np.ascontiguousarray(stored[k]).astype("<i2").tobytes()

        path = folder / f"slice_{k:04d}.dcm"
        try:
            _save_dicom_file(ds, path)
        except OSError as exc:
            raise CochleaAIError(f"Cannot write '{path}' ({exc}); check the folder is writable.") from exc
        paths.append(path)
    return paths
