"""Cheap batch jobs for the runner's tests, in a module of their own so that spawned pool
processes and Dask workers import them by name."""
from __future__ import annotations

import os
import time
import zlib
from functools import partial
from pathlib import Path

import numpy as np

from cochleaai import batch
from cochleaai.errors import CochleaAIError

#: Warm-ups run in this process (see warm_up).
WARMED = []


def shout(path, name, folder, log=None, suffix=""):
    """Write the input's text in capitals to ``<name>/result.txt``, with a draw seeded by the
    text (what an item's seed does in a real job); ``log`` counts the calls."""
    text = Path(path).read_text()
    if log:
        with open(log, "a") as handle:
            handle.write(name + "\n")
    if "corrupt" in text:
        raise CochleaAIError(f"{Path(path).name} is damaged")
    if "interrupt" in text:
        (Path(folder) / name).mkdir()
        (Path(folder) / name / "result.txt").write_text("half")
        raise KeyboardInterrupt
    draw = float(np.random.default_rng(zlib.crc32(text.encode())).random())
    (Path(folder) / name).mkdir()
    (Path(folder) / name / "result.txt").write_text(f"{text.upper()}{suffix} {draw!r}")
    return {"chars": len(text), "draw": np.float64(draw)}


def wait_for(path, name, folder, out=None):
    """The item named 'slow' ends only once 'fast' is recorded as complete in ``out``."""
    if name == "slow":
        deadline = time.time() + 60
        while not (Path(out) / ".cochleaai-batch" / "done" / "fast.json").exists() and time.time() < deadline:
            time.sleep(0.05)
        # 'fast' is recorded just before its worker returns: without a pause both may reach the
        # runner in the same wakeup, in either order, on a busy machine
        time.sleep(1.0)
    (Path(folder) / f"{name}.txt").write_text(name)
    return {"pid": os.getpid()}


def nap(path, name, folder, seconds=0.0):
    """Sleep, then write one file: wall time without CPU time."""
    time.sleep(seconds)
    (Path(folder) / f"{name}.txt").write_text(name)
    return {}


def snooze(seconds, name, folder, log, hurry=False):
    """Log ``name pid``, write half a file, sleep ``seconds`` (the item's input; not at all
    with ``hurry``), finish the file: an item to kill in the middle."""
    with open(log, "a") as handle:
        handle.write(f"{name} {os.getpid()}\n")
    result = Path(folder) / f"{name}.txt"
    result.write_text("half")
    time.sleep(0 if hurry else seconds)
    result.write_text(name)
    return {"pid": os.getpid()}


def snooze_items():
    """Two quick items, then four that sleep a minute: two workers are on slow items as soon
    as the quick ones are complete."""
    return [batch.Item(f"q{k}", 0.2) for k in range(2)] + [batch.Item(f"s{k}", 60.0) for k in range(4)]


def snooze_batch(out, log, hurry=False, workers=2):
    """The batch of :func:`snooze_items` (run as a command by the tests that kill it)."""
    return batch.run(partial(snooze, log=str(log), hurry=hurry), snooze_items(), out, workers=workers,
                     signature="snooze")


def thread_counts(path, name, folder):
    """The thread limits the job sees (numba and torch imported here, after the runner set them;
    numpy's BLAS loaded before)."""
    import numba
    import torch
    from threadpoolctl import threadpool_info

    blas = sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
    return {"numba": numba.get_num_threads(), "torch": torch.get_num_threads(), "blas": blas,
            "omp_env": os.environ.get("OMP_NUM_THREADS"), "numba_env": os.environ.get("NUMBA_NUM_THREADS"),
            "pid": os.getpid(), "warmed": len(WARMED)}


def warm_up(log=None, fail=False):
    """A worker's warm-up: counted in WARMED, its process id appended to ``log``."""
    WARMED.append(os.getpid())
    if log:
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
    if fail:
        raise RuntimeError("the warm-up failed")
