"""File paths: volume file types, checks before reading and writing, unique names in a batch, checksums."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import List

from cochleaai.errors import CochleaAIError

VOLUME_EXTENSIONS = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


def sha256_of(path) -> str:
    """Hex SHA-256 of a file (model weights and physics tables are checked against it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def extension_of(path) -> str:
    """Lower-case extension, keeping the double ones that matter (``.nii.gz``, ``.seg.nrrd``)."""
    name = Path(path).name.lower()
    for double in (".seg.nrrd", ".seg.nhdr", ".nii.gz", ".mrk.json"):
        if name.endswith(double):
            return double
    return Path(name).suffix


def require_file(path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise CochleaAIError(f"The {what} file '{path}' does not exist; check the path.")
    if not path.is_file():
        raise CochleaAIError(f"'{path}' is a folder, not a {what} file; select the file itself.")
    return path


def volume_files(paths) -> List[Path]:
    """The volume files named by ``paths`` (a path or a list): a file as given, a folder as
    the image files directly inside it, sorted by name (segmentations left out)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: List[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            # extension_of keeps ".seg.nrrd"/".seg.nhdr" whole, so segmentations never match
            files += sorted(p for p in path.iterdir() if p.is_file() and extension_of(p) in VOLUME_EXTENSIONS)
        else:
            files.append(path)
    return files


def file_stem(path) -> str:
    """The file name without its image extension (``ct.nii.gz`` -> ``ct``)."""
    name = Path(path).name
    ext = extension_of(name)
    if ext in VOLUME_EXTENSIONS:
        return name[: -len(ext)]
    return Path(name).stem


def unique_stems(paths) -> List[str]:
    """One output name per file: its :func:`file_stem`, prefixed with its folder's name when
    another file has the same stem (phantom folders all hold a ``ct.nrrd``)."""
    paths = [Path(p) for p in paths]
    stems = [file_stem(p) for p in paths]
    return [f"{p.parent.name}_{s}" if stems.count(s) > 1 else s for p, s in zip(paths, stems)]
