"""A batch killed with SIGINT, SIGTERM or SIGKILL leaves no worker process and no
half-written output, and the next run resumes it; one run at a time per output folder;
segment-batch's exit status tells when volumes failed.

The killed batch is a command of its own (``batch_jobs.snooze_batch``) with 2 workers on
items that sleep a minute; the tests kill it as soon as both workers are on one.
"""
import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import pytest

import batch_jobs
from cochleaai import batch
from cochleaai.errors import EXIT_FLAGGED, CochleaAIError

ROOT = Path(__file__).resolve().parents[3]
SLOW = {"s0", "s1", "s2", "s3"}
pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals and process groups")

#: The batch as a command, Ctrl-C raising KeyboardInterrupt as in a terminal (whatever pytest was started with).
COMMAND = ("import signal, sys, batch_jobs; signal.signal(signal.SIGINT, signal.default_int_handler); "
           "batch_jobs.snooze_batch(*sys.argv[1:])")


def _started(log) -> list:
    """``(name, pid)`` of every item started, in order."""
    text = Path(log).read_text() if Path(log).exists() else ""
    return [tuple(line.split()) for line in text.splitlines()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:       # a zombie is dead, only not yet reaped
            return handle.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def snoozing(tmp_path):
    """Start the batch into ``tmp_path/out``; returns (process, log, worker pids) once both
    workers sleep in a slow item. Whatever is left of its process group is killed after."""
    out, log = tmp_path / "out", tmp_path / "started.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "Testing")]))
    proc = subprocess.Popen([sys.executable, "-c", COMMAND, str(out), str(log)], cwd=ROOT, env=env,
                            start_new_session=True, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_until(lambda: len(SLOW & {n for n, _ in _started(log)}) == 2 or proc.poll() is not None, 60)
        assert proc.poll() is None, proc.stderr.read()
        workers = {int(pid) for name, pid in _started(log) if name in SLOW}
        assert len(workers) == 2
        yield proc, out, log, workers
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)          # the test failed: nothing of it stays behind
        except ProcessLookupError:
            pass
        proc.wait()
        proc.stderr.close()


def _outputs(out) -> set:
    return {p.name for p in out.iterdir()} - {batch.RECORDS}


def _records(out) -> set:
    return {p.stem for p in (out / batch.RECORDS / "done").iterdir()}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_a_killed_batch_leaves_no_worker_and_the_next_run_resumes_it(snoozing, signum):
    proc, out, log, workers = snoozing
    os.kill(proc.pid, signum)
    # SIGINT and SIGTERM: the batch stops at once, not after the minute of its running items
    proc.wait(timeout=15)
    assert proc.returncode != 0
    # and its workers die with it, whatever killed it
    assert _wait_until(lambda: not any(_alive(pid) for pid in workers), 3), \
        f"workers left running: {[pid for pid in workers if _alive(pid)]}"
    # the quick items are complete; the slow ones left nothing in the output folder
    assert _records(out) == {"q0", "q1"} and _outputs(out) == {"q0.txt", "q1.txt"}

    started = len(_started(log))
    rows = batch_jobs.snooze_batch(out, log, hurry=True, workers=1)
    assert [r["status"] for r in rows] == ["resumed"] * 2 + ["done"] * 4
    assert sorted(name for name, _ in _started(log)[started:]) == sorted(SLOW)   # the complete ones not redone
    assert _outputs(out) == {f"{n}.txt" for n in ["q0", "q1", *SLOW]}
    assert all((out / f"{n}.txt").read_text() == n for n in SLOW)
    assert not any((out / batch.RECORDS / "staging").iterdir())


def test_a_second_run_on_the_folder_is_refused_until_the_first_is_gone(snoozing):
    proc, out, log, workers = snoozing
    staging = out / batch.RECORDS / "staging"
    in_progress = sorted(staging.iterdir())
    assert len(in_progress) == 2
    with pytest.raises(CochleaAIError, match=rf"Another batch is writing into .*process {proc.pid} on "):
        batch_jobs.snooze_batch(out, log, hurry=True, workers=1)
    # the refused run did nothing: the first one's temporary files are untouched, no item ran twice
    assert sorted(staging.iterdir()) == in_progress and len(_started(log)) == 4

    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=15)
    # the lock of a killed run is free: the next run takes it and finishes the batch
    rows = batch_jobs.snooze_batch(out, log, hurry=True, workers=1)
    assert [r["status"] for r in rows] == ["resumed"] * 2 + ["done"] * 4


def test_the_lock_is_one_threads_and_is_released(tmp_path):
    out = tmp_path / "out"
    job = partial(batch_jobs.nap, seconds=0.0)
    before = signal.getsignal(signal.SIGTERM)
    refused = []

    def other_thread():
        try:
            batch.run(job, [batch.Item("b", 0)], out)
        except CochleaAIError as exc:
            refused.append(str(exc))

    # a command holds the lock over run() and its table; run() in it goes on, another thread's is refused
    with batch.locked(out):
        row, = batch.run(job, [batch.Item("a", 0)], out)
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert row["status"] == "done"
    assert len(refused) == 1 and f"process {os.getpid()} on" in refused[0]
    # released at the end, and the SIGTERM handler of this process is back
    row, = batch.run(job, [batch.Item("b", 0)], out)
    assert row["status"] == "done" and signal.getsignal(signal.SIGTERM) == before


def test_segment_batch_exits_3_when_a_volume_failed_or_is_flagged(tmp_path, monkeypatch, capsys):
    from cochleaai.cli import main
    from cochleaai.segmentation import cli as segmentation_cli

    def job(path, name, folder, settings):          # the runner's path without a segmentation
        return {**batch_jobs.shout(path, name, folder), "suspect": Path(path).read_text() == "odd"}
    monkeypatch.setattr(segmentation_cli, "batch_job", job)
    monkeypatch.setattr(segmentation_cli, "warm_up", lambda: None)
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    (folder / "good.nrrd").write_text("fine")
    (folder / "bad.nrrd").write_text("corrupt")
    command = ["segment-batch", str(folder), "--out", str(out), "--workers", "1", "--quiet"]

    assert main(command) == EXIT_FLAGGED == 3
    assert f"1 of 2 volumes failed, 0 flagged by quality control; see {out / 'measures.csv'}" \
        in capsys.readouterr().err
    (folder / "bad.nrrd").write_text("odd")
    assert main(command) == EXIT_FLAGGED
    assert "0 of 2 volumes failed, 1 flagged by quality control" in capsys.readouterr().err
    (folder / "bad.nrrd").write_text("repaired")
    assert main(command) == 0 and capsys.readouterr().err == ""
