"""Torch CPU threads: the commands' ``--threads`` option and single-threaded blocks."""
from __future__ import annotations

from contextlib import contextmanager


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
