"""Scalar 3D images (NRRD, NIfTI, MetaImage) through SimpleITK, as :class:`~cochleaai.volume.Volume` in LPS."""
from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from cochleaai.errors import CochleaAIError
from cochleaai.io.image_checks import check_image_file
from cochleaai.io.outputs import written_whole
from cochleaai.io.paths import VOLUME_EXTENSIONS, extension_of, require_file
from cochleaai.volume import Volume


def read_volume(path) -> Volume:
    """Read a scalar 3D image (.nrrd, .nhdr, .nii, .nii.gz, .mha, .mhd) with its LPS geometry."""
    path = require_file(path, "image")
    ext = extension_of(path)
    if ext in (".seg.nrrd", ".seg.nhdr"):
        raise CochleaAIError(f"'{path.name}' is a Slicer segmentation; read it with read_seg_nrrd().")
    if ext not in VOLUME_EXTENSIONS:
        raise CochleaAIError(f"Unknown image file type '{ext or path.name}'; use one of "
                             f"{', '.join(VOLUME_EXTENSIONS)} (or read_dicom_series for a DICOM folder).")
    try:
        check_image_file(path)      # before SimpleITK allocates what the header claims
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
    if not isinstance(volume, Volume):
        raise CochleaAIError(f"write_volume expects a Volume, got {type(volume).__name__}.")
    ext = extension_of(path)
    if ext not in VOLUME_EXTENSIONS:
        raise CochleaAIError(f"Unknown image file type '{ext or Path(path).name}'; use one of "
                             f"{', '.join(VOLUME_EXTENSIONS)}.")
    path = Path(path)
    image = volume.to_sitk()
    try:
        with written_whole(path) as partial:     # a detached header's data file goes with it
            sitk.WriteImage(image, str(partial), bool(compress))
    except RuntimeError as exc:
        raise CochleaAIError(f"Cannot write '{path}' ({str(exc).strip().splitlines()[-1]}); "
                             "check that the folder is writable and the disk not full.") from exc
    return path
