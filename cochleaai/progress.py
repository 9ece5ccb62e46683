"""Progress reporting and cancellation shared by every long job.

A job takes ``progress: ProgressCallback | None`` and calls ``progress(fraction, message)``
with fraction in [0, 1]. The callback may raise :class:`Cancelled` to stop the job:
the Slicer widgets do that when the user clicks Cancel, and :class:`Progress` does it
when its cancel event is set.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Union

ProgressCallback = Callable[[float, str], None]


class Cancelled(Exception):
    """Raised inside a job when the user asked to stop it."""


class Progress:
    """Callable progress reporter with cancellation and nested stages.

    ``Progress(callback)`` forwards ``(fraction, message)`` to ``callback``;
    ``p.stage(0.2, 0.8)`` returns a reporter whose [0, 1] maps to [0.2, 0.8] of the parent.
    """

    def __init__(self, callback: Optional[ProgressCallback] = None,
                 cancel_event: Optional[threading.Event] = None,
                 start: float = 0.0, end: float = 1.0):
        self._callback = callback
        self.cancel_event = cancel_event if cancel_event is not None else threading.Event()
        self._start = start
        self._end = end

    @classmethod
    def wrap(cls, progress: "Union[Progress, ProgressCallback, None]") -> "Progress":
        """Accept a Progress, a plain callback or None and return a Progress."""
        if isinstance(progress, Progress):
            return progress
        return cls(progress)

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def __call__(self, fraction: float, message: str = "") -> None:
        if self.cancel_event.is_set():
            raise Cancelled("cancelled by the user")
        fraction = min(max(float(fraction), 0.0), 1.0)
        if self._callback is not None:
            self._callback(self._start + fraction * (self._end - self._start), message)

    def stage(self, start: float, end: float) -> "Progress":
        """A child reporter covering [start, end] of this one's range."""
        span = self._end - self._start
        return Progress(self._callback, self.cancel_event,
                        self._start + start * span, self._start + end * span)


@contextmanager
def tqdm_progress(description: str = "", disable: bool = False) -> Iterator[Progress]:
    """A :class:`Progress` that draws a tqdm bar on stderr (used by the CLI)."""
    from tqdm import tqdm  # lazy: only the command line draws bars; Slicer's Python lacks tqdm

    bar = tqdm(total=1000, desc=description, disable=disable,
               bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed} {postfix}")

    def _update(fraction: float, message: str) -> None:
        bar.n = int(round(fraction * 1000))
        if message:
            bar.set_postfix_str(message, refresh=False)
        bar.refresh()

    try:
        yield Progress(_update)
        bar.n = 1000
        bar.refresh()
    finally:
        bar.close()
