"""One runner for batch work over many inputs (cohorts of scans, sets of simulated pairs).

``run(job, items, out)`` calls ``job(input, name, folder) -> dict`` once per item. The job
writes its outputs into ``folder``, a fresh temporary folder, under names of its choosing
(``<name>/`` or ``<name>.mrk.json``); the runner then moves them into ``out`` by renaming
and writes a small record of the item last, in ``out/.cochleaai-batch/done/<name>.json``.
So an interrupted run (Ctrl-C, a killed job) leaves no half-written output, and the next
run skips exactly the items whose record is there, whose outputs all exist, whose input is
unchanged and whose settings (``signature``) are the same.

The runner also gives each item a unique name (:func:`items_from_files`), caps the
threads of every worker (torch, numba, OpenMP/BLAS; :mod:`cochleaai.threads`), reports
progress as items finish, and turns an item that raises into a row with an ``error``
while the batch goes on. With ``workers > 1`` the items run in separate processes
(spawned), and with ``scheduler`` on a Dask cluster (:mod:`cochleaai.cluster`); ``job``
must then be picklable: a module-level function, or a ``functools.partial`` of one.
Every item gets the same arguments wherever it runs, so results do not depend on where.
``warm_up()``, when given, runs once in every worker before its first item (imports,
compiled kernels, a model read from disk), so that the first item costs what the others do
and a worker's start-up is not counted in any item's time.

Rows come back in the order of the items, each with ``name``, ``input``, ``status``
(``done``, ``resumed`` or ``failed``), the job's own fields, ``output`` (the paths it
wrote, ``; ``-separated), ``item_seconds`` (wall time), ``item_cpu_seconds`` (CPU time of
the worker process: well below ``item_seconds`` means the worker waited for a core),
``started`` (UTC), ``worker`` (host:process) and, for a failure, ``error``.
"""
from __future__ import annotations

import csv
import json
import os
import pickle
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Sequence

from .errors import CochleaAIError
from .progress import Progress

__all__ = ["Item", "items_from_files", "run", "write_csv", "add_arguments", "options", "RECORDS"]

#: The runner's own folder inside the output folder: item records and the staging area.
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
    from . import io

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


def _check_items(items) -> List[Item]:
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


class _Layout:
    """Where the runner keeps its records and temporary outputs inside ``out``."""

    def __init__(self, out):
        self.out = Path(out)
        self.done = self.out / RECORDS / "done"
        self.staging = self.out / RECORDS / "staging"

    def prepare(self) -> None:
        try:
            self.done.mkdir(parents=True, exist_ok=True)
            # leftovers of an interrupted run: never complete, never moved into place
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CochleaAIError(f"Cannot write into '{self.out}' ({exc}); choose a writable "
                                 "output folder.") from exc

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


def _describe(exc: BaseException) -> str:
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
        from .threads import limit_threads

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
    layout = _Layout(out)
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
        return {**base, "status": "failed", "error": _describe(exc), **_times(t0, c0), **when}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------- executors

def _outcome(future, item: Item) -> dict:
    try:
        return future.result()
    except Exception as exc:          # the worker itself died (killed, out of memory)
        return {"name": item.name, "input": str(item.input), "status": "failed",
                "error": f"the worker running it stopped: {_describe(exc)}"}


def _start_worker(threads: int, warm_up: Optional[Callable] = None) -> None:
    """Pool initializer: every worker is capped and warm before it takes its first item."""
    warm(warm_up, threads)


def _in_process(calls, finished, threads, warm_up=None) -> None:
    from .threads import threads_limited

    with threads_limited(threads):
        warm(warm_up)
        for k, args in calls:
            finished(k, run_item(*args))


def _in_pool(calls, finished, workers: int, threads: int, warm_up=None) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawned, not forked: torch and numba have OpenMP threads running in this process
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(threads, warm_up))
    waiting, running = list(calls), {}

    def submit_next() -> None:
        k, args = waiting.pop(0)
        running[pool.submit(run_item, *args, threads)] = (k, args[1])

    try:
        # one item per worker at a time, so that after Ctrl-C or Cancel no queued item starts
        for _ in range(min(workers, len(waiting))):
            submit_next()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)     # completion order
            for future in done:
                k, item = running.pop(future)
                finished(k, _outcome(future, item))
                if waiting:
                    submit_next()
    finally:
        # running items finish, or die with Ctrl-C; their outputs are whole or absent
        pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- the runner

def run(job: Callable, items: Iterable, out, *, workers: int = 1, threads: Optional[int] = None,
        force: bool = False, scheduler: Optional[str] = None, signature: str = "",
        progress=None, warm_up: Optional[Callable[[], Any]] = None) -> List[dict]:
    """Run ``job(input, name, folder) -> dict`` on every item; returns one row per item.

    ``items``: :class:`Item` objects, or file and folder paths (see :func:`items_from_files`).
    ``out``: the output folder. ``workers``: parallel processes on this machine (1: in this
    process), or the number of workers of ``scheduler="local"``. ``threads``: CPU threads per
    worker (default: the cores shared among the workers; 1 on Dask; in this process,
    unchanged). ``force``: redo items already complete. ``scheduler``: ``None``, ``"local"``
    (a Dask LocalCluster of ``workers`` processes) or the address of a Dask scheduler.
    ``signature``: text that changes when the settings do; an item done with another
    signature is redone. ``progress(fraction, message)`` is called as items finish and may
    raise :class:`~cochleaai.progress.Cancelled` to stop the batch. ``warm_up()`` (picklable,
    no arguments) runs once per worker before its first item; see the module's description.
    """
    if not callable(job):
        raise CochleaAIError("The batch job must be a function job(input, name, folder) -> dict.")
    items = list(items)
    if items and not isinstance(items[0], Item):
        items = items_from_files(items)
    items = _check_items(items)
    if int(workers) < 1 or (threads is not None and int(threads) < 1):
        raise CochleaAIError("--workers and --threads must be at least 1.")
    out = Path(out).absolute()
    layout = _Layout(out)
    layout.prepare()
    p = Progress.wrap(progress)
    rows: List[Optional[dict]] = [None] * len(items)
    for k, item in enumerate(items):
        stored = None if force else layout.completed(item, signature)
        if stored is not None:
            rows[k] = {**stored, "status": "resumed"}
    total, done = len(items), sum(r is not None for r in rows)
    p(done / max(total, 1), f"{done}/{total} already complete" if done else f"0/{total}")

    def finished(k: int, row: dict) -> None:
        nonlocal done
        rows[k] = row
        done += 1
        p(done / total, f"{done}/{total} {row['name']} {row['status']}")

    calls = [(k, (job, items[k], str(out), signature)) for k in range(total) if rows[k] is None]
    if calls and scheduler:
        from . import cluster

        cluster.run_calls(calls, finished, scheduler, int(workers), int(threads or 1), _outcome, warm_up)
    elif calls and int(workers) > 1 and len(calls) > 1:
        n = min(int(workers), len(calls))
        _in_pool(calls, finished, n, int(threads or max(1, (os.cpu_count() or 1) // n)), warm_up)
    elif calls:
        _in_process(calls, finished, threads, warm_up)
    return rows


def write_csv(path, rows: Sequence[dict], fieldnames: Optional[Sequence[str]] = None) -> Path:
    """Write rows as CSV (columns: ``fieldnames``, or every key in order of appearance),
    through a temporary file, so that the table is whole or absent."""
    path = Path(path)
    keys = list(fieldnames) if fieldnames else list(dict.fromkeys(k for r in rows for k in r))
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(partial, path)
    return path


# --------------------------------------------------------------------------- command line

def add_arguments(parser, workers: int = 1, threads: Optional[int] = None) -> None:
    """The batch options of a command: --workers, --threads, --resume/--force, --dask-scheduler."""
    g = parser.add_argument_group("batch options")
    g.add_argument("--workers", type=int, default=workers,
                   help=f"parallel worker processes (default {workers}); with --dask-scheduler local, "
                        "the number of Dask workers")
    default = "the cores shared among the workers" if threads is None else str(threads)
    g.add_argument("--threads", type=int, default=threads,
                   help=f"CPU threads per worker for torch, numba and BLAS (default: {default})")
    once = g.add_mutually_exclusive_group()
    once.add_argument("--resume", action="store_true", default=True,
                      help="skip the volumes whose outputs are complete (the default)")
    once.add_argument("--force", action="store_true", help="redo every volume, replacing its outputs")
    g.add_argument("--dask-scheduler", metavar="ADDRESS", default=None,
                   help="run on Dask: 'local' starts a LocalCluster of --workers processes on this "
                        "machine; an address (tcp://host:8786) uses a running cluster, whose workers "
                        "must see the input and output paths (shared file system). Needs "
                        "pip install 'cochleaai[cluster]'")


def options(args) -> dict:
    """Keyword arguments of :func:`run` from the parsed batch options."""
    return {"workers": args.workers, "threads": args.threads, "force": args.force,
            "scheduler": args.dask_scheduler}
