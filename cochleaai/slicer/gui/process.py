"""The worker process a Slicer module starts for a long job (usable only inside Slicer).

:class:`WorkerProcess` writes a job folder (:mod:`cochleaai.worker`), starts
``PythonSlicer -m cochleaai --progress json run-job FOLDER`` through
``slicer.util.launchConsoleProcess`` (Slicer's start-up environment, no console window on
Windows), and reads its output on a reader thread: JSON progress lines become the latest
``(fraction, message)``, the other lines the job's log. The GUI thread polls it
(:meth:`poll`, :meth:`take_log`, :attr:`progress`) and never blocks on it. :meth:`kill` ends
the worker and its process group at once.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

import cochleaai
from cochleaai.progress import parse_progress_line
from cochleaai.worker import read_outcome, write_job

#: Lines of the job's log kept for an error's details.
LOG_TAIL_LINES = 40


def python_executable() -> str:
    """Slicer's own Python (``PythonSlicer``, next to the application), else this interpreter."""
    name = "PythonSlicer.exe" if os.name == "nt" else "PythonSlicer"
    beside = Path(sys.executable).with_name(name)
    if beside.is_file():
        return str(beside)
    return shutil.which("PythonSlicer") or sys.executable


def _package_root() -> str:
    """The folder that holds the ``cochleaai`` package (the extension's module folder in Slicer)."""
    return str(Path(cochleaai.__file__).resolve().parent.parent)


class WorkerProcess:
    """One job in its own process: ``WorkerProcess(function, *args, **kwargs).start()``."""

    def __init__(self, function: Callable, *args, device: str = "auto", threads: Optional[int] = None, **kwargs):
        self.folder = Path(tempfile.mkdtemp(prefix="CochleaAI-job-"))
        try:
            write_job(self.folder, function, *args, **kwargs)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise
        self.device = device
        self.threads = threads
        self.proc = None
        self._lock = threading.Lock()
        self._progress: Optional[Tuple[float, str]] = None
        self._log: List[str] = []
        self._tail: List[str] = []
        self._reader: Optional[threading.Thread] = None

    def command(self) -> List[str]:
        command = [python_executable(), "-m", "cochleaai", "--progress", "json", "run-job", str(self.folder),
                   "--device", self.device]
        if self.threads:
            command += ["--threads", str(int(self.threads))]
        return command

    def environment(self) -> dict:
        """What the worker's environment adds: the package on its path, unbuffered output."""
        path = [_package_root()] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        return {"PYTHONPATH": os.pathsep.join(path), "PYTHONUNBUFFERED": "1"}

    def start(self) -> "WorkerProcess":
        import slicer  # lazy: Slicer's own, present only inside the application

        self.proc = slicer.util.launchConsoleProcess(self.command(), updateEnvironment=self.environment())
        self._reader = threading.Thread(target=self._read, name="CochleaAI worker output", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        for line in iter(self.proc.stdout.readline, ""):
            line = line.rstrip("\r\n")
            parsed = parse_progress_line(line)
            with self._lock:
                if parsed is not None:
                    self._progress = parsed
                else:
                    self._log.append(line)
                    self._tail = (self._tail + [line])[-LOG_TAIL_LINES:]

    @property
    def pid(self) -> Optional[int]:
        return None if self.proc is None else self.proc.pid

    def poll(self) -> Optional[int]:
        """The exit status once the worker has ended and its output is read, else None."""
        if self.proc is None or self.proc.poll() is None:
            return None
        if self._reader is not None:
            self._reader.join(timeout=1.0)
        return self.proc.returncode

    def take_progress(self) -> Optional[Tuple[float, str]]:
        with self._lock:
            progress, self._progress = self._progress, None
        return progress

    def take_log(self) -> List[str]:
        with self._lock:
            lines, self._log = self._log, []
        return lines

    def kill(self) -> None:
        """End the worker at once, and whatever it started in its process group."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if hasattr(os, "killpg"):
            try:
                if os.getpgid(self.proc.pid) == self.proc.pid:   # it made its own group
                    os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        self.proc.wait()

    def outcome(self) -> Any:
        """The job's result, or the error to show (see :func:`cochleaai.worker.read_outcome`)."""
        with self._lock:
            tail = "\n".join(self._tail)
        return read_outcome(self.folder, self.proc.returncode, tail)

    def close(self) -> None:
        """Kill it if it still runs and delete the job folder."""
        self.kill()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        shutil.rmtree(self.folder, ignore_errors=True)
