"""Where a command writes: every output checked before any work, and every file written whole.

The rules: an output is never one of the inputs; a file that is already there is not replaced
unless the user allows it (``force``), since it may be an expert label or an earlier result;
the folder must be one this process can write. Files are written in a hidden folder beside
their final place and renamed into it when complete, so that an error, Ctrl-C or a kill leaves
the earlier state or the finished file, never half of one.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, List

from cochleaai.errors import CochleaAIError

#: Prefix of the hidden folders files are written in before they are renamed into place.
PARTIAL_PREFIX = ".cochleaai-partial-"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_writable_folder(folder) -> None:
    """Refuse a folder that cannot be made or written: it is a file, lies under a file, or its
    nearest existing folder does not take a new file (tried, not guessed from permissions)."""
    folder = Path(folder)
    existing = folder
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "is" if existing == folder else "lies under"
        raise CochleaAIError(f"The output folder '{folder}' {where} the file '{existing}'; choose a folder.")
    try:
        handle, probe = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=existing)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise CochleaAIError(f"Cannot write in '{existing}' ({exc.strerror or exc}); "
                             "choose a writable output location.") from exc


class OutputPlan:
    """The files one command will write, checked before it starts.

    ``inputs``: the files it reads (never written over, even with ``force``).
    ``force``: replace files that are already there.
    """

    def __init__(self, inputs: Iterable = (), force: bool = False):
        self.inputs = [Path(p) for p in inputs if p is not None]
        self.force = bool(force)
        self.planned: List[Path] = []
        self._checked_folders: set = set()

    def file(self, path, what: str = "output") -> Path:
        """Check one output file; returns it as a Path."""
        path = Path(path)
        for source in self.inputs:
            if _same_file(path, source):
                raise CochleaAIError(f"The {what} '{path}' is also an input of this command; choose another "
                                     "name (inputs are never written over).")
        if path.is_dir():
            raise CochleaAIError(f"The {what} '{path}' is a folder; give a file name.")
        if path.exists() and not self.force:
            raise CochleaAIError(f"'{path}' already exists; choose another name, or pass --force to replace it.")
        if path.parent not in self._checked_folders:
            check_writable_folder(path.parent)
            self._checked_folders.add(path.parent)
        self.planned.append(path)
        return path

    def files(self, paths: Iterable, what: str = "output") -> List[Path]:
        """Check several output files (a model's weights and card); returns them as Paths."""
        return [self.file(path, what) for path in paths]

    def folder(self, path, names: Iterable[str], what: str = "output folder") -> Path:
        """Check an output folder and the files it will receive (names relative to it)."""
        folder = Path(path)
        if folder.exists() and not folder.is_dir():
            raise CochleaAIError(f"The {what} '{folder}' is a file; choose a folder.")
        for source in self.inputs:
            if _same_file(folder, source):
                raise CochleaAIError(f"The {what} '{folder}' is also an input of this command; choose another.")
        check_writable_folder(folder)
        self._checked_folders.add(folder)
        for name in names:
            self.file(folder / name)
        return folder


@contextlib.contextmanager
def written_whole(path) -> Iterator[Path]:
    """Yield a temporary path with ``path``'s name; on success the file (with any files written
    beside it under the same temporary folder, such as a detached header's data) is renamed
    into place; on failure nothing is left."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=path.parent))
    except OSError as exc:
        raise CochleaAIError(f"Cannot write in '{path.parent}' ({exc.strerror or exc}); "
                             "choose a writable output location.") from exc
    try:
        yield staging / path.name
        for written in sorted(staging.iterdir()):
            os.replace(written, path.parent / written.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_text_whole(path, text: str) -> Path:
    """Write a text file (UTF-8) whole: see :func:`written_whole`."""
    with written_whole(path) as partial:
        partial.write_text(text, encoding="utf-8")
    return Path(path)
