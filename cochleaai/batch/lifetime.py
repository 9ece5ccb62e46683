"""How long a batch's processes live: pool workers die with their runner, and SIGTERM stops
the runner as Ctrl-C does.

A worker left behind by a killed runner would go on with its item (hundreds of megabytes)
and save it while the next run does the same item. So a worker ends itself as soon as its
runner is gone: on Linux the kernel kills it (``PR_SET_PDEATHSIG``), and everywhere a thread
of the worker looks for the runner twice a second, which also covers a runner that died
before the worker could ask the kernel.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

#: From <sys/prctl.h>.
PR_SET_PDEATHSIG = 1
#: How often a worker checks that its runner is alive.
POLL_SECONDS = 0.5


def die_with(parent: int) -> None:
    """In a worker process: end it when ``parent`` (the runner's process id) is gone."""
    if sys.platform.startswith("linux"):
        try:
            # the signal comes when the thread that started the worker ends: the runner's,
            # which submits every item and stays in run() until the pool is shut down
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass                     # the watcher below does it too
    threading.Thread(target=_watch, args=(parent,), name="cochleaai-runner-watch", daemon=True).start()


def _runner_alive(parent: int) -> bool:
    # POSIX gives an orphan a new parent (init or a subreaper); Windows keeps the old id, but
    # the runner's handle, multiprocessing's parent sentinel, tells there too
    runner = multiprocessing.parent_process()
    return os.getppid() == parent and (runner is None or runner.is_alive())


def _watch(parent: int) -> None:
    while _runner_alive(parent):
        time.sleep(POLL_SECONDS)
    os._exit(1)          # at once: the item is cut short, leaves no record and is redone by the next run


def kill_workers(pool) -> None:
    """Kill the processes of a ProcessPoolExecutor now, without waiting for their items."""
    for process in list((pool._processes or {}).values()):     # the executor's own table: it has no public one
        process.kill()


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


@contextmanager
def sigterm_interrupts():
    """Within the block, SIGTERM raises KeyboardInterrupt as Ctrl-C does, so that a killed
    batch stops its workers and leaves its outputs whole; the previous handler comes back
    after. Only in the main thread, where Python runs signal handlers (and may set them)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        # None: a handler set outside Python, which Python cannot put back; the default is the nearest
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
