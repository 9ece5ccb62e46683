"""CPU threads: the commands' ``--threads`` option, single-threaded blocks, and the limits of
batch workers: torch, numba, and numpy's BLAS (through threadpoolctl).

The BLAS thread count changes the rounding of some sums, so a batch gives the same numbers
in this process, in a pool process and on a Dask worker only with the same limits in all.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

#: Read by the thread pools when they start: OpenMP (torch), MKL, OpenBLAS, Accelerate, numba.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMBA_NUM_THREADS")


def set_torch_threads(n) -> None:
    """Use ``n`` torch CPU threads; ``None`` or 0 keeps torch's choice."""
    if n:
        import torch

        torch.set_num_threads(int(n))


@contextmanager
def torch_threads(n: int):
    """Run a block on ``n`` torch CPU threads, then restore the previous number."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
    from threadpoolctl import threadpool_limits

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
    import numba
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(int(n))
    numba.set_num_threads(min(int(n), numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(limits=int(n)):
            yield
    finally:
        torch.set_num_threads(before[0])
        numba.set_num_threads(before[1])
