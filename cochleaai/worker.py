"""One call of a core function in its own process: ``python -m cochleaai run-job FOLDER``.

The Slicer modules run their long work this way, as other Slicer extensions run inference:
a crash of torch or numba ends the worker, not Slicer; Cancel kills the worker at once;
its memory goes back to the system when it exits.

The folder protocol (the parent owns the folder; every file is written whole, then renamed):

* ``job.pkl``: ``{"function": "cochleaai.package.module:name", "args": [...], "kwargs": {...}}``,
  written by :func:`write_job`. Only functions of the core (``cochleaai`` outside
  ``cochleaai.slicer``) may be named, and they receive plain data: Volumes, arrays, points,
  settings objects.
* ``result.pkl``: the function's return value, written when it succeeds.
* ``error.json``: ``{"kind": "user" | "bug", "message": ..., "details": traceback}`` when it
  raised; the exit status is then :data:`~cochleaai.errors.EXIT_USER_ERROR` or 1.

Progress goes to stderr as JSON lines (``--progress json``); everything else the worker
prints is its log. :func:`read_outcome` turns the folder and the exit status into the result
or an error a user can read, including a worker killed by a signal.
"""
from __future__ import annotations

import importlib
import json
import os
import pickle
import signal
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Optional, Union

from cochleaai import arguments
from cochleaai.errors import EXIT_CANCELLED, EXIT_USER_ERROR, CochleaAIError
from cochleaai.progress import Cancelled, Progress, tqdm_progress
from cochleaai.threads import set_torch_threads

JOB_FILE = "job.pkl"
RESULT_FILE = "result.pkl"
ERROR_FILE = "error.json"
#: The package whose functions a job may name, and the part of it that needs Slicer.
CORE_PACKAGE = "cochleaai"
SLICER_PACKAGE = "cochleaai.slicer"
DEVICES = ("auto", "cpu", "gpu")


class WorkerFailed(CochleaAIError):
    """The worker process ended without a result: it crashed, was killed, or hit a bug."""

    def __init__(self, message: str, details: Optional[str] = None):
        super().__init__(message)
        self.details = details


def function_reference(function: Union[str, Callable]) -> str:
    """``"module:qualified.name"`` of a core function (checked: importable, not Slicer's layer)."""
    if callable(function):
        reference = f"{function.__module__}:{function.__qualname__}"
    else:
        reference = str(function)
    resolve(reference)
    return reference


def resolve(reference: str) -> Callable:
    """The function a :func:`function_reference` names; refuses anything outside the core."""
    module_name, _, name = reference.partition(":")
    inside = module_name == CORE_PACKAGE or module_name.startswith(CORE_PACKAGE + ".")
    if not name or not inside or module_name == SLICER_PACKAGE or module_name.startswith(SLICER_PACKAGE + "."):
        raise CochleaAIError(f"A job may only run a function of the CochleaAI core, not {reference!r}.")
    target: Any = importlib.import_module(module_name)
    for part in name.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise CochleaAIError(f"The job names {reference!r}, which this version of CochleaAI does not have.")
    if not callable(target):
        raise CochleaAIError(f"The job names {reference!r}, which is not a function.")
    return target


def _write_whole(path: Path, write: Callable[[Any], None], mode: str = "wb") -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, mode) as handle:
        write(handle)
    os.replace(partial, path)


def write_job(folder: Union[str, Path], function: Union[str, Callable], *args, **kwargs) -> Path:
    """Write the job ``function(*args, **kwargs)`` into ``folder`` (which must exist)."""
    folder = Path(folder)
    job = {"function": function_reference(function), "args": list(args), "kwargs": dict(kwargs)}
    _write_whole(folder / JOB_FILE, lambda handle: pickle.dump(job, handle, protocol=pickle.HIGHEST_PROTOCOL))
    return folder / JOB_FILE


def _write_error(folder: Path, kind: str, message: str, details: str = "") -> None:
    record = {"kind": kind, "message": message, "details": details}
    _write_whole(folder / ERROR_FILE, lambda handle: json.dump(record, handle), mode="w")


def _use_device(device: str) -> None:
    """CPU: hide the GPUs from torch before it looks (it reads the variable when CUDA starts).
    GPU: refuse at once when torch has none."""
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    elif device == "gpu":
        import torch  # lazy: only a GPU request needs it before the job does

        if not torch.cuda.is_available():
            raise CochleaAIError("No GPU that torch can use was found on this computer; choose CPU (or "
                                 "automatic) and run again.")


def run_job(folder: Union[str, Path], device: str = "auto", threads: Optional[int] = None) -> int:
    """Run the job in ``folder`` (the child's side); returns the exit status."""
    folder = Path(folder)
    if hasattr(os, "setpgrp"):      # its own process group: Cancel kills whatever it starts with it
        try:
            os.setpgrp()
        except OSError:             # already a group leader: nothing to do
            pass
    try:
        with open(folder / JOB_FILE, "rb") as handle:
            job = pickle.load(handle)
        _use_device(device)
        set_torch_threads(threads)
        function = resolve(job["function"])
        with tqdm_progress(job["function"].rpartition(":")[2], disable=True) as progress:
            result = function(*job["args"], progress=progress, **job["kwargs"])
        _write_whole(folder / RESULT_FILE,
                     lambda handle: pickle.dump(result, handle, protocol=pickle.HIGHEST_PROTOCOL))
        return 0
    except (Cancelled, KeyboardInterrupt):
        return EXIT_CANCELLED
    except CochleaAIError as error:
        _write_error(folder, "user", str(error))
        return EXIT_USER_ERROR
    except MemoryError:
        _write_error(folder, "user", "Not enough memory for this input; crop the volume around the ear or "
                                     "close other programs, and run again.")
        return EXIT_USER_ERROR
    except Exception as error:      # a bug: its traceback goes to the parent to show
        _write_error(folder, "bug", f"{type(error).__name__}: {error}", traceback.format_exc())
        return 1


#: What :func:`check_worker` can be asked to do at the end instead of returning.
CHECK_FAILURES = ("", "user", "bug", "crash")


def check_worker(steps: int = 5, seconds: float = 0.0, fail: str = "", progress=None) -> dict:
    """The worker's own check: ``steps`` progress reports and log lines, ``seconds`` apart,
    then a result, or the failure asked for (a user error, a bug, or a crash: the process
    aborts). The module self-tests and the tests run it to see the process machinery work."""
    if fail not in CHECK_FAILURES:
        raise CochleaAIError(f"fail must be one of {CHECK_FAILURES}, got {fail!r}.")
    p = Progress.wrap(progress)
    for k in range(int(steps)):
        p(k / steps, f"step {k + 1} of {steps}")
        print(f"worker check: step {k + 1} of {steps}", flush=True)
        time.sleep(seconds)
    if fail == "user":
        raise CochleaAIError("The worker check was asked to fail with a user error.")
    if fail == "bug":
        raise RuntimeError("the worker check was asked to fail with a bug")
    if fail == "crash":
        os.abort()
    p(1.0, "worker check done")
    return {"pid": os.getpid(), "steps": int(steps)}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def read_outcome(folder: Union[str, Path], returncode: int, log_tail: str = "") -> Any:
    """The result of a finished worker, or the error to show: :class:`CochleaAIError` for
    one the user can fix, :class:`WorkerFailed` for a crash, a kill or a bug, and
    :class:`~cochleaai.progress.Cancelled` when it was cancelled."""
    folder = Path(folder)
    if returncode == 0 and (folder / RESULT_FILE).is_file():
        with open(folder / RESULT_FILE, "rb") as handle:
            return pickle.load(handle)
    if returncode == EXIT_CANCELLED:
        raise Cancelled("cancelled")
    if (folder / ERROR_FILE).is_file():
        with open(folder / ERROR_FILE) as handle:
            record = json.load(handle)
        if record.get("kind") == "user":
            raise CochleaAIError(record.get("message", "the job failed"))
        raise WorkerFailed(f"Unexpected error in the worker process: {record.get('message')}",
                           record.get("details") or log_tail or None)
    if returncode < 0:
        raise WorkerFailed(
            f"The worker process stopped unexpectedly ({_signal_name(-returncode)}): it crashed or was "
            "killed, perhaps for lack of memory. Slicer and the scene are as they were; try again, or on a "
            "smaller volume.", log_tail or None)
    raise WorkerFailed(f"The worker process ended with status {returncode} and gave no result.", log_tail or None)


def add_commands(sub) -> None:
    """``run-job FOLDER``: the worker the Slicer modules start (see the module's docstring)."""
    p = sub.add_parser("run-job", help="run one job folder written by the Slicer modules (a worker process)",
                       description="Run the job in FOLDER/job.pkl and write FOLDER/result.pkl or "
                                   "FOLDER/error.json. Use with --progress json to report progress.")
    p.add_argument("folder", help="the job folder")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="auto (a GPU when torch has one), cpu (hide the GPUs) or gpu (refuse without one)")
    p.add_argument("--threads", type=arguments.integer(minimum=1), default=None, help="torch CPU threads")
    p.set_defaults(func=lambda args: run_job(args.folder, args.device, args.threads))
