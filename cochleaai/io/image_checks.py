"""Checks of an image file before SimpleITK reads it.

SimpleITK loads some damaged files without an error (a cut-off .nii or .nii.gz comes back
zero-filled, a gzip NRRD or a compressed MetaImage with a bad checksum half garbage), and it
allocates what a header claims before reading the data (a 245-byte header can ask for 16 GB).
So the size a header claims is set against the memory there is, and the voxel data against
the header: their length, and the checksum of compressed data, decompressed once more as a
stream. Encodings not listed here (ASCII, hex, a list of slice files) are left to SimpleITK.
"""
from __future__ import annotations

import bz2
import math
import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple, Optional, Sequence, Tuple

import SimpleITK as sitk

from cochleaai.errors import CochleaAIError

#: GB an image may take, instead of the memory measured: lower it to share a machine, or
#: raise it to read an image anyway.
MEMORY_LIMIT_ENV = "COCHLEAAI_MEMORY_LIMIT_GB"
_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_CHECKSUMS = {"gzip": "CRC", "zlib": "Adler-32 checksum", "bzip2": "CRC"}
_HEADER_LINES = 1000                   # a header is a few dozen lines; stop looking for its end there


class Payload(NamedTuple):
    """Where a file's voxel data lie and how many bytes they must hold."""
    file: Path
    start: int                         # byte offset in ``file``
    codec: str                         # "raw", "gzip", "bzip2" or "zlib"
    need: int                          # bytes from ``start`` (decompressed for a codec)
    line_skip: int = 0                 # NRRD: text lines before the data


def check_image_file(path: Path) -> None:
    """Refuse ``path`` (a :class:`CochleaAIError` naming it) when its header claims more than
    memory allows or its voxel data are shorter than claimed or damaged. An unreadable
    header raises SimpleITK's RuntimeError."""
    nbytes = check_memory(f"'{path.name}'", *image_information(path))
    name = path.name.lower()
    if name.endswith((".nrrd", ".nhdr")):
        payload = _nrrd_payload(path, nbytes)
    elif name.endswith((".mha", ".mhd")):
        payload = _metaimage_payload(path, nbytes)
    else:                              # NIfTI: from its own header, as SimpleITK may rescale to float
        payload = _nifti_payload(path)
    if payload is not None:
        _check_payload(path, payload)


def image_information(path) -> Tuple[Tuple[int, ...], int, int]:
    """``(size, bytes per value, values per voxel)`` from the header of ``path`` (SimpleITK's
    RuntimeError where it cannot be read)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    components = reader.GetNumberOfComponents()
    value_bytes = sitk.Image([1, 1], reader.GetPixelID(), components).GetSizeOfPixelComponent()
    return tuple(reader.GetSize()), value_bytes, components


# ------------------------------------------------------------------ memory
def available_memory() -> Tuple[Optional[int], str]:
    """Bytes an image may take and what they are, or ``(None, "")`` where unknown (Windows)."""
    limit = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if limit:
        try:
            return int(float(limit) * 1e9), f"allowed by {MEMORY_LIMIT_ENV}"
        except ValueError:
            raise CochleaAIError(f"{MEMORY_LIMIT_ENV}={limit!r} is not a number of GB; "
                                 "set it to one or unset it.") from None
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "available"
    except (OSError, ValueError, IndexError):
        pass
    try:    # macOS counts its file cache as used: the installed total refuses only what never fits
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "installed"
    except (AttributeError, ValueError, OSError):
        return None, ""


def check_memory(what: str, size: Sequence[int], value_bytes: int, components: int = 1) -> int:
    """Refuse an image of ``size`` voxels that reading and processing cannot fit in memory;
    returns its bytes."""
    values = math.prod(size) * components
    nbytes = values * value_bytes
    # Reading holds SimpleITK's buffer and the array copied out of it; the methods then work
    # on a float32 copy, made once the buffer is gone: the larger pair is the peak.
    need = nbytes + max(nbytes, 4 * values)
    memory, kind = available_memory()
    if memory is not None and need > memory:
        mantissa, exponent = f"{math.prod(size):.2e}".split("e")
        raise CochleaAIError(
            f"{what} claims {' x '.join(str(n) for n in size)} = {mantissa}e{int(exponent)} voxels, "
            f"{_gb(nbytes)}: reading and processing it needs about {_gb(need)}, more than the "
            f"{_gb(memory)} of memory {kind}; crop or downsample the image, or free memory.")
    return nbytes


def _gb(nbytes: int) -> str:
    return f"{nbytes / 1e9:.1f} GB"


# ------------------------------------------------------------------ voxel data
def _check_payload(path: Path, payload: Payload) -> None:
    file, name = payload.file, payload.file.name
    if not file.is_file():
        raise CochleaAIError(f"'{path.name}' keeps its voxels in '{name}', which is not beside it; "
                             "copy the two files together.")
    try:
        handle = open(file, "rb")
    except OSError as exc:
        raise CochleaAIError(f"Cannot open '{name}' ({exc.strerror}); check that it may be read.") from exc
    with handle:
        handle.seek(payload.start)
        for _ in range(payload.line_skip):
            handle.readline()
        codec, start = payload.codec, handle.tell()
        if codec == "gzip" and handle.read(2) != _GZIP_MAGIC:
            codec = "raw"              # gzread reads uncompressed data as they are
        handle.seek(start)
        if codec == "raw":
            have = os.fstat(handle.fileno()).st_size - start
        else:
            try:
                have = _decompressed_length(handle, codec)
            except (OSError, zlib.error) as exc:    # bz2 reports damage as an OSError
                reason = f"{_CHECKSUMS[codec]} error" if "incorrect data check" in str(exc) else exc
                raise CochleaAIError(f"'{name}' is damaged: its {codec}-compressed voxel data are corrupt "
                                     f"({reason}); copy it again from its source.") from exc
    if have < payload.need:
        raise CochleaAIError(f"'{name}' is shorter than its header says ({have:,} of the {payload.need:,} "
                             "bytes it claims): it was cut off; copy it again from its source.")


def _decompressed_length(handle, codec: str) -> int:
    """Bytes the compressed stream from ``handle``'s position inflates to, its checksums
    checked on the way; a stream cut off counts what it gave."""
    if codec == "bzip2":
        total, stream = 0, bz2.BZ2File(handle)
        try:                           # read1: a block cut off midway still counts what it gave
            for block in iter(lambda: stream.read1(_CHUNK), b""):
                total += len(block)
        except EOFError:               # cut off before the end-of-stream marker
            pass
        return total
    # zlib checks the CRC and length of each gzip member, the Adler-32 sum of a zlib stream
    # (MetaIO inflates only that: a gzip header there is damage too). Like zlib's gzread, which
    # SimpleITK reads gzip with, further gzip members count and other trailing bytes are ignored.
    wbits, total, pending = (31 if codec == "gzip" else 15), 0, b""
    while True:
        engine = zlib.decompressobj(wbits)
        while not engine.eof:
            pending = pending or handle.read(_CHUNK)
            if not pending:
                return total
            total += len(engine.decompress(pending, _CHUNK))     # bounded: zeros inflate 1000-fold
            pending = engine.unconsumed_tail
        pending = engine.unused_data + handle.read(2)
        if codec != "gzip" or not pending.startswith(_GZIP_MAGIC):
            return total


def _fields(lines) -> dict:
    """``key: value`` (NRRD) or ``Key = Value`` (MetaImage) lines as lower-case keys without spaces."""
    fields = {}
    for line in lines:
        key, sep, value = line.partition(":" if ":" in line.split("=")[0] else "=")
        if sep and not value.startswith("="):          # NRRD's "key:=value" pairs are metadata
            fields[key.strip().lower().replace(" ", "")] = value.strip()
    return fields


def _header_lines(handle, stop):
    """Decoded lines up to the one ``stop`` accepts (or the end), and that line."""
    lines = []
    for _ in range(_HEADER_LINES):
        raw = handle.readline(1 << 16)
        line = raw.decode("latin-1").rstrip("\r\n")
        if not raw or stop(line):
            return lines, line if raw else None
        lines.append(line)
    return lines, None


def _data_file(header: Path, value: str) -> Optional[Path]:
    """The data file a header names, or None for a list or pattern of files (not checked)."""
    if value.upper().startswith("LIST") or len(value.split()) > 1:
        return None
    return header.parent / value


def _nrrd_payload(path: Path, nbytes: int) -> Optional[Payload]:
    with open(path, "rb") as handle:
        lines, blank = _header_lines(handle, lambda line: not line)
        start = handle.tell()
    if not lines or not lines[0].startswith("NRRD"):
        return None
    fields = _fields(line for line in lines[1:] if not line.startswith("#"))
    codec = {"raw": "raw", "gzip": "gzip", "gz": "gzip", "bzip2": "bzip2", "bz2": "bzip2"}.get(
        fields.get("encoding", "").lower())
    try:
        line_skip, byte_skip = int(fields.get("lineskip", 0)), int(fields.get("byteskip", 0))
    except ValueError:
        return None
    if "datafile" in fields:
        file, start = _data_file(path, fields["datafile"]), 0
    else:
        file = path if blank is not None else None
    if codec is None or file is None or (byte_skip < 0 and codec != "raw"):
        return None
    if byte_skip < 0:                  # raw data are the file's last bytes
        return Payload(file, start, codec, nbytes, line_skip)
    return Payload(file, start, codec, byte_skip + nbytes, line_skip)


def _metaimage_payload(path: Path, nbytes: int) -> Optional[Payload]:
    with open(path, "rb") as handle:
        lines, last = _header_lines(handle, lambda line: line.split("=")[0].strip() == "ElementDataFile")
        start = handle.tell()
    if last is None:
        return None
    fields = _fields(lines + [last])
    if fields.get("binarydata", "true").lower() != "true":
        return None
    value = fields["elementdatafile"]
    file, start = (path, start) if value.upper() == "LOCAL" else (_data_file(path, value), 0)
    if file is None:
        return None
    if fields.get("compresseddata", "false").lower() == "true":
        return Payload(file, start, "zlib", nbytes)
    try:
        skip = int(fields.get("headersize", 0))
    except ValueError:
        return None
    return Payload(file, start + max(skip, 0), "raw", nbytes)     # -1: the data are the last bytes


def _nifti_payload(path: Path) -> Optional[Payload]:
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    codec = "gzip" if head.startswith(_GZIP_MAGIC) else "raw"      # whatever the name says, as gzread
    if codec == "gzip":
        try:
            head = zlib.decompressobj(31).decompress(head, 540)
        except zlib.error:
            return None
    for order in "<>":
        if head[:4] == struct.pack(order + "i", 348) and head[344:347] == b"n+1":
            dims, bitpix = struct.unpack_from(order + "8h", head, 40), struct.unpack_from(order + "h", head, 72)[0]
            offset = int(struct.unpack_from(order + "f", head, 108)[0])
        elif head[:4] == struct.pack(order + "i", 540) and head[4:7] == b"n+2" and len(head) >= 540:
            bitpix, dims = struct.unpack_from(order + "h", head, 14)[0], struct.unpack_from(order + "8q", head, 16)
            offset = struct.unpack_from(order + "q", head, 168)[0]
        else:
            continue
        if not 1 <= dims[0] <= 7 or min(dims[1:dims[0] + 1]) < 1 or bitpix < 1:
            return None
        return Payload(path, 0, codec, offset + (math.prod(dims[1:dims[0] + 1]) * bitpix + 7) // 8)
    return None
