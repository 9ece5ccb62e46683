"""The batch runner: unique names, resume and --force, failures reported, no half-written
outputs, completion-order progress, worker thread limits and warm-ups, the timing columns,
and Dask giving the serial outputs.

The jobs are cheap text jobs (``batch_jobs.py``); the segmentation goes through the same
runner in ``test_segmentation_cli.py``.
"""
import csv
import os
import socket
import sys
import time
from datetime import datetime
from functools import partial
from pathlib import Path

import pytest

import batch_jobs
from cochleaai import batch
from cochleaai.errors import CochleaAIError


def _inputs(folder, texts):
    for name, text in texts.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def _result(out, name):
    return (out / name / "result.txt").read_text()


def _calls(log):
    return sorted(Path(log).read_text().split()) if Path(log).exists() else []


def test_names_are_unique_and_nhdr_is_found(tmp_path):
    folder = _inputs(tmp_path / "in", {"a.b.nrrd": "first", "a.c.nrrd": "second", "x.nhdr": "header",
                                       "labels.seg.nrrd": "segmentation", "notes.txt": "not an image",
                                       "s1/ct.nrrd": "one", "s2/ct.nrrd": "two", "Up.nrrd": "upper",
                                       "up.nii.gz": "lower"})
    items = batch.items_from_files([folder, folder / "s1", folder / "s2", folder / "a.b.nrrd"])
    names = [i.name for i in items]
    # a.b.nrrd named twice is done once; equal stems get the folder; case clashes a suffix
    assert names == ["Up", "a.b", "a.c", "up-2", "x", "s1_ct", "s2_ct"]
    rows = batch.run(batch_jobs.shout, items, tmp_path / "out")
    assert [r["status"] for r in rows] == ["done"] * 7
    for item in items:            # every output holds its own input: nothing overwritten
        assert _result(tmp_path / "out", item.name).startswith(Path(item.input).read_text().upper())
    assert rows[1]["output"] == str((tmp_path / "out" / "a.b").absolute())
    with pytest.raises(CochleaAIError, match="does not exist"):
        batch.items_from_files([tmp_path / "nowhere"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CochleaAIError, match="No volumes"):
        batch.items_from_files(tmp_path / "empty")
    with pytest.raises(CochleaAIError, match="same name"):
        batch.run(batch_jobs.shout, [batch.Item("a", 1), batch.Item("A", 2)], tmp_path / "o2")


def test_resume_skips_complete_items_and_force_redoes_them(tmp_path):
    folder = _inputs(tmp_path / "in", {"p.nrrd": "alpha", "q.nrrd": "beta", "r.nrrd": "gamma"})
    out, log = tmp_path / "out", tmp_path / "calls.log"
    job = partial(batch_jobs.shout, log=str(log))
    first = batch.run(job, [folder], out, signature="v1")
    assert _calls(log) == ["p", "q", "r"]

    messages = []
    again = batch.run(job, [folder], out, signature="v1", progress=lambda f, m: messages.append((f, m)))
    assert _calls(log) == ["p", "q", "r"]                      # nothing ran again
    assert [r["status"] for r in again] == ["resumed"] * 3
    strip = lambda rows: [{k: v for k, v in r.items() if k != "status"} for r in rows]
    assert strip(again) == strip(first)                        # the stored rows, numbers and all
    assert messages == [(1.0, "3/3 already complete")]

    (folder / "q.nrrd").write_text("beta, edited")            # a changed input is redone
    rows = batch.run(job, [folder], out, signature="v1")
    assert [r["status"] for r in rows] == ["resumed", "done", "resumed"]
    assert _result(out, "q").startswith("BETA, EDITED")
    batch.run(job, [folder], out, signature="v2")              # other settings: all redone
    assert _calls(log).count("p") == 2
    rows = batch.run(partial(job, suffix="!"), [folder], out, signature="v2", force=True)
    assert [r["status"] for r in rows] == ["done"] * 3 and _calls(log).count("p") == 3
    assert _result(out, "p").startswith("ALPHA!")


def test_a_failing_item_is_reported_and_the_others_complete(tmp_path):
    folder = _inputs(tmp_path / "in", {"good1.nrrd": "fine", "bad.nrrd": "corrupt bytes", "good2.nrrd": "ok"})
    out, log = tmp_path / "out", tmp_path / "calls.log"
    rows = batch.run(partial(batch_jobs.shout, log=str(log)), [folder], out)
    assert [(r["name"], r["status"]) for r in rows] == [("bad", "failed"), ("good1", "done"), ("good2", "done")]
    assert rows[0]["error"] == "bad.nrrd is damaged"
    assert not (out / "bad").exists() and _result(out, "good2").startswith("OK")
    table = list(csv.DictReader(open(batch.write_csv(out / "summary.csv", rows))))
    assert [t["error"] for t in table] == ["bad.nrrd is damaged", "", ""]
    assert table[1]["chars"] == "4"
    # a failed item is not complete: the next run tries it again, and only it
    (folder / "bad.nrrd").write_text("repaired")
    rows = batch.run(partial(batch_jobs.shout, log=str(log)), [folder], out)
    assert [r["status"] for r in rows] == ["done", "resumed", "resumed"]
    assert _calls(log) == ["bad", "bad", "good1", "good2"]


def test_half_written_outputs_are_never_taken_as_complete(tmp_path):
    folder = _inputs(tmp_path / "in", {"a.nrrd": "one", "b.nrrd": "two", "c.nrrd": "interrupt me"})
    out = tmp_path / "out"
    # Ctrl-C in the middle of c: the items before it are complete, c left nothing behind
    with pytest.raises(KeyboardInterrupt):
        batch.run(batch_jobs.shout, [folder], out)
    assert sorted(p.name for p in out.iterdir()) == [".cochleaai-batch", "a", "b"]
    assert not any((out / ".cochleaai-batch" / "staging").iterdir())
    # an output folder without its record (left by an older run or a copy) is redone
    (out / "d").mkdir()
    (out / "d" / "result.txt").write_text("half")
    (folder / "d.nrrd").write_text("four")
    (folder / "c.nrrd").write_text("three")
    # and a record whose output has gone missing is not trusted either
    (out / "b" / "result.txt").unlink()
    (out / "b").rmdir()
    rows = batch.run(batch_jobs.shout, [folder], out)
    assert [r["status"] for r in rows] == ["resumed", "done", "done", "done"]
    assert [_result(out, n).split()[0] for n in "abcd"] == ["ONE", "TWO", "THREE", "FOUR"]


def test_progress_follows_completion_and_workers_are_capped(tmp_path):
    folder = _inputs(tmp_path / "in", {"slow.nrrd": "", "fast.nrrd": ""})
    out = tmp_path / "out"
    messages = []
    items = [i for i in batch.items_from_files(folder)]          # sorted: fast, slow
    items.reverse()                                               # slow is submitted first
    rows = batch.run(partial(batch_jobs.wait_for, out=str(out)), items, out, workers=2,
                     progress=lambda f, m: messages.append(m))
    assert messages[1:] == ["1/2 fast done", "2/2 slow done"]
    assert [r["name"] for r in rows] == ["slow", "fast"] and rows[0]["pid"] != rows[1]["pid"]

    # every worker is capped, and warm (once) before its first item
    pytest.importorskip("torch")        # the job reads torch's thread count
    log = tmp_path / "warm.log"
    rows = batch.run(batch_jobs.thread_counts, [batch.Item(f"t{k}", k) for k in range(4)], tmp_path / "t",
                     workers=2, threads=1, warm_up=partial(batch_jobs.warm_up, log=str(log)))
    for r in rows:
        assert (r["numba"], r["torch"], r["blas"], r["omp_env"], r["numba_env"]) == (1, 1, [1], "1", "1"), r
        assert r["warmed"] == 1 and r["worker"] == f"{socket.gethostname()}:{r['pid']}"
    warmed = log.read_text().split()
    assert len(warmed) == len(set(warmed)) == 2 and {str(r["pid"]) for r in rows} <= set(warmed)


def test_warm_up_runs_once_per_process_and_a_failing_one_stops_nothing(tmp_path):
    pytest.importorskip("torch")        # thread_counts reads torch's thread count
    warm_up = partial(batch_jobs.warm_up, log=str(tmp_path / "warm.log"))
    count = len(batch_jobs.WARMED)
    for k in range(2):                 # this process: warmed by the first batch only
        row, = batch.run(batch_jobs.thread_counts, [batch.Item("t", k)], tmp_path / f"o{k}", warm_up=warm_up)
        assert row["warmed"] == count + 1
    rows = batch.run(batch_jobs.shout, [_inputs(tmp_path / "in", {"a.nrrd": "one"})], tmp_path / "o",
                     warm_up=partial(batch_jobs.warm_up, fail=True))
    assert [r["status"] for r in rows] == ["done"]


def test_rows_tell_when_where_and_how_long(tmp_path):
    row, = batch.run(partial(batch_jobs.nap, seconds=0.3), [batch.Item("n", 0)], tmp_path / "o")
    # asleep, the job took wall time but (almost) no CPU time
    assert row["item_seconds"] >= 0.3 and 0 <= row["item_cpu_seconds"] < 0.1
    assert row["worker"] == f"{socket.gethostname()}:{os.getpid()}"
    started = datetime.fromisoformat(row["started"])
    assert started.tzinfo is not None and abs(time.time() - 0.3 - started.timestamp()) < 10


def test_threads_in_this_process_are_limited_for_the_batch_and_restored(tmp_path):
    import numba
    import torch

    before = numba.get_num_threads(), torch.get_num_threads()
    row, = batch.run(batch_jobs.thread_counts, [batch.Item("t", 0)], tmp_path / "t", threads=1)
    assert (row["numba"], row["torch"], row["blas"]) == (1, 1, [1])
    assert (numba.get_num_threads(), torch.get_num_threads()) == before


def test_dask_local_cluster_gives_the_serial_outputs(tmp_path):
    pytest.importorskip("distributed")
    folder = _inputs(tmp_path / "in", {f"case{k}.nrrd": f"volume {k}" for k in range(4)}
                     | {"broken.nrrd": "corrupt"})
    serial = batch.run(batch_jobs.shout, [folder], tmp_path / "serial")
    dask = batch.run(batch_jobs.shout, [folder], tmp_path / "dask", scheduler="local", workers=2)
    varying = ("output", "item_seconds", "item_cpu_seconds", "started", "worker")
    same = lambda rows: [{k: v for k, v in r.items() if k not in varying} for r in rows]
    assert same(dask) == same(serial)
    assert [r["status"] for r in dask] == ["failed"] + ["done"] * 4
    for k in range(4):
        assert _result(tmp_path / "dask", f"case{k}") == _result(tmp_path / "serial", f"case{k}")
    # the workers run one item at a time each, with their libraries on one thread, warm
    log = tmp_path / "warm.log"
    pytest.importorskip("torch")        # thread_counts reads torch's thread count
    rows = batch.run(batch_jobs.thread_counts, [batch.Item(f"t{k}", k) for k in range(2)], tmp_path / "t",
                     scheduler="local", workers=2, warm_up=partial(batch_jobs.warm_up, log=str(log)))
    assert all((r["numba"], r["torch"], r["blas"], r["numba_env"], r["warmed"]) == (1, 1, [1], "1", 1)
               for r in rows), rows
    warmed = log.read_text().split()
    assert len(warmed) == len(set(warmed)) == 2 and {str(r["pid"]) for r in rows} <= set(warmed)


def test_dask_missing_or_unreachable_says_what_to_do(tmp_path, monkeypatch):
    items = [batch.Item("x", 0)]
    monkeypatch.setitem(sys.modules, "distributed", None)          # as if not installed
    with pytest.raises(CochleaAIError, match=r"cochleaai\[cluster\]"):
        batch.run(batch_jobs.thread_counts, items, tmp_path / "o", scheduler="local")
    monkeypatch.undo()
    pytest.importorskip("distributed")
    from cochleaai.batch import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "2s")
    with pytest.raises(CochleaAIError, match="Cannot reach the Dask scheduler"):
        batch.run(batch_jobs.thread_counts, items, tmp_path / "o", scheduler="tcp://127.0.0.1:9")


def test_cancel_starts_no_new_item(tmp_path):
    from cochleaai.progress import Cancelled

    folder = _inputs(tmp_path / "in", {f"v{k}.nrrd": f"volume {k}" for k in range(6)})
    log = tmp_path / "calls.log"

    def cancel_at_first_result(fraction, message):
        if "done" in message:
            raise Cancelled("stop")
    with pytest.raises(Cancelled):
        batch.run(partial(batch_jobs.shout, log=str(log)), [folder], tmp_path / "out", workers=2,
                  progress=cancel_at_first_result)
    # the two items in flight ran; none of the four waiting ones started
    assert len(_calls(log)) == 2
    assert len(list((tmp_path / "out" / ".cochleaai-batch" / "done").iterdir())) == 2


def test_bench_timing_separates_start_up_from_steady_state():
    from datetime import timezone

    from cochleaai.bench.batch import _timing

    t0 = 1_700_000_000.0
    at = lambda s: datetime.fromtimestamp(t0 + s, timezone.utc).isoformat(timespec="milliseconds")
    # worker a busy from 2 s to 10 s (2 items), worker b from 3 s to 13 s (2 items); the batch took 14 s
    rows = [{"worker": w, "started": at(s), "item_seconds": d, "item_cpu_seconds": c}
            for w, s, d, c in [("a", 2, 4, 2), ("b", 3, 5, 5), ("a", 6, 4, 2), ("b", 8, 5, 5)]]
    rows.append({"name": "lost", "status": "failed", "error": "the worker running it stopped"})
    f = _timing(rows, wall=14.0, epoch0=t0)
    assert f["startup_sec"] == 3.0 and f["teardown_sec"] == 1.0     # b's first item; 14 - 13
    assert f["steady_volumes_per_min"] == 27.0                      # 60 (2/8 + 2/10)
    assert f["busy_sec"] == 18.0 and f["wall_sec"] == 14.0
    assert f["volumes_per_min"] == round(60 * 5 / 14, 2)
    assert (f["item_sec_median"], f["item_cpu_sec_median"], f["cpu_share"]) == (4.5, 3.5, round(14 / 18, 3))
