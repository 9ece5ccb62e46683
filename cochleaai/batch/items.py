"""One item of a batch, done where it runs (this process, a pool process or a Dask worker).

An item's output is written to a staging folder and moved into place only when it is
complete, with a record of its input, so that a rerun skips what is done and an interrupted
item leaves nothing half-written.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

from cochleaai import io
from cochleaai.batch import lock
from cochleaai.errors import CochleaAIError
from cochleaai.threads import limit_threads

#: The runner's own folder inside the output folder: item records, the staging area, the lock.
RECORDS = ".cochleaai-batch"
_FORMAT = "cochleaai-batch-item/1"


@dataclass(frozen=True)
class Item:
    """One unit of work: ``name`` names its outputs; ``input`` is what the job receives
    (a path on a file system every worker sees, a seed, ...) and must be picklable."""
    name: str
    input: Any


# --------------------------------------------------------------------------- items

def _distinct(names: Sequence[str]) -> List[str]:
    """Make names distinct ignoring case (case-insensitive file systems) with -2, -3, ..."""
    taken, out = set(), []
    for name in names:
        candidate, k = name, 1
        while candidate.lower() in taken:
            k += 1
            candidate = f"{name}-{k}"
        taken.add(candidate.lower())
        out.append(candidate)
    return out


def items_from_files(paths) -> List[Item]:
    """Items for the volumes named by ``paths`` (files, or folders whose image files are
    taken, ``.nhdr`` included), named by :func:`cochleaai.io.unique_stems`: ``a.b.nrrd`` and
    ``a.c.nrrd`` give ``a.b`` and ``a.c``; two ``ct.nrrd`` get their folder's name in front."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    for raw in paths:
        if not Path(raw).exists():
            raise CochleaAIError(f"'{raw}' does not exist; check the path of the volume or folder.")
    files, seen = [], set()
    for f in io.volume_files(paths):
        f = Path(f).absolute()         # workers elsewhere need paths that do not depend on the cwd
        if f not in seen:              # the same file named twice is done once
            seen.add(f)
            files.append(f)
    if not files:
        raise CochleaAIError(f"No volumes ({', '.join(io.VOLUME_EXTENSIONS)}) in "
                             f"{', '.join(map(str, paths))}; give image files or folders holding them.")
    return [Item(name, f) for name, f in zip(_distinct(io.unique_stems(files)), files)]


def check_items(items) -> List[Item]:
    items = [i if isinstance(i, Item) else None for i in items]
    if any(i is None for i in items):
        raise CochleaAIError("batch.run expects Item objects (or file paths); "
                             "build them with items_from_files() or Item(name, input).")
    names = [i.name for i in items]
    for name in names:
        if not name or name in (".", "..") or "/" in name or "\\" in name or name == RECORDS:
            raise CochleaAIError(f"{name!r} cannot name a batch item's outputs; use a plain file name.")
    if len({n.lower() for n in names}) != len(names):
        raise CochleaAIError("Two batch items have the same name (ignoring case), so their outputs "
                             "would overwrite each other; give each item its own name.")
    return items


# --------------------------------------------------------------------------- records

def _plain(value):
    """Rows as JSON gives them back (numpy scalars to numbers, paths to text), so that a
    resumed row equals the row of the run that made it."""
    def convert(o):
        if hasattr(o, "tolist"):
            return o.tolist()
        return str(o)
    return json.loads(json.dumps(value, default=convert))


def _input_stamp(value):
    """Size and modification time of an input file, to redo items whose input changed."""
    try:
        if isinstance(value, (str, Path)) and Path(value).exists():
            st = Path(value).stat()
            return [st.st_size, st.st_mtime_ns]
    except OSError:
        pass
    return None


class Layout:
    """Where the runner keeps its records and temporary outputs inside ``out``."""

    def __init__(self, out):
        self.out = Path(out)
        self.done = self.out / RECORDS / "done"
        self.staging = self.out / RECORDS / "staging"
        self.lock = self.out / RECORDS / "lock"

    @contextmanager
    def opened(self):
        """Hold the folder's lock for the block (one run at a time), with the staging area
        cleared: whatever is there was left by a run that is over."""
        try:
            self.done.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CochleaAIError(f"Cannot write into '{self.out}' ({exc}); choose a writable "
                                 "output folder.") from exc
        with lock.hold(self.lock, self.out):
            # leftovers of an interrupted run: never complete, never moved into place
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging.mkdir(parents=True, exist_ok=True)
            yield

    def record(self, name: str) -> Path:
        return self.done / f"{name}.json"

    def completed(self, item: Item, signature: str) -> Optional[dict]:
        """The stored row of a finished item, or None when it has to be (re)done."""
        try:
            rec = json.loads(self.record(item.name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (not isinstance(rec, dict) or rec.get("format") != _FORMAT or rec.get("signature") != signature
                or rec.get("input") != str(item.input) or rec.get("input_stamp") != _input_stamp(item.input)):
            return None
        if not all((self.out / entry).exists() for entry in rec.get("outputs", [])):
            return None
        return rec.get("row")

    def commit(self, item: Item, work: Path, trash: Path, signature: str, row: dict) -> None:
        """Move the outputs into place, then write the record that marks them complete."""
        self.record(item.name).unlink(missing_ok=True)     # incomplete until the record is back
        entries = sorted(os.listdir(work))
        trash.mkdir()
        for entry in entries:
            dest = self.out / entry
            if os.path.lexists(dest):      # an older or half-finished version: set it aside first
                os.replace(dest, trash / entry)
            os.replace(work / entry, dest)
        rec = {"format": _FORMAT, "name": item.name, "input": str(item.input),
               "input_stamp": _input_stamp(item.input), "signature": signature,
               "outputs": entries, "row": row}
        partial = self.record(item.name).with_suffix(".json.partial")
        partial.write_text(json.dumps(rec, indent=1), encoding="utf-8")
        os.replace(partial, self.record(item.name))


def describe_error(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, CochleaAIError) else f"{type(exc).__name__}: {exc}"


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _times(t0: float, c0: float) -> dict:
    return {"item_seconds": round(time.perf_counter() - t0, 3),
            "item_cpu_seconds": round(time.process_time() - c0, 3)}


#: The warm-ups this process has run (by their pickled form: each task brings a new copy).
_WARMED: set = set()


def _warm_key(warm_up) -> Any:
    try:
        return pickle.dumps(warm_up)
    except Exception:
        return id(warm_up)


def warm(warm_up: Optional[Callable], threads: Optional[int] = None) -> None:
    """Cap this process's threads, then run ``warm_up()`` unless this process already has.
    A failing warm-up is left to the items, which then fail with rows of their own instead
    of the whole batch stopping here."""
    if threads:
        limit_threads(threads)      # before the warm-up imports torch or numba: their pools start small
    if warm_up is None or _warm_key(warm_up) in _WARMED:
        return
    _WARMED.add(_warm_key(warm_up))
    try:
        warm_up()
    except Exception:
        pass


def run_item(job: Callable, item: Item, out: str, signature: str = "", threads: Optional[int] = None,
             warm_up: Optional[Callable] = None) -> dict:
    """Do one item where it runs (this process, a pool process or a Dask worker) and return
    its row; an exception becomes a row with ``error``. ``threads`` caps this process first,
    and ``warm_up`` runs first if it has not in this process (outside the item's time)."""
    warm(warm_up, threads)
    layout = Layout(out)
    base = {"name": item.name, "input": str(item.input)}
    when = {"started": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "worker": _worker_name()}
    t0, c0 = time.perf_counter(), time.process_time()
    scratch = Path(tempfile.mkdtemp(prefix=f"{item.name}.", dir=layout.staging))
    try:
        work = scratch / "out"
        work.mkdir()
        result = job(item.input, item.name, work)
        if result is None:
            result = {}
        if not isinstance(result, dict):
            raise TypeError(f"the batch job returned a {type(result).__name__}, not a dict")
        entries = sorted(os.listdir(work))
        if RECORDS in entries:
            raise ValueError(f"the batch job wrote '{RECORDS}', the runner's own folder")
        row = {**base, "status": "done", **result}
        row.update(base, status="done", output="; ".join(str(layout.out / e) for e in entries),
                   **_times(t0, c0), **when)
        row = _plain(row)
        layout.commit(item, work, scratch / "replaced", signature, row)
        return row
    except Exception as exc:          # one bad item must not stop the batch
        return {**base, "status": "failed", "error": describe_error(exc), **_times(t0, c0), **when}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
