"""Progress reporting and cancellation shared by every long job.

A job takes ``progress: ProgressCallback | None`` and calls ``progress(fraction, message)``
with fraction in [0, 1]. The callback may raise :class:`Cancelled` to stop the job:
the Slicer widgets do that when the user clicks Cancel, and :class:`Progress` does it
when its cancel event is set.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Tuple, Union

ProgressCallback = Callable[[float, str], None]

#: How the command line shows progress (``python -m cochleaai --progress STYLE <command>``):
#: a bar on stderr, one JSON object per line on stderr for a parent process (the Slicer
#: modules read these), or nothing.
PROGRESS_STYLES = ("bar", "json", "none")
_style = ["bar"]
#: The key that marks a machine-readable progress line: ``{"cochleaai_progress": 0.42, "message": "..."}``.
PROGRESS_KEY = "cochleaai_progress"
#: At most this many JSON progress lines a second (the last report is always written).
_JSON_LINES_PER_SECOND = 20


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


def set_progress_style(style: str) -> None:
    """Choose how :func:`tqdm_progress` reports from now on (one of :data:`PROGRESS_STYLES`)."""
    if style not in PROGRESS_STYLES:
        raise ValueError(f"progress style must be one of {PROGRESS_STYLES}, got {style!r}")
    _style[0] = style


def progress_line(fraction: float, message: str = "") -> str:
    """The machine-readable line of one progress report (no newline)."""
    return json.dumps({PROGRESS_KEY: round(min(max(float(fraction), 0.0), 1.0), 4), "message": str(message)})


def parse_progress_line(line: str) -> Optional[Tuple[float, str]]:
    """``(fraction, message)`` when ``line`` is a :func:`progress_line`, else None (a log line)."""
    text = line.strip()
    if not text.startswith("{") or PROGRESS_KEY not in text:
        return None
    try:
        record = json.loads(text)
        return float(record[PROGRESS_KEY]), str(record.get("message", ""))
    except (ValueError, KeyError, TypeError):
        return None


@contextmanager
def json_progress(stream=None) -> Iterator[Progress]:
    """A :class:`Progress` that writes :func:`progress_line` lines to ``stream`` (stderr)."""
    stream = stream if stream is not None else sys.stderr
    last = {"time": 0.0, "line": None, "written": None}

    def _write(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()
        last["written"] = line

    def _update(fraction: float, message: str) -> None:
        line = progress_line(fraction, message)
        last["line"] = line
        now = time.monotonic()
        if now - last["time"] >= 1.0 / _JSON_LINES_PER_SECOND:
            last["time"] = now
            _write(line)

    yield Progress(_update)
    if last["line"] is not None and last["written"] != last["line"]:
        _write(last["line"])     # the final state, even when it came within the throttle


@contextmanager
def tqdm_progress(description: str = "", disable: bool = False) -> Iterator[Progress]:
    """The command line's progress: a tqdm bar on stderr (``disable``: none), or JSON lines
    or nothing when :func:`set_progress_style` chose so (JSON lines even with ``disable``:
    a parent process asked for them)."""
    if _style[0] == "json":
        with json_progress() as progress:
            yield progress
        return
    if _style[0] == "none":
        yield Progress()
        return
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
