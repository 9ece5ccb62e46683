"""The job runner shared by the four CochleaAI module widgets (usable only inside Slicer).

``slicer`` is imported inside the functions that need it, so this file imports anywhere
(tests drive it with stand-ins), but nothing in it works outside the Slicer application.

* :class:`JobRunner` runs a job with a progress bar, Cancel, a status line with the elapsed
  time, a log box and error pop-ups, in one of two ways:

  - ``runInProcess(description, function, *args, finish=None, **kwargs)`` runs a core
    function in a worker process (:class:`~cochleaai.slicer.gui.process.WorkerProcess`,
    ``PythonSlicer -m cochleaai run-job``) while the GUI thread keeps turning Qt's event loop
    and shows the worker's progress and log; then ``finish(result)`` runs on the GUI thread
    (it makes the result nodes). Cancel kills the worker at once; a crash of the worker is
    shown as an error and Slicer goes on; its memory goes back when it exits. For all long
    work. The arguments are plain data (read the input nodes first) and are pickled.
  - ``run(description, function, *args)`` calls the function on the GUI thread with
    ``progress=runner.report``; Qt events are processed at each report. Only for
    sub-second work and for work that reads or writes MRML throughout.

  Either way errors are shown the same way, and Cancel leaves the scene as it was. One job
  runs at a time in all four modules together (they share one job slot), and a job is also
  cancelled, its result dropped, when the scene is closed or Slicer quits while it runs.
* ``runner.guard(slot, button)`` wraps an action's slot: it runs only when no job is running
  and the Python packages are there (``dependencies``, a
  :class:`~cochleaai.slicer.gui.dependencies.DependencyCheck`, offers to install them first).
  While the job it started runs, ``button`` reads "Cancel" and a click on it cancels the job.

A module widget then needs only::

    self.runner = JobRunner(self.ui.progressBar, self.ui.cancelButton, self.ui.statusLabel,
                            dependencies=DependencyCheck(), logBox=self.ui.logTextEdit)
    self.ui.applyButton.connect("clicked(bool)", self.runner.guard(self.onApply, self.ui.applyButton))
    ...
    inputs = self.logic.read_inputs(volumeNode)                  # MRML -> plain data
    nodes = self.runner.runInProcess("Segment", segment, (inputs.volume, inputs.points),
                                     finish=lambda result: self.logic.add_result_nodes(inputs, result))

A job on the GUI thread must report progress regularly: a report is where Cancel takes effect.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Iterator, List, Optional

from cochleaai.errors import CochleaAIError
from cochleaai.progress import Cancelled
from cochleaai.slicer.gui.dependencies import translator
from cochleaai.slicer.gui.process import WorkerProcess
from cochleaai.worker import WorkerFailed

_ = translator("cochleaai.slicer.gui.jobs")

_STEPS = 1000             # progress bar resolution
_REFRESH_SECONDS = 0.05   # how often a report (or the background wait loop) lets Qt process events
_CANCELLED = object()   # the "failure" of a cancelled job (never a message to show)


class _JobSlot:
    """The one CochleaAI job that may run at a time, whichever module's runner started it:
    jobs share torch's threads, the numba kernel and the scene."""

    def __init__(self):
        self._lock = threading.Lock()
        self.runner: Optional["JobRunner"] = None
        self.description = ""

    def take(self, runner: "JobRunner", description: str) -> bool:
        if not self._lock.acquire(blocking=False):
            return False
        self.runner, self.description = runner, description
        return True

    def release(self) -> None:
        self.runner, self.description = None, ""
        self._lock.release()


_JOBS = _JobSlot()


@contextmanager
def job_slot(description: str) -> Iterator[None]:
    """Hold the one job slot for work started outside a module's runner (the Sample Data
    module's phantom); raises :class:`CochleaAIError` when a job runs already."""
    holder = object()
    if not _JOBS.take(holder, description):
        raise CochleaAIError(_("{job} is running; wait for it or cancel it, then try again.").format(
            job=_JOBS.description))
    try:
        yield
    finally:
        _JOBS.release()
_QUIT_SIGNALS = ("aboutToQuit()", "lastWindowClosed()")


class JobRunner:
    """Run one long Logic call at a time, with progress, Cancel and error display.

    ``busyWidgets`` are disabled while a job runs (their previous enabled state is
    restored afterwards), so a job cannot be started twice.
    """

    def __init__(self, progressBar, cancelButton=None, statusLabel=None, busyWidgets=(), dependencies=None,
                 logBox=None):
        self.progressBar = progressBar
        self.logBox = logBox                # a QPlainTextEdit (or None): the jobs' output, with times
        #: Where worker processes run torch: "auto" (a GPU when there is one), "cpu" or "gpu".
        self.device = "auto"
        #: torch CPU threads of a worker process (None: torch's choice).
        self.threads = None
        #: The process of the job running now (None on the GUI thread or when idle).
        self.worker: Optional[WorkerProcess] = None
        self._button = None                 # the action button that reads "Cancel" while its job runs
        self._buttonText = ""
        self._nextButton = None
        self._started = 0.0
        self._message = ""
        self._share = 1.0
        self.dependencies = dependencies    # has ensure() -> bool and message; None: nothing to check
        self.cancelButton = cancelButton
        self.statusLabel = statusLabel
        self.busyWidgets: List[Any] = list(busyWidgets)
        self._running = False
        # An Event, not a bool: a background worker reads it from its own thread. Each job
        # gets its own, so a worker left behind can never be revived by the next job.
        self._cancel = threading.Event()
        self._cancelReason = ""
        self._lastRefresh = 0.0
        self._watches: List[Callable[[], None]] = []
        self.progressBar.setRange(0, _STEPS)
        self.progressBar.setValue(0)
        if self.cancelButton is not None:
            self.cancelButton.enabled = False
            self.cancelButton.connect("clicked(bool)", self.requestCancel)

    @property
    def running(self) -> bool:
        return self._running

    def setStatus(self, message: str) -> None:
        if self.statusLabel is not None:
            self.statusLabel.text = message

    def requestCancel(self, *_unused, reason: str = "") -> None:
        """Ask the running job to stop at its next progress report (its result is dropped)."""
        if self._running and not self._cancel.is_set():
            self._cancelReason = reason
            self._cancel.set()
            if self.cancelButton is not None:
                self.cancelButton.enabled = False
            if self._button is not None:
                self._button.enabled = False
            if self.worker is not None:     # a worker process stops now, not at its next report
                self.worker.kill()
            self.setStatus(_("Cancelling..."))

    def ready(self) -> bool:
        """Whether an action may start now: no CochleaAI job is running (in any module), and
        the Python packages are installed (the first time, the dependency check offers to
        install them). When not, the status line or an error dialog says why."""
        if _JOBS.runner is not None:
            self.setStatus(_("{job} is running; wait for it or cancel it.").format(job=_JOBS.description))
            return False
        if self.dependencies is None:
            return True
        try:
            ok = self.dependencies.ensure()
        except Exception as error:      # shown like a failed job
            self.showFailure(_("Install Python packages"), error)
            return False
        if not ok:
            self.setStatus(self.dependencies.message)
        return ok

    def guard(self, slot: Callable[..., Any], button=None) -> Callable[..., None]:
        """``slot`` wrapped to run only when :meth:`ready` (connect the wrapper to ``button``).

        With ``button``, the button reads "Cancel" while the job the slot starts runs, and a
        click on it then cancels that job.
        """
        def guarded(*args):
            if button is not None and self._running and self._button is button:
                self.requestCancel()
                return
            if self.ready():
                self._nextButton = button
                try:
                    slot(*args)
                finally:
                    self._nextButton = None
        return guarded

    def log(self, text: str) -> None:
        """Add a line to the log box (and Slicer's log)."""
        logging.info(text)
        if self.logBox is not None:
            self.logBox.appendPlainText(text)

    def _elapsed(self) -> str:
        return _("{seconds:.0f} s").format(seconds=time.monotonic() - self._started)

    def _showProgress(self, fraction: float, message: str) -> None:
        self.progressBar.setValue(int(round(min(max(float(fraction), 0.0), 1.0) * _STEPS)))
        if message:
            self._message = message
        if self._message:
            self.setStatus(f"{self._message} ({self._elapsed()})")

    def report(self, fraction: float, message: str = "") -> None:
        """Progress callback for a job on the GUI thread; raises Cancelled once Cancel was clicked."""
        if self._cancel.is_set():
            raise Cancelled("Cancelled by the user.")
        self._showProgress(fraction, message)
        now = time.monotonic()
        if now - self._lastRefresh >= _REFRESH_SECONDS:
            self._lastRefresh = now
            import slicer  # lazy: Slicer's own, present only inside the application

            slicer.app.processEvents()
            if self._cancel.is_set():
                raise Cancelled("Cancelled by the user.")

    # ------------------------------------------------------------ running a job
    def run(self, description: str, function: Callable[..., Any], *args, **kwargs) -> Optional[Any]:
        """Call ``function(*args, progress=self.report, **kwargs)`` on the GUI thread.

        Returns its result, or ``None`` when it was cancelled or failed (the user has
        then been told why) or when another job is already running.
        """
        savedStates = self._start(description)
        if savedStates is None:
            return None
        result, failure, details = None, None, None
        try:
            result = function(*args, progress=self.report, **kwargs)
        except BaseException as error:
            failure, details = self._failure(description, error, traceback.format_exc())
            if failure is None:  # not ours to handle (e.g. KeyboardInterrupt)
                raise
        finally:
            self._stop(savedStates)
        return self._conclude(description, result, failure, details)

    def runInProcess(self, description: str, function: Callable[..., Any], args=(), kwargs=None,
                     finish: Optional[Callable[[Any], Any]] = None, share: float = 1.0) -> Optional[Any]:
        """Run the core function ``function(*args, progress=..., **kwargs)`` in a worker
        process, then ``finish(result)`` on this (GUI) thread. The worker's progress fills
        the first ``share`` of the bar (``finish`` reports the rest through :meth:`report`).

        The arguments must be plain, picklable data: read the input nodes before calling
        this. While the worker runs, this thread turns Qt's event loop (every few tens of
        milliseconds) and shows its progress and log. ``finish`` (e.g. creating the result
        nodes) may report through :meth:`report`; it is skipped when the job was cancelled
        (Cancel, module closed, scene closed) or failed, so the scene is left as it was.

        Returns ``finish``'s return value (the result when ``finish`` is None), or ``None``
        when the job was cancelled or failed (the user has then been told why) or when
        another job is already running.
        """
        import slicer  # lazy: Slicer's own, present only inside the application

        savedStates = self._start(description)
        if savedStates is None:
            return None
        result, failure, details = None, None, None
        worker = None
        try:
            worker = WorkerProcess(function, *args, device=self.device, threads=self.threads, **(kwargs or {}))
            self._share = float(share)
            self.worker = worker.start()
            self.log(_("{job}: worker process {pid} started.").format(job=description, pid=worker.pid))
            slicer.app.processEvents()  # paint the disabled widgets and the status now
            while worker.poll() is None and not self._cancel.is_set():
                self._showWorker(worker)
                slicer.app.processEvents()
                time.sleep(_REFRESH_SECONDS)
            self._showWorker(worker)
            if self._cancel.is_set():   # even a finished job: the user asked not to have it
                failure = _CANCELLED
            else:
                result = worker.outcome()
                if finish is not None:
                    result = finish(result)
        except BaseException as error:
            failure, details = self._failure(description, error, traceback.format_exc())
            if failure is None:
                raise
        finally:
            self.worker = None
            if worker is not None:
                worker.close()
            self._stop(savedStates)
        return self._conclude(description, result, failure, details)

    def _showWorker(self, worker: WorkerProcess) -> None:
        for line in worker.take_log():
            if line.strip():
                self.log(line)
        progress = worker.take_progress()
        if progress is not None:
            self._showProgress(progress[0] * self._share, progress[1])
        elif self._message:
            self.setStatus(f"{self._message} ({self._elapsed()})")

    def _watch(self):
        """Cancel the job when the scene is closed (its result belongs to the old scene) or
        Slicer quits; returns what :meth:`_unwatch` needs to stop watching."""
        import slicer  # lazy: Slicer's own, present only inside the application

        watches = []
        scene = getattr(slicer, "mrmlScene", None)
        if scene is not None and hasattr(scene, "AddObserver"):
            tag = scene.AddObserver(scene.StartCloseEvent, lambda *_unused: self.requestCancel(
                reason="the scene was closed"))
            watches.append(lambda: scene.RemoveObserver(tag))
        app = getattr(slicer, "app", None)
        if app is not None and hasattr(app, "connect"):
            def quitting(*_unused):
                self.requestCancel(reason="Slicer is closing")
            for signal in _QUIT_SIGNALS:
                app.connect(signal, quitting)
                watches.append(lambda signal=signal: app.disconnect(signal, quitting))
        return watches

    def _start(self, description: str):
        """Take the shared job slot and set the widgets up; None when another job runs."""
        if self._running or not _JOBS.take(self, description):
            if not self._running:
                self.setStatus(_("{job} is running; wait for it or cancel it.").format(job=_JOBS.description))
            return None
        self._running = True
        self._cancel = threading.Event()
        self._cancelReason = ""
        self._lastRefresh = 0.0
        self._started = time.monotonic()
        self._message = _("{job}...").format(job=description)
        self._button = self._nextButton
        savedStates = [(w, bool(w.enabled)) for w in self.busyWidgets if w is not self._button]
        for widget, _enabled in savedStates:
            widget.enabled = False
        if self.cancelButton is not None:
            self.cancelButton.enabled = True
        if self._button is not None:
            self._buttonText = self._button.text
            self._button.text = _("Cancel")
            self._button.enabled = True
        self.progressBar.setValue(0)
        self.setStatus(self._message)
        self.log(_("{job}: started.").format(job=description))
        self._watches = self._watch()
        return savedStates

    def _stop(self, savedStates) -> None:
        for unwatch in self._watches:
            unwatch()
        self._watches = []
        self._running = False
        _JOBS.release()
        if self.cancelButton is not None:
            self.cancelButton.enabled = False
        if self._button is not None:
            self._button.text = self._buttonText
            self._button.enabled = True
            self._button = None
        for widget, enabled in savedStates:
            widget.enabled = enabled

    @staticmethod
    def _failure(description: str, error: BaseException, details: Optional[str]):
        """(message, traceback or None) to show for ``error``; (None, None) for one to re-raise."""
        if isinstance(error, Cancelled):
            return _CANCELLED, None
        if isinstance(error, WorkerFailed):     # a crash or bug in the worker: its own traceback
            logging.error("%s failed: %s\n%s", description, error, error.details or "")
            return str(error), error.details
        if isinstance(error, CochleaAIError):
            return str(error), None
        if isinstance(error, Exception):  # an unexpected bug: log it and show the traceback
            logging.error("%s failed\n%s", description, details)
            return _("Unexpected error: {error}").format(error=error), details
        return None, None

    def showFailure(self, description: str, error: BaseException) -> None:
        """Show ``error`` as a failure of ``description``, the way a failed job is shown.

        For errors raised before a job starts, e.g. while reading its input nodes for
        :meth:`runInProcess`. Errors other than ``Exception`` are re-raised.
        """
        details = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        failure, details = self._failure(description, error, details)
        if failure is None:
            raise error
        self._tell(description, failure, details)

    def _conclude(self, description: str, result, failure, details) -> Optional[Any]:
        """Tell the user how the job ended; returns its result, or None when it did not succeed."""
        if failure is None:
            self._cancelReason = ""
            self.progressBar.setValue(_STEPS)
            self.setStatus(_("{job}: done in {elapsed}.").format(job=description, elapsed=self._elapsed()))
            self.log(_("{job}: done in {elapsed}.").format(job=description, elapsed=self._elapsed()))
            return result
        self._tell(description, failure, details)
        return None

    def _tell(self, description: str, failure, details) -> None:
        reason, self._cancelReason = self._cancelReason, ""
        self.progressBar.setValue(0)
        if failure is _CANCELLED:
            text = (_("{job}: cancelled because {reason}. The scene was left as it was.") if reason else
                    _("{job}: cancelled. The scene was left as it was."))
            self.setStatus(text.format(job=description, reason=reason))
            self.log(text.format(job=description, reason=reason))
            return
        self.setStatus(_("{job}: failed.").format(job=description))
        self.log(_("{job}: failed: {failure}").format(job=description, failure=failure))
        import slicer  # lazy: Slicer's own, present only inside the application

        extra = {"detailedText": details} if details else {}
        slicer.util.errorDisplay(_("{job} failed.").format(job=description) + f"\n\n{failure}",
                                 windowTitle=description, **extra)
