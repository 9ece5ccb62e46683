"""Files: images (NRRD, NIfTI, MetaImage, DICOM), Slicer segmentations and markups.

Nothing here imports Slicer. Every reader returns core types in **LPS** millimetres:

* :mod:`.volumes`: :func:`read_volume` / :func:`write_volume`, scalar 3D images through SimpleITK;
* :mod:`.dicom`: :func:`read_dicom_series` / :func:`write_dicom_series`, a CT series (one file per slice);
* :mod:`.segmentations`: :func:`read_seg_nrrd` / :func:`write_seg_nrrd`, Slicer's ``.seg.nrrd``
  segmentation file, segments possibly overlapping (stored as several *layers* of a 4D NRRD),
  through slicerio;
* :mod:`.markups_files`: :func:`read_markups` / :func:`write_markups_json`, Slicer markups
  (``.mrk.json``, legacy ``.fcsv``) as a :class:`~cochleaai.markups.Markups` point list;
* :mod:`.paths`: file types, checks before reading and writing, unique names, checksums;
* :mod:`.image_checks`: an image file against its header before SimpleITK reads it (the size
  claimed against the memory, or ``$COCHLEAAI_MEMORY_LIMIT_GB``; the voxel data cut off or
  failing their checksum);
* :mod:`.figures`: matplotlib figures saved as PNG;
* :mod:`.browser`: an HTML page printed to PDF (and photographed) by headless Chromium.

Array order: ``Volume.array`` is ``(z, y, x)``; NRRD files list their axes ``x, y, z``
(pynrrd's default ``index_order="F"``, which slicerio uses, keeps that order), so arrays are
transposed on the way in and out. Errors the user can cause raise :class:`CochleaAIError`;
inputs are never modified.
"""
from cochleaai.io.dicom import CT_IMAGE_STORAGE, read_dicom_series, write_dicom_series
from cochleaai.io.figures import axial_panels, pyplot, save_figure
from cochleaai.io.markups_files import MARKUPS_SCHEMA, read_markups, write_markups_json
from cochleaai.io.paths import VOLUME_EXTENSIONS, file_stem, sha256_of, unique_stems, volume_files
from cochleaai.io.segmentations import (LABEL_VALUE_TAG, check_segments, pack_segments_into_layers, read_seg_nrrd,
                                        segment_id_from_name, slicer_geometry_string, write_seg_nrrd)
from cochleaai.io.volumes import read_volume, write_volume

__all__ = [
    "VOLUME_EXTENSIONS", "read_volume", "write_volume", "sha256_of", "volume_files", "file_stem", "unique_stems",
    "CT_IMAGE_STORAGE", "read_dicom_series", "write_dicom_series",
    "LABEL_VALUE_TAG", "segment_id_from_name", "check_segments", "pack_segments_into_layers",
    "slicer_geometry_string", "write_seg_nrrd", "read_seg_nrrd",
    "MARKUPS_SCHEMA", "write_markups_json", "read_markups", "pyplot", "save_figure", "axial_panels",
]
