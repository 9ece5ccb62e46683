"""The batch runner: items in this process, in a pool of processes or on Dask (:mod:`.cluster`),
resumable, with a table of the results (failures first)."""
from __future__ import annotations

import csv
import multiprocessing
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Sequence

from cochleaai import arguments
from cochleaai.batch import cluster, lifetime
from cochleaai.batch.items import Item, Layout, check_items, describe_error, items_from_files, run_item, warm
from cochleaai.errors import EXIT_FLAGGED, CochleaAIError
from cochleaai.progress import Progress
from cochleaai.threads import threads_limited


def _outcome(future, item: Item) -> dict:
    try:
        return future.result()
    except Exception as exc:          # the worker itself died (killed, out of memory)
        return {"name": item.name, "input": str(item.input), "status": "failed",
                "error": f"the worker running it stopped: {describe_error(exc)}"}


def _start_worker(parent: int, threads: int, warm_up: Optional[Callable] = None) -> None:
    """Pool initializer: every worker dies with the runner (process ``parent``), and is
    capped and warm before it takes its first item."""
    lifetime.die_with(parent)
    warm(warm_up, threads)


def _in_process(calls, finished, threads, warm_up=None) -> None:
    with threads_limited(threads):
        warm(warm_up)
        for k, args in calls:
            finished(k, run_item(*args))


def _in_pool(calls, finished, workers: int, threads: int, warm_up=None) -> None:
    # spawned, not forked: torch and numba have OpenMP threads running in this process
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(os.getpid(), threads, warm_up))
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
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: stop now, not after the running items; their outputs are absent
        lifetime.kill_workers(pool)
        raise
    finally:
        # after Cancel (or an error here) the running items finish: their outputs are whole
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
    items = check_items(items)
    if int(workers) < 1 or (threads is not None and int(threads) < 1):
        raise CochleaAIError("--workers and --threads must be at least 1.")
    out = Path(out).absolute()
    layout = Layout(out)
    with layout.opened(), lifetime.sigterm_interrupts():
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
            cluster.run_calls(calls, finished, scheduler, int(workers), int(threads or 1), _outcome, warm_up)
        elif calls and int(workers) > 1 and len(calls) > 1:
            n = min(int(workers), len(calls))
            _in_pool(calls, finished, n, int(threads or max(1, (os.cpu_count() or 1) // n)), warm_up)
        elif calls:
            _in_process(calls, finished, threads, warm_up)
    return rows


def locked(out):
    """Hold the lock of the output folder ``out`` for a block: a command that writes its
    table after :func:`run` keeps it over both, so that no other run comes in between.
    :func:`run` inside the block (same thread) takes it as its own."""
    return Layout(Path(out).absolute()).opened()


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


def exit_status(rows: Sequence[dict], table, what: str = "items", flagged: Optional[Callable] = None) -> int:
    """A batch command's exit status: 0, or :data:`~cochleaai.errors.EXIT_FLAGGED` with a
    line on stderr when items failed (or ``flagged(row)`` marks some for review, as quality
    control does), saying how many and where the table is."""
    failed = sum(r.get("status") == "failed" for r in rows)
    marked = sum(bool(flagged(r)) for r in rows if r.get("status") != "failed") if flagged else 0
    if not failed and not marked:
        return 0
    counts = f"{failed} of {len(rows)} {what} failed" + (f", {marked} flagged by quality control" if flagged else "")
    print(f"{counts}; see {table}", file=sys.stderr)
    return EXIT_FLAGGED


# --------------------------------------------------------------------------- command line

def add_arguments(parser, workers: int = 1, threads: Optional[int] = None) -> None:
    """The batch options of a command: --workers, --threads, --resume/--force, --dask-scheduler."""
    g = parser.add_argument_group("batch options")
    g.add_argument("--workers", type=arguments.integer(1, 256), default=workers,
                   help=f"parallel worker processes (default {workers}); with --dask-scheduler local, "
                        "the number of Dask workers")
    default = "the cores shared among the workers" if threads is None else str(threads)
    g.add_argument("--threads", type=arguments.threads, default=threads,
                   help=f"CPU threads per worker for torch, numba and BLAS (default: {default})")
    once = g.add_mutually_exclusive_group()
    once.add_argument("--resume", action="store_true", default=True,
                      help="skip the volumes whose outputs are complete (the default)")
    once.add_argument("--force", action="store_true", help="redo every volume, replacing its outputs")
    g.add_argument("--dask-scheduler", metavar="ADDRESS", default=None,
                   help="run on Dask: 'local' starts a LocalCluster of --workers processes on this "
                        "machine; an address (tcp://host:8786) uses a running cluster, whose workers "
                        "must see the input and output paths (shared file system). Dask exchanges "
                        "pickled Python objects, which can run code: connect only to a scheduler you "
                        "started yourself on a network you trust. Needs pip install 'cochleaai[cluster]'")


def options(args) -> dict:
    """Keyword arguments of :func:`run` from the parsed batch options."""
    return {"workers": args.workers, "threads": args.threads, "force": args.force,
            "scheduler": args.dask_scheduler}
