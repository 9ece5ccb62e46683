"""Torch CPU threads: the commands' ``--threads`` option and single-threaded blocks.

torch's thread count is one setting for the whole process, and in Slicer a worker thread
(a segmentation) and the GUI thread (the VAE sliders) may each run a block at the same
time. Blocks are therefore counted under a lock: the count the process had before the
first block began comes back when the last one ends, whatever the order they end in; in
between, the most recent block still running decides.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Dict, Optional

_lock = threading.Lock()
_active: Dict[object, int] = {}   # running block -> its thread count, oldest first
_before: Optional[int] = None     # the count to restore when the last block ends


def set_torch_threads(n) -> None:
    """Use ``n`` torch CPU threads from now on; ``None`` or 0 keeps torch's choice.

    Inside a :func:`torch_threads` block, ``n`` is also what comes back after the blocks.
    """
    global _before
    if n:
        import torch

        with _lock:
            torch.set_num_threads(int(n))
            if _active:
                _before = int(n)


@contextmanager
def torch_threads(n: int):
    """Run a block on ``n`` torch CPU threads, then restore the previous number."""
    global _before
    import torch

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
