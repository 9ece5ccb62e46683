"""CPU threads: the commands' ``--threads`` option, single-threaded blocks, and the limits of
batch workers: torch, numba, and numpy's BLAS (through threadpoolctl).

torch's thread count is one setting for the whole process, and in Slicer a worker thread
(a segmentation) and the GUI thread (the VAE sliders) may each run a block at the same
time. Blocks are therefore counted under a lock: the count the process had before the
first block began comes back when the last one ends, whatever the order they end in; in
between, the most recent block still running decides.

The BLAS thread count changes the rounding of some sums, so a batch gives the same numbers
in this process, in a pool process and on a Dask worker only with the same limits in all.
"""
from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from typing import Dict, Optional

_lock = threading.Lock()
_active: Dict[object, int] = {}   # running block -> its thread count, oldest first
_before: Optional[int] = None     # the count to restore when the last block ends

#: Read by the thread pools when they start: OpenMP (torch), MKL, OpenBLAS, Accelerate, numba.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS")


def set_torch_threads(n) -> None:
    """Use ``n`` torch CPU threads from now on; ``None`` or 0 keeps torch's choice.

    Inside a :func:`torch_threads` block, ``n`` is also what comes back after the blocks.
    """
    global _before
    if n:
        import torch  # lazy: installed on first use in Slicer

        with _lock:
            torch.set_num_threads(int(n))
            if _active:
                _before = int(n)


@contextmanager
def torch_threads(n: int):
    """Run a block on ``n`` torch CPU threads, then restore the previous number."""
    global _before
    import torch  # lazy: installed on first use in Slicer

    block = object()
    with _lock:
        if not _active:
            _before = torch.get_num_threads()
        _active[block] = int(n)
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        with _lock:
            del _active[block]
            torch.set_num_threads(next(reversed(_active.values())) if _active else _before)


def thread_environment(n: int) -> dict:
    """Environment variables that cap at ``n`` the thread pools a new process starts."""
    return {name: str(int(n)) for name in THREAD_VARIABLES}


def limit_threads(n: int) -> None:
    """Cap this process at ``n`` threads for torch, numba and BLAS, already imported or not.

    A pool reads its variable once, when it starts, so the environment covers the
    libraries imported from now on; those already loaded are told directly. numba's
    setting belongs to the calling thread, so call this in the thread that runs the work
    (a Dask worker runs tasks in a thread of its own).
    """
    from threadpoolctl import threadpool_limits  # lazy: only batch runs cap BLAS; Slicer's Python lacks it

    n = max(1, int(n))
    os.environ.update(thread_environment(n))
    threadpool_limits(limits=n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    if "numba" in sys.modules:
        numba = sys.modules["numba"]
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


@contextmanager
def threads_limited(n):
    """Run a block in this process on at most ``n`` torch, numba and BLAS threads, then
    restore them; ``None`` or 0 changes nothing."""
    if not n:
        yield
        return
    import numba  # lazy: installed on first use in Slicer
    import torch  # lazy: installed on first use in Slicer
    from threadpoolctl import threadpool_limits  # lazy: only batch runs cap BLAS; Slicer's Python lacks it

    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(int(n))
    numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(limits=int(n)):
            yield
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])
