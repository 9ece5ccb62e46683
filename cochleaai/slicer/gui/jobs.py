"""The job runner shared by the four CochleaAI module widgets (usable only inside Slicer).

``slicer`` is imported inside the functions that need it, so this file imports anywhere
(tests drive it with stand-ins), but nothing in it works outside the Slicer application.

* :class:`JobRunner` runs a Logic call with a progress bar, a Cancel button, a status
  label and error pop-ups, in one of two ways:

  - ``run(description, function, *args)`` calls the function on the GUI thread with
    ``progress=runner.report``; Qt events are processed at each report (at most every
    few tens of milliseconds) so the window repaints and Cancel responds. For short
    jobs, and for jobs that read or write MRML throughout.
  - ``runInBackground(description, compute, finish)`` calls ``compute(progress=...)`` in
    a worker thread while the GUI thread keeps processing events and shows the
    reported progress; then ``finish(result)`` runs on the GUI thread. MRML and Qt are
    not thread-safe, so the caller reads its input nodes into plain data *before*,
    ``compute`` touches neither MRML nor Qt, and ``finish`` creates the result nodes.

  Either way clicking Cancel makes the job's next progress report raise
  :class:`~cochleaai.progress.Cancelled`, and errors are shown the same way. One job runs
  at a time in all four modules together (they share one job slot), and a job is also
  cancelled, its result dropped, when the scene is closed or Slicer quits while it runs.
* ``runner.guard(slot)`` wraps an action's slot: it runs only when no job is running and
  the Python packages are there (``dependencies``, a
  :class:`~cochleaai.slicer.gui.dependencies.DependencyCheck`, offers to install them first).

A module widget then needs only::

    self.runner = JobRunner(self.ui.progressBar, self.ui.cancelButton, self.ui.statusLabel,
                            dependencies=DependencyCheck())
    self.ui.reduceButton.connect("clicked(bool)", self.runner.guard(self.onReduce))
    ...
    result = self.runner.run("Reduce metal artifacts", self.logic.reduce, volumeNode)
    ...
    inputs = self.logic.read_inputs(volumeNode)                  # GUI thread: MRML -> data
    nodes = self.runner.runInBackground(
        "Segment", lambda progress: self.logic.compute(inputs, progress=progress),
        lambda result: self.logic.add_nodes(slicer.mrmlScene, result))

Jobs must report progress regularly: a report is where Cancel takes effect.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any, Callable, List, Optional

from cochleaai.errors import CochleaAIError
from cochleaai.progress import Cancelled
from cochleaai.slicer.gui.dependencies import translator

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
_QUIT_SIGNALS = ("aboutToQuit()", "lastWindowClosed()")


class _Worker(threading.Thread):
    """Runs ``compute(progress=report)`` and keeps its outcome for the GUI thread."""

    def __init__(self, compute: Callable[..., Any], report: Callable[[float, str], None]):
        super().__init__(name="CochleaAI job", daemon=True)  # never keeps Slicer from quitting
        self._compute = compute
        self._report = report
        self.done = threading.Event()
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.details: Optional[str] = None   # traceback text, taken in the worker where it is

    def run(self) -> None:
        try:
            self.result = self._compute(progress=self._report)
        except BaseException as error:  # everything is handed to the GUI thread to show
            self.error = error
            self.details = traceback.format_exc()
        finally:
            self.done.set()


class JobRunner:
    """Run one long Logic call at a time, with progress, Cancel and error display.

    ``busyWidgets`` are disabled while a job runs (their previous enabled state is
    restored afterwards), so a job cannot be started twice.
    """

    def __init__(self, progressBar, cancelButton, statusLabel=None, busyWidgets=(), dependencies=None):
        self.progressBar = progressBar
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
        # Latest (fraction, message) reported by a background worker, shown by the GUI thread.
        self._pendingLock = threading.Lock()
        self._pending = None
        self._watches: List[Callable[[], None]] = []
        self.progressBar.setRange(0, _STEPS)
        self.progressBar.setValue(0)
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
            self.cancelButton.enabled = False
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

    def guard(self, slot: Callable[..., Any]) -> Callable[..., None]:
        """``slot`` wrapped to run only when :meth:`ready` (connect the wrapper to the button)."""
        def guarded(*args):
            if self.ready():
                slot(*args)
        return guarded

    def _showProgress(self, fraction: float, message: str) -> None:
        self.progressBar.setValue(int(round(min(max(float(fraction), 0.0), 1.0) * _STEPS)))
        if message:
            self.setStatus(message)

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

    def _workerReport(self, cancel: threading.Event) -> Callable[..., None]:
        """Progress callback for a background job: only stores the values (no Qt there)."""
        def report(fraction: float, message: str = "") -> None:
            if cancel.is_set():
                raise Cancelled("Cancelled by the user.")
            with self._pendingLock:
                self._pending = (fraction, message)
        return report

    def _showPending(self) -> None:
        with self._pendingLock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self._showProgress(*pending)

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

    def runInBackground(self, description: str, compute: Callable[..., Any],
                        finish: Optional[Callable[[Any], Any]] = None) -> Optional[Any]:
        """Run ``compute(progress=...)`` in a worker thread, then ``finish(result)`` here.

        ``compute`` must not touch MRML or Qt: read the input nodes before calling this.
        While it runs, this (GUI) thread processes Qt events and shows its progress; it
        returns when the job is over. ``finish`` (e.g. creating the result nodes) runs
        on the calling thread and may report through :meth:`report`; it is skipped when
        the job was cancelled (Cancel, module closed, scene closed) or failed.

        Returns ``finish``'s return value (``compute``'s result when ``finish`` is None),
        or ``None`` when the job was cancelled or failed (the user has then been told
        why) or when another job is already running.
        """
        import slicer  # lazy: Slicer's own, present only inside the application

        savedStates = self._start(description)
        if savedStates is None:
            return None
        worker = _Worker(compute, self._workerReport(self._cancel))
        result, failure, details = None, None, None
        try:
            worker.start()
            slicer.app.processEvents()  # paint the disabled widgets and the status now
            while not worker.done.wait(_REFRESH_SECONDS):  # sleeps, wakes as soon as it ends
                self._showPending()
                slicer.app.processEvents()
            worker.join()
            self._showPending()
            if self._cancel.is_set():   # even a finished job: the user asked not to have it
                failure = _CANCELLED
            elif worker.error is not None:
                failure, details = self._failure(description, worker.error, worker.details)
                if failure is None:
                    raise worker.error
            elif finish is None:
                result = worker.result
            else:
                try:
                    result = finish(worker.result)
                except BaseException as error:
                    failure, details = self._failure(description, error, traceback.format_exc())
                    if failure is None:
                        raise
        finally:
            if worker.is_alive():       # left early (an error in the event loop): let it stop
                self._cancel.set()
            self._stop(savedStates)
        return self._conclude(description, result, failure, details)

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
        self._pending = None
        savedStates = [(w, bool(w.enabled)) for w in self.busyWidgets]
        for widget, _enabled in savedStates:
            widget.enabled = False
        self.cancelButton.enabled = True
        self.progressBar.setValue(0)
        self.setStatus(_("{job}...").format(job=description))
        self._watches = self._watch()
        return savedStates

    def _stop(self, savedStates) -> None:
        for unwatch in self._watches:
            unwatch()
        self._watches = []
        self._running = False
        _JOBS.release()
        self.cancelButton.enabled = False
        for widget, enabled in savedStates:
            widget.enabled = enabled

    @staticmethod
    def _failure(description: str, error: BaseException, details: Optional[str]):
        """(message, traceback or None) to show for ``error``; (None, None) for one to re-raise."""
        if isinstance(error, Cancelled):
            return _CANCELLED, None
        if isinstance(error, CochleaAIError):
            return str(error), None
        if isinstance(error, Exception):  # an unexpected bug: log it and show the traceback
            logging.error("%s failed\n%s", description, details)
            return _("Unexpected error: {error}").format(error=error), details
        return None, None

    def showFailure(self, description: str, error: BaseException) -> None:
        """Show ``error`` as a failure of ``description``, the way a failed job is shown.

        For errors raised before a job starts, e.g. while reading its input nodes for
        :meth:`runInBackground`. Errors other than ``Exception`` are re-raised.
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
            self.setStatus(_("{job}: done.").format(job=description))
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
            return
        self.setStatus(_("{job}: failed.").format(job=description))
        import slicer  # lazy: Slicer's own, present only inside the application

        extra = {"detailedText": details} if details else {}
        slicer.util.errorDisplay(_("{job} failed.").format(job=description) + f"\n\n{failure}",
                                 windowTitle=description, **extra)
