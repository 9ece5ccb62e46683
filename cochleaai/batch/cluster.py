"""Batch items on Dask distributed: a LocalCluster on this machine or a running cluster.

Dask is an optional extra (``pip install 'cochleaai[cluster]'``), never needed inside
Slicer; it is imported here only, and only when a batch asks for it. Items travel as
paths: every worker must see the input and output folders under the same paths (a shared
file system), and writes its outputs there itself.
"""
from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager

from cochleaai.batch.items import run_item, warm
from cochleaai.errors import CochleaAIError
from cochleaai.threads import thread_environment

INSTALL = "pip install 'cochleaai[cluster]'"
#: How long to wait for a running scheduler to answer.
CONNECT_TIMEOUT = "20s"


def _distributed():
    try:
        import distributed  # lazy: the optional 'cluster' extra
    except ImportError:
        raise CochleaAIError("Running on Dask needs the Dask distributed package, which is not installed: "
                             f"install it with {INSTALL} (or pip install 'dask[distributed]'), "
                             "or run without --dask-scheduler.") from None
    return distributed


@contextmanager
def client(scheduler: str, workers: int = 2, threads: int = 1):
    """A Dask client: ``"local"`` starts a LocalCluster of ``workers`` processes with one
    task at a time each and ``threads`` threads for its libraries; anything else is the
    address of a running scheduler."""
    distributed = _distributed()
    if scheduler == "local":
        import dask  # lazy: the optional 'cluster' extra

        # processes, one task each: the GIL and numba's per-thread setting rule out threads.
        # No sampling profiler in the workers: its thread takes the GIL every 10 ms, and
        # costs a volume several percent of CPU time; nobody reads its profiles here
        with dask.config.set({"distributed.worker.profile.enabled": False}):
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None, silence_logs=logging.ERROR,
                                               env=thread_environment(threads))
        try:
            with distributed.Client(cluster) as c:
                c.wait_for_workers(workers)        # all of them there to be warmed up
                yield c
        finally:
            cluster.close()
        return
    try:
        c = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CochleaAIError(f"Cannot reach the Dask scheduler at '{scheduler}' ({exc}); check the address "
                             "(e.g. tcp://host:8786) and that the scheduler is running, or use "
                             "--dask-scheduler local.") from None
    with c:
        yield c


def _warm_workers(c, warm_up, threads: int, run: str) -> list:
    """One warm-up task pinned to each worker present now, submitted before the items so
    that every worker is warm before it takes one."""
    if warm_up is None:
        return []
    return [c.submit(warm, warm_up, threads, workers=[address], allow_other_workers=False, pure=False,
                     key=f"cochleaai-warm-up-{k}-{run}") for k, address in enumerate(sorted(c.nthreads()))]


def run_calls(calls, finished, scheduler: str, workers: int, threads: int, outcome, warm_up=None) -> None:
    """Submit ``run_item(*args, threads)`` for each ``(k, args)`` of ``calls`` and call
    ``finished(k, outcome(future, item))`` as they complete; ``warm_up()`` runs once on
    each worker first."""
    distributed = _distributed()
    with client(scheduler, workers, threads) as c:
        run = uuid.uuid4().hex[:8]
        warming = _warm_workers(c, warm_up, threads, run)
        # the items bring the warm-up too: a worker that joins later warms up before its first one
        futures = {c.submit(run_item, *args, threads, warm_up, pure=False, key=f"cochleaai-{args[1].name}-{run}"):
                   (k, args[1]) for k, args in calls}
        try:
            for future in distributed.as_completed(list(futures)):
                k, item = futures[future]
                finished(k, outcome(future, item))
        except BaseException:
            # on Ctrl-C or Cancel: queued items never start; a running one writes whole or not at all
            c.cancel(list(futures) + warming)
            raise
