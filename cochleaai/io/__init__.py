"""Files: images (NRRD, NIfTI, MetaImage, DICOM), Slicer segmentations and markups.

Nothing here imports Slicer. Every reader returns core types in **LPS** millimetres:

* :func:`read_volume` / :func:`write_volume`: scalar 3D images through SimpleITK.
* :func:`read_dicom_series` / :func:`write_dicom_series`: a CT series (one file per slice).
* :func:`read_seg_nrrd` / :func:`write_seg_nrrd`: Slicer's ``.seg.nrrd`` segmentation file,
  segments possibly overlapping (stored as several *layers* of a 4D NRRD), through slicerio.
* :func:`read_markups` / :func:`write_markups_json`: Slicer markups (``.mrk.json``, legacy
  ``.fcsv``) as a :class:`Markups` point list.

Array order: ``Volume.array`` is ``(z, y, x)``; NRRD files list their axes ``x, y, z``
(pynrrd's default ``index_order="F"``, which slicerio uses, keeps that order), so arrays are
transposed on the way in and out. Errors the user can cause raise :class:`CochleaAIError`;
inputs are never modified.
"""
from __future__ import annotations

import csv
import json
import math
import re
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.segments import Segment
from cochleaai.terminology import terminology_entry
from cochleaai.volume import LPS_TO_RAS, Volume, lps_to_ras, ras_to_lps

__all__ = [
    "VOLUME_EXTENSIONS", "read_volume", "write_volume",
    "read_dicom_series", "write_dicom_series",
    "LABEL_VALUE_TAG", "segment_id_from_name", "check_segments", "pack_segments_into_layers",
    "slicer_geometry_string", "write_seg_nrrd", "read_seg_nrrd",
    "Markups", "MARKUPS_SCHEMA", "write_markups_json", "read_markups",
]

# --------------------------------------------------------------------------- helpers

VOLUME_EXTENSIONS = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


def sha256_of(path) -> str:
    """Hex SHA-256 of a file (model weights and physics tables are checked against it)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _extension(path) -> str:
    """Lower-case extension, keeping the double ones that matter (``.nii.gz``, ``.seg.nrrd``)."""
    name = Path(path).name.lower()
    for double in (".seg.nrrd", ".seg.nhdr", ".nii.gz", ".mrk.json"):
        if name.endswith(double):
            return double
    return Path(name).suffix


def _require_file(path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise CochleaAIError(f"The {what} file '{path}' does not exist; check the path.")
    if not path.is_file():
        raise CochleaAIError(f"'{path}' is a folder, not a {what} file; select the file itself.")
    return path


def _prepare_output(path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CochleaAIError(f"Cannot create the folder '{path.parent}' ({exc}); "
                             "choose a writable output location.") from exc
    return path


# --------------------------------------------------------------------------- volumes

def read_volume(path) -> Volume:
    """Read a scalar 3D image (.nrrd, .nhdr, .nii, .nii.gz, .mha, .mhd) with its LPS geometry."""
    import SimpleITK as sitk

    path = _require_file(path, "image")
    ext = _extension(path)
    if ext in (".seg.nrrd", ".seg.nhdr"):
        raise CochleaAIError(f"'{path.name}' is a Slicer segmentation; read it with read_seg_nrrd().")
    if ext not in VOLUME_EXTENSIONS:
        raise CochleaAIError(f"Unknown image file type '{ext or path.name}'; use one of "
                             f"{', '.join(VOLUME_EXTENSIONS)} (or read_dicom_series for a DICOM folder).")
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
        raise CochleaAIError(f"Cannot read '{path.name}': the file is damaged or not a valid "
                             f"{ext} image ({first}). Re-export it from its source.") from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise CochleaAIError(
            f"'{path.name}' holds {image.GetNumberOfComponentsPerPixel()} values per voxel "
            "(a vector, colour or layered segmentation image); select a scalar 3D volume.")
    if image.GetDimension() != 3:
        raise CochleaAIError(f"'{path.name}' is a {image.GetDimension()}D image; select a 3D volume.")
    return Volume.from_sitk(image)


def write_volume(volume: Volume, path, compress: bool = True) -> Path:
    """Write ``volume`` to .nrrd/.nhdr/.nii/.nii.gz/.mha/.mhd; returns the path written.

    NRRD and MetaImage keep the geometry to double precision; NIfTI stores it in single
    precision (about 1e-6 mm), a limit of that format.
    """
    import SimpleITK as sitk

    if not isinstance(volume, Volume):
        raise CochleaAIError(f"write_volume expects a Volume, got {type(volume).__name__}.")
    ext = _extension(path)
    if ext not in VOLUME_EXTENSIONS:
        raise CochleaAIError(f"Unknown image file type '{ext or Path(path).name}'; use one of "
                             f"{', '.join(VOLUME_EXTENSIONS)}.")
    path = _prepare_output(path)
    image = volume.to_sitk()
    try:
        sitk.WriteImage(image, str(path), bool(compress))
    except RuntimeError as exc:
        raise CochleaAIError(f"Cannot write '{path}' ({str(exc).strip().splitlines()[-1]}); "
                             "check that the folder is writable and the disk not full.") from exc
    return path


# --------------------------------------------------------------------------- DICOM

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def read_dicom_series(folder, series_uid: Optional[str] = None) -> Volume:
    """Read one DICOM series from ``folder`` (not its subfolders) as an LPS volume.

    With several series in the folder, the one with the most files is read (and a warning
    says so) unless ``series_uid`` names another.
    """
    import SimpleITK as sitk

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
    from pydicom.valuerep import format_number_as_ds

    value = float(value)
    if value == 0.0:
        return "0"
    return format_number_as_ds(value)


def _save_dicom_file(ds, path: Path) -> None:
    """Write ``ds`` as a DICOM file (128-byte preamble, file meta header), with pydicom 3 and
    with the pydicom 2.4 that Slicer 5.8 ships, whose ``save_as`` has other keywords."""
    import pydicom

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
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

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


# --------------------------------------------------------------------------- segmentations

_BINARY_LABELMAP = "Binary labelmap"
_CLOSED_SURFACE = "Closed surface"
# Segment tag keeping ``Segment.value`` when Slicer renumbers label values inside shared layers.
LABEL_VALUE_TAG = "CochleaAI.LabelValue"


def segment_id_from_name(name: str, taken: Sequence[str] = ()) -> str:
    """A stable segment ID from a display name ("Scala tympani" -> "Scala_tympani").

    A suffix ``_2``, ``_3``, ... makes it unique among ``taken``.
    """
    base = re.sub(r"[^0-9A-Za-z]+", "_", str(name)).strip("_") or "Segment"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    return candidate


def check_segments(segments, shape) -> List[Tuple[Segment, np.ndarray]]:
    """Validate ``(Segment, mask)`` pairs against a volume shape; masks returned as new bool arrays."""
    checked = []
    for item in segments:
        try:
            seg, mask = item
        except (TypeError, ValueError):
            raise CochleaAIError("segments must be a list of (Segment, mask) pairs.") from None
        if not isinstance(seg, Segment):
            raise CochleaAIError(f"Expected a Segment, got {type(seg).__name__}.")
        mask = np.asarray(mask)
        if mask.shape != tuple(shape):
            raise CochleaAIError(f"The mask of segment '{seg.name}' has shape {mask.shape}, but the "
                                 f"reference volume has {tuple(shape)}; resample it onto the reference first.")
        if int(seg.value) <= 0 or int(seg.value) > 65535:
            raise CochleaAIError(f"Segment '{seg.name}' has label value {seg.value}; use 1..65535.")
        checked.append((seg, mask != 0))
    return checked


def pack_segments_into_layers(segments, shape) -> Tuple[List[np.ndarray], List[int]]:
    """Greedily put (possibly overlapping) masks into as few label layers as needed.

    A segment joins the first layer where it overlaps no voxel already used and where its
    label value is free; otherwise it opens a new layer. Returns the layers (integer arrays of
    ``shape`` whose voxels hold label values) and the layer index of each segment.
    """
    checked = check_segments(segments, shape)
    max_value = max((int(s.value) for s, _ in checked), default=1)
    dtype = np.uint8 if max_value <= 255 else np.uint16
    layers: List[np.ndarray] = []
    used_values: List[set] = []
    where: List[int] = []
    for seg, mask in checked:
        value = int(seg.value)
        for index, layer in enumerate(layers):
            if value not in used_values[index] and not np.any(layer[mask]):
                break
        else:
            layers.append(np.zeros(shape, dtype=dtype))
            used_values.append(set())
            index = len(layers) - 1
        layers[index][mask] = value
        used_values[index].add(value)
        where.append(index)
    return layers, where


def _extent(mask: np.ndarray) -> List[int]:
    """Slicer's segment extent ``[i0, i1, j0, j1, k0, k1]`` of the non-zero voxels of a (z, y, x) mask."""
    if not mask.any():
        return [0, -1, 0, -1, 0, -1]
    k, j, i = np.nonzero(mask)
    return [int(v) for axis in (i, j, k) for v in (axis.min(), axis.max())]


def _num(value: float) -> str:
    """Shortest text that reads back as the same double."""
    value = float(value)
    if value == 0.0:
        return "0"
    return repr(value)


def slicer_geometry_string(reference: Volume) -> str:
    """Slicer's serialized "Reference image geometry" of a Volume: IJK-to-RAS (row-major) and extent."""
    ijk_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ reference.index_to_physical_matrix
    nx, ny, nz = reference.size
    values = [_num(v) for v in ijk_to_ras.reshape(-1)] + [str(v) for v in (0, nx - 1, 0, ny - 1, 0, nz - 1)]
    return ";".join(values) + ";"


def _clean_text(text: str) -> str:
    return str(text).replace("\n", " ").replace("\r", " ")


def write_seg_nrrd(path, segments, reference: Volume, closed_surface: bool = True,
                   compress: bool = True, side: Optional[str] = None) -> Path:
    """Write segments as a Slicer segmentation file (``.seg.nrrd`` or ``.seg.nhdr``).

    ``segments``: list of ``(Segment, mask)``; masks are arrays shaped like ``reference.array``
    (non-zero = inside) and may overlap. They are packed into as few layers as possible: one
    layer gives a 3D NRRD, several give a 4D NRRD whose first axis (kind ``list``) is the
    layer, as Slicer writes it. Each segment keeps its name, colour and label value; its ID is
    derived from its name, and segments of the cochlea get their standard terminology
    (``side`` "left" or "right", if known). ``closed_surface`` asks Slicer to build the 3D
    surfaces on loading. The file itself is written by slicerio.
    """
    if not isinstance(reference, Volume):
        raise CochleaAIError("write_seg_nrrd needs the reference Volume that gives the geometry.")
    if not str(path).lower().endswith((".nrrd", ".nhdr")):
        raise CochleaAIError(f"A Slicer segmentation file must end in .seg.nrrd (got '{Path(path).name}').")
    import slicerio
    from slicerio.segmentation import terminology_entry_from_string

    checked = check_segments(segments, reference.shape)
    # slicerio's own add_segment renumbers the labels; packing here keeps Segment.value.
    layers, layer_of = pack_segments_into_layers(checked, reference.shape)
    if not layers:                                        # an empty segmentation still stores geometry
        layers = [np.zeros(reference.shape, dtype=np.uint8)]
    voxels = layers[0].transpose(2, 1, 0) if len(layers) == 1 else \
        np.stack(layers, axis=0).transpose(0, 3, 2, 1)     # (z, y, x) -> (layer,) x, y, z

    taken: List[str] = []
    records = []
    for (seg, mask), layer in zip(checked, layer_of):
        seg_id = segment_id_from_name(seg.name, taken)
        taken.append(seg_id)
        record = {"id": seg_id, "name": _clean_text(seg.name), "nameAutoGenerated": False,
                  "color": [min(max(float(c), 0.0), 1.0) for c in seg.color], "colorAutoGenerated": False,
                  "labelValue": int(seg.value), "layer": int(layer), "extent": _extent(mask),
                  "tags": {LABEL_VALUE_TAG: str(int(seg.value))}, "status": "completed"}
        entry = terminology_entry(str(seg.name), side)
        if entry is not None:
            record["terminology"] = terminology_entry_from_string(entry)
        records.append(record)
    segmentation = {
        "voxels": np.ascontiguousarray(voxels),
        "ijkToLPS": reference.index_to_physical_matrix,
        "encoding": "gzip" if compress else "raw",
        "masterRepresentation": _BINARY_LABELMAP,
        "containedRepresentationNames": [_BINARY_LABELMAP] + ([_CLOSED_SURFACE] if closed_surface else []),
        "referenceImageExtentOffset": [0, 0, 0],
        # The reference geometry keeps Slicer's labelmaps on this grid. Given as the raw field:
        # Slicer drops a last parameter that does not end in "&", which slicerio leaves out.
        "Segmentation_ConversionParameters": (
            "Reference image geometry|" + slicer_geometry_string(reference)
            + "|Geometry (IJK-to-RAS matrix and extent) of the labelmaps made by conversion.&"),
        "segments": records,
    }

    path = _prepare_output(path)
    try:
        slicerio.write_segmentation(str(path), segmentation, compression_level=6)
    except OSError as exc:
        raise CochleaAIError(f"Cannot write '{path}' ({exc}); check that the folder is writable.") from exc
    return path


def _auto_color(value: int) -> Tuple[float, float, float]:
    """A deterministic, well-spread colour for a label that has none."""
    import colorsys

    return tuple(float(c) for c in colorsys.hsv_to_rgb((value * 0.618033988749895) % 1.0, 0.65, 0.9))


def read_seg_nrrd(path) -> Tuple[Volume, List[Tuple[Segment, np.ndarray]]]:
    """Read a Slicer segmentation (.seg.nrrd/.seg.nhdr, 3D or 4D layered) or a plain labelmap NRRD.

    Returns ``(reference, segments)``: ``reference`` is a Volume with the file's voxel grid
    (LPS geometry, an all-zero uint8 array) and ``segments`` a list of ``(Segment, mask)`` with
    boolean masks shaped like ``reference.array``. A NRRD without segment fields gives one
    segment per non-zero label value. The file is parsed by slicerio (LPS or RAS space).
    """
    import slicerio

    path = _require_file(path, "segmentation")
    try:
        segmentation = slicerio.read_segmentation(str(path))
        voxels = np.asarray(segmentation["voxels"])
        ijk_to_lps = np.asarray(segmentation["ijkToLPS"], dtype=float)
    except Exception as exc:  # pynrrd and slicerio raise several types for damaged files
        raise CochleaAIError(f"Cannot read '{path.name}' as a NRRD segmentation ({exc}); the file is "
                             "damaged or not a Slicer segmentation file.") from exc
    if voxels.ndim not in (3, 4):
        raise CochleaAIError(f"'{path.name}' is not a 3D (or layered 4D) segmentation: it has "
                             f"{voxels.ndim} axes.")
    if voxels.dtype.kind not in "iub":
        if voxels.dtype.kind == "f" and np.all(np.isfinite(voxels)):
            voxels = np.trunc(voxels).astype(np.int64)
        else:
            raise CochleaAIError(f"'{path.name}' holds {voxels.dtype} voxels; a segmentation needs labels.")
    layers = (voxels if voxels.ndim == 4 else voxels[np.newaxis]).transpose(0, 3, 2, 1)   # (layer, z, y, x)

    axes = ijk_to_lps[:3, :3]                                  # columns: i, j, k steps in LPS
    spacing = np.linalg.norm(axes, axis=0)
    if np.any(spacing <= 0):
        raise CochleaAIError(f"'{path.name}' has a zero-length voxel axis.")
    try:
        reference = Volume(np.zeros(layers.shape[1:], dtype=np.uint8), spacing, ijk_to_lps[:3, 3],
                           axes / spacing)
    except CochleaAIError as exc:
        raise CochleaAIError(f"'{path.name}' has an unusable geometry: {exc}") from exc

    segments: List[Tuple[Segment, np.ndarray]] = []
    records = segmentation.get("segments") or []
    if not records:                                          # a plain labelmap
        for layer in layers:
            for value in np.unique(layer):
                if value != 0:
                    segments.append((Segment(int(value), f"Segment_{int(value)}", _auto_color(int(value))),
                                     layer == value))
        return reference, segments

    for n, record in enumerate(records):
        name = str(record.get("name", record["id"]))
        value = int(record.get("labelValue", 1))
        # files of Slicer versions before shared layers have one segment per layer and no Layer field
        layer_index = int(record.get("layer", n if layers.shape[0] > 1 else 0))
        if not 0 <= layer_index < layers.shape[0]:
            raise CochleaAIError(f"Segment '{name}' refers to layer {layer_index}, but '{path.name}' "
                                 f"has {layers.shape[0]}; the file is inconsistent.")
        color = record.get("color")
        if color is not None and len(color) < 3:
            raise CochleaAIError(f"Malformed colour {color} of segment '{name}' in '{path.name}'.")
        color = tuple(float(c) for c in color[:3]) if color is not None else _auto_color(value)
        mask = layers[layer_index] == value
        e = record.get("extent")
        if e is not None:                      # voxels of the label outside the extent are not the segment's
            if len(e) < 6:
                raise CochleaAIError(f"Malformed extent {e} of segment '{name}' in '{path.name}'.")
            inside = np.zeros_like(mask)
            if e[0] <= e[1] and e[2] <= e[3] and e[4] <= e[5]:
                inside[max(e[4], 0):e[5] + 1, max(e[2], 0):e[3] + 1, max(e[0], 0):e[1] + 1] = True
            mask &= inside
        original = str(record.get("tags", {}).get(LABEL_VALUE_TAG, "")).strip()
        segment_value = int(original) if re.fullmatch(r"-?\d+", original) else value
        segments.append((Segment(segment_value, name, color), mask))
    return reference, segments


# --------------------------------------------------------------------------- markups

MARKUPS_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/"
                  "Markups/Resources/Schema/markups-schema-v1.0.3.json#")
_KIND_TO_TYPE = {"point": "Fiducial", "curve": "Curve"}
_TYPE_TO_KIND = {"fiducial": "point", "curve": "curve", "closedcurve": "curve"}


@dataclass
class Markups:
    """A named list of points in **LPS** millimetres, as a point list or an open curve.

    ``points``: ``(N, 3)``; ``labels``: one per point (default ``"<name>-<n>"``);
    ``kind``: ``"point"`` (Slicer point list) or ``"curve"``; ``descriptions``: optional,
    one per point.
    """

    points: np.ndarray
    labels: Optional[List[str]] = None
    kind: str = "point"
    name: str = "Points"
    descriptions: Optional[List[str]] = None

    def __post_init__(self):
        pts = np.array(self.points, dtype=float, copy=True)
        if pts.size == 0:
            pts = pts.reshape(0, 3)
        if pts.ndim == 1 and pts.size == 3:
            pts = pts.reshape(1, 3)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise CochleaAIError(f"Markup points must be an (N, 3) array, got shape {pts.shape}.")
        if not np.all(np.isfinite(pts)):
            raise CochleaAIError("Markup points contain NaN or infinite coordinates.")
        self.points = pts
        self.name = str(self.name)
        if self.kind not in _KIND_TO_TYPE:
            raise CochleaAIError(f"Markups kind must be 'point' or 'curve', got {self.kind!r}.")
        if self.labels is None:
            self.labels = [f"{self.name}-{i + 1}" for i in range(len(pts))]
        self.labels = [str(v) for v in self.labels]
        if len(self.labels) != len(pts):
            raise CochleaAIError(f"{len(self.labels)} labels for {len(pts)} points; give one label per point.")
        if self.descriptions is not None:
            self.descriptions = [str(v) for v in self.descriptions]
            if len(self.descriptions) != len(pts):
                raise CochleaAIError(f"{len(self.descriptions)} descriptions for {len(pts)} points.")

    def __len__(self) -> int:
        return len(self.points)

    def point(self, label: str) -> np.ndarray:
        """The LPS position of the point called ``label``."""
        try:
            return self.points[self.labels.index(label)].copy()
        except ValueError:
            raise CochleaAIError(f"No point labelled '{label}' in '{self.name}'; "
                                 f"labels are {self.labels}.") from None

    def as_dict(self) -> Dict[str, np.ndarray]:
        return {label: p.copy() for label, p in zip(self.labels, self.points)}


def write_markups_json(path, markups: Markups, coordinate_system: str = "LPS") -> Path:
    """Write ``markups`` as a Slicer ``.mrk.json`` file in LPS (default) or RAS coordinates."""
    if not isinstance(markups, Markups):
        raise CochleaAIError(f"write_markups_json expects Markups, got {type(markups).__name__}.")
    system = str(coordinate_system).upper()
    if system not in ("LPS", "RAS"):
        raise CochleaAIError(f"coordinate_system must be 'LPS' or 'RAS', got {coordinate_system!r}.")
    points = markups.points if system == "LPS" else lps_to_ras(markups.points)
    # identity orientation in RAS, expressed in the file's coordinate system
    orientation = (LPS_TO_RAS if system == "LPS" else np.eye(3)).reshape(-1).tolist()
    descriptions = markups.descriptions or [""] * len(markups)
    control_points = []
    for i, (p, label, desc) in enumerate(zip(points, markups.labels, descriptions)):
        control_points.append({
            "id": str(i + 1), "label": label, "description": desc, "associatedNodeID": "",
            "position": [float(v) for v in p], "orientation": orientation,
            "selected": True, "locked": False, "visibility": True, "positionStatus": "defined",
        })
    document = {
        "@schema": MARKUPS_SCHEMA,
        "markups": [{
            "type": _KIND_TO_TYPE[markups.kind], "name": markups.name,
            "coordinateSystem": system, "coordinateUnits": "mm",
            "locked": False, "fixedNumberOfControlPoints": False, "labelFormat": "%N-%d",
            "lastUsedControlPointNumber": len(control_points),
            "controlPoints": control_points, "measurements": [],
        }],
    }
    path = _prepare_output(path)
    try:
        path.write_text(json.dumps(document, indent=4), encoding="utf-8")
    except OSError as exc:
        raise CochleaAIError(f"Cannot write '{path}' ({exc}); check that the folder is writable.") from exc
    return path


def _markups_from_json(path: Path) -> Markups:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CochleaAIError(f"'{path.name}' is not valid JSON ({exc}); the markups file is damaged.") from exc
    items = document.get("markups") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        raise CochleaAIError(f"'{path.name}' has no 'markups' list; it is not a Slicer .mrk.json file.")
    if len(items) > 1:
        warnings.warn(f"'{path.name}' holds {len(items)} markups; reading the first.", stacklevel=3)
    item = items[0]
    mtype = str(item.get("type", "Fiducial"))
    kind = _TYPE_TO_KIND.get(mtype.lower())
    if kind is None:
        warnings.warn(f"'{path.name}' holds a {mtype} markup; its control points are read as a point list.",
                      stacklevel=3)
        kind = "point"
    system = str(item.get("coordinateSystem", "LPS")).upper()
    if system not in ("LPS", "RAS"):
        raise CochleaAIError(f"'{path.name}' uses coordinate system '{system}'; expected LPS or RAS.")
    units = item.get("coordinateUnits", "mm")
    unit = units[0] if isinstance(units, list) and units else units
    scale = {"mm": 1.0, "um": 1e-3}.get(str(unit))
    if scale is None:
        raise CochleaAIError(f"'{path.name}' uses coordinate unit '{unit}'; expected mm or um.")
    points, labels, descriptions = [], [], []
    for i, cp in enumerate(item.get("controlPoints") or []):
        if not isinstance(cp, dict):
            raise CochleaAIError(f"Control point {i} of '{path.name}' is malformed.")
        if str(cp.get("positionStatus", "defined")) == "missing" or "position" not in cp:
            continue
        try:
            p = [float(v) for v in cp["position"]]
        except (TypeError, ValueError):
            p = []
        if len(p) != 3 or not all(math.isfinite(v) for v in p):
            raise CochleaAIError(f"Control point {i} of '{path.name}' has an invalid position {cp['position']!r}.")
        points.append(p)
        labels.append(str(cp.get("label", f"{i + 1}")))
        descriptions.append(str(cp.get("description", "")))
    pts = np.array(points, dtype=float).reshape(-1, 3) * scale
    if system == "RAS":
        pts = ras_to_lps(pts)
    default_name = path.name[:-len(".mrk.json")] if path.name.lower().endswith(".mrk.json") else path.stem
    name = str(item.get("name") or default_name)
    return Markups(pts, labels, kind, name, descriptions if any(descriptions) else None)


def _markups_from_fcsv(path: Path) -> Markups:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CochleaAIError(f"'{path.name}' is not a text file; the .fcsv file is damaged.") from exc
    system = "RAS"                                        # legacy default
    columns = ["id", "x", "y", "z", "ow", "ox", "oy", "oz", "vis", "sel", "lock", "label", "desc",
               "associatedNodeID"]
    data_lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            key, _, value = stripped.lstrip("#").partition("=")
            key, value = key.strip().lower(), value.strip()
            if key == "coordinatesystem":
                system = {"0": "RAS", "ras": "RAS", "1": "LPS", "lps": "LPS"}.get(value.lower())
                if system is None:
                    raise CochleaAIError(f"'{path.name}' uses coordinate system '{value}'; expected RAS or LPS.")
            elif key == "columns":
                columns = [c.strip() for c in value.split(",")]
            continue
        data_lines.append(line)
    try:
        ix, iy, iz = (columns.index(c) for c in ("x", "y", "z"))
    except ValueError:
        raise CochleaAIError(f"'{path.name}' has no x, y, z columns; it is not a markups .fcsv file.") from None
    il = columns.index("label") if "label" in columns else None
    idesc = columns.index("desc") if "desc" in columns else None
    points, labels, descriptions = [], [], []
    for row_number, row in enumerate(csv.reader(data_lines)):
        try:
            p = [float(row[ix]), float(row[iy]), float(row[iz])]
        except (IndexError, ValueError):
            raise CochleaAIError(f"Line {row_number + 1} of the points in '{path.name}' is malformed: "
                                 f"{','.join(row)!r}.") from None
        if not all(math.isfinite(v) for v in p):
            raise CochleaAIError(f"Point {row_number + 1} of '{path.name}' has a non-finite coordinate.")
        points.append(p)
        labels.append(row[il] if il is not None and il < len(row) else f"F-{row_number + 1}")
        descriptions.append(row[idesc] if idesc is not None and idesc < len(row) else "")
    if not points:
        raise CochleaAIError(f"'{path.name}' contains no points.")
    pts = np.array(points, dtype=float)
    if system == "RAS":
        pts = ras_to_lps(pts)
    return Markups(pts, labels, "point", path.stem, descriptions if any(descriptions) else None)


def read_markups(path) -> Markups:
    """Read Slicer markups (``.mrk.json`` in LPS or RAS, or legacy ``.fcsv``); points in LPS."""
    path = _require_file(path, "markups")
    ext = _extension(path)
    if ext in (".mrk.json", ".json"):
        return _markups_from_json(path)
    if ext in (".fcsv", ".csv"):
        return _markups_from_fcsv(path)
    raise CochleaAIError(f"Unknown markups file type '{ext or path.name}'; use .mrk.json or .fcsv.")


# --------------------------------------------------------------------------- batches of files

def volume_files(paths) -> List[Path]:
    """The volume files named by ``paths`` (a path or a list): a file as given, a folder as
    the image files directly inside it, sorted by name (segmentations left out)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: List[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # _extension keeps ".seg.nrrd"/".seg.nhdr" whole, so segmentations never match
            files += sorted(p for p in path.iterdir() if p.is_file() and _extension(p) in VOLUME_EXTENSIONS)
        else:
            files.append(path)
    return files


def file_stem(path) -> str:
    """The file name without its image extension (``ct.nii.gz`` -> ``ct``)."""
    name = Path(path).name
    ext = _extension(name)
    if ext in VOLUME_EXTENSIONS:
        return name[: -len(ext)]
    return Path(name).stem


def unique_stems(paths) -> List[str]:
    """One output name per file: its :func:`file_stem`, prefixed with its folder's name when
    another file has the same stem (phantom folders all hold a ``ct.nrrd``)."""
    paths = [Path(p) for p in paths]
    stems = [file_stem(p) for p in paths]
    return [f"{p.parent.name}_{s}" if stems.count(s) > 1 else s for p, s in zip(paths, stems)]


# ---------------------------------------------------------------- figures
def pyplot():
    """matplotlib.pyplot drawing off-screen (no display is needed for the figures written)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path, dpi: int = 100) -> Path:
    """Write a matplotlib figure as an image (folders made as needed) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
