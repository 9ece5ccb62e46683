"""Batch runner throughput: the same roi phantoms segmented (segment-batch's job, default
settings, its warm-up) serially in this process, by 2 local worker processes, and by a
2-worker Dask LocalCluster, each on one thread per worker; then serially on every core.

The serial run is the baseline of the 2 workers on 2 cores: one volume at a time on one
thread, as each worker runs them, so a ratio of 2 would be perfect scaling.

Figures per run (``<run>_...``), from the rows' ``started``, ``worker``, ``item_seconds``
and ``item_cpu_seconds``:

- ``startup_sec``: from the call until the last worker starts its first volume (processes
  or cluster started, libraries imported, kernels loaded: the warm-up);
- ``steady_volumes_per_min``: the sum over workers of the volumes each did divided by the
  time from its first start to its last end, in steady state: start-up and a worker idle
  at the end of a short batch excluded, as they are in a long cohort;
- ``teardown_sec``: from the end of the last volume until the call returns (a cluster closed);
- ``wall_sec`` and ``volumes_per_min``: end to end, start-up and teardown included;
- ``steady_speedup_vs_serial`` and ``speedup_vs_serial``: the two ratios to the serial run;
- ``overhead_sec_per_job``: ``wall x workers / volumes`` minus the serial run's steady
  seconds per volume: what a volume costs beyond its serial work, end to end;
  ``steady_overhead_sec_per_job``: the same with the workers' busy time instead of
  ``wall x workers``;
- ``item_sec_median`` and ``item_cpu_sec_median``: one volume's wall and CPU time, and
  ``cpu_share``: CPU over wall time summed over the volumes, the share of the time the
  workers had a core (below 1 on a machine that others use too);
- ``first_result_sec``, ``load_average_after`` (1 min), and ``runner_ms_per_item``: 16
  items that write one small file each, the runner's own cost per item.

Every run is checked against the serial one: the label map and probability volume of each
volume must be equal, value for value. ``--tiny``: two volumes with a short fit, 2 touches,
serial and worker processes only.
"""
from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime
from functools import partial
from importlib.util import find_spec
from pathlib import Path

import numpy as np

from cochleaai import batch, io
from cochleaai.bench.segment import TINY_FIT
from cochleaai.phantom.core import make_phantom
from cochleaai.progress import Progress
from cochleaai.segmentation.cli import batch_job, warm_up
from cochleaai.segmentation.config import SegmentConfig

NAME = "batch"
DESCRIPTION = "batch runner: 8 roi phantoms serial vs 2 worker processes vs a 2-worker Dask LocalCluster"


def _touch(path, name, folder) -> dict:
    """The cheapest job: one small file (the runner's own cost per item)."""
    (Path(folder) / f"{name}.txt").write_text(str(path))
    return {}


def _same_outputs(a: Path, b: Path, names) -> int:
    same = 0
    for name in names:
        la = [m for _, m in io.read_seg_nrrd(a / name / "labels.seg.nrrd")[1]]
        lb = [m for _, m in io.read_seg_nrrd(b / name / "labels.seg.nrrd")[1]]
        pa = io.read_volume(a / name / "probability.nrrd").array
        pb = io.read_volume(b / name / "probability.nrrd").array
        same += all(np.array_equal(x, y) for x, y in zip(la, lb)) and np.array_equal(pa, pb)
    return int(same)


def _timing(rows, wall: float, epoch0: float) -> dict:
    """Start-up, steady-state throughput and per-volume times of one run (see above);
    ``epoch0``: the time of the call, on the clock of ``started``."""
    spans = {}
    for row in [row for row in rows if "started" in row]:     # not those of a worker that died
        start = datetime.fromisoformat(row["started"]).timestamp()
        first, last, count = spans.get(row["worker"], (start, start, 0))
        spans[row["worker"]] = (min(first, start), max(last, start + row["item_seconds"]), count + 1)
    busy = sum(last - first for first, last, _ in spans.values())
    item, cpu = ([float(row[k]) for row in rows if k in row] for k in ("item_seconds", "item_cpu_seconds"))
    return {"wall_sec": round(wall, 2), "volumes_per_min": round(60.0 * len(rows) / wall, 2),
            "startup_sec": round(max(first for first, _, _ in spans.values()) - epoch0, 2),
            "teardown_sec": round(epoch0 + wall - max(last for _, last, _ in spans.values()), 2),
            "steady_volumes_per_min": round(60.0 * sum(c / (b - a) for a, b, c in spans.values()), 2),
            "busy_sec": busy, "item_sec_median": round(float(np.median(item)), 2),
            "item_cpu_sec_median": round(float(np.median(cpu)), 2), "cpu_share": round(sum(cpu) / sum(item), 3)}


def _runs(quick: bool, tiny: bool = False) -> list:
    runs = [("serial", {"workers": 1, "threads": 1}), ("processes", {"workers": 2, "threads": 1})]
    if find_spec("distributed") and not tiny:       # tiny: one start-up of worker processes is enough
        runs.append(("dask_local", {"workers": 2, "threads": 1, "scheduler": "local"}))
    if not (quick or tiny):
        runs.append(("serial_all_cores", {"workers": 1, "threads": os.cpu_count() or 1}))
    return runs


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, tiny: bool = False) -> dict:
    p = Progress.wrap(progress)
    n = 2 if tiny else 4 if quick else 8       # tiny: one volume per worker, each a short fit
    runs = _runs(quick, tiny)
    figures = {"volumes": n, "cpus": os.cpu_count()}
    if hasattr(os, "getloadavg"):           # the machine may be shared: say how busy it was
        figures["load_average_at_start"] = round(os.getloadavg()[0], 2)
    if not tiny and not any(label == "dask_local" for label, _ in runs):
        figures["dask_local"] = "not run: pip install 'cochleaai[cluster]'"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for k in range(n):
            p(0.1 * k / n, f"phantom {k + 1}/{n}")
            io.write_volume(make_phantom(seed=2000 + seed + k, fov="roi").ct, tmp / "in" / f"case{k}.nrrd")
        items = batch.items_from_files(tmp / "in")
        settings = SegmentConfig(**TINY_FIT) if tiny else SegmentConfig()
        job = partial(batch_job, settings=settings)
        touches = [batch.Item(f"t{k}", k) for k in range(2 if tiny else 16)]
        share = 0.9 / len(runs)
        for r, (label, kw) in enumerate(runs):
            stage = p.stage(0.1 + r * share, 0.1 + (r + 1) * share)
            marks, report = [], stage.stage(0.0, 0.9)

            def timed(fraction, message, marks=marks, report=report):
                marks.append(time.perf_counter())
                report(fraction, message)

            t0, epoch0 = time.perf_counter(), time.time()
            rows = batch.run(job, items, tmp / label, force=True, signature=repr(settings),
                             progress=timed, warm_up=warm_up, **kw)
            wall = time.perf_counter() - t0
            failed = [row for row in rows if row["status"] != "done"]
            if failed:
                figures[f"{label}_failed"] = f"{len(failed)}: {failed[0].get('error')}"
            figures.update({f"{label}_{k}": v for k, v in _timing(rows, wall, epoch0).items()})
            # the first call reports the start, the second the first volume done
            figures[f"{label}_first_result_sec"] = round(marks[1] - t0, 2)
            if hasattr(os, "getloadavg"):
                figures[f"{label}_load_average_after"] = round(os.getloadavg()[0], 2)
            t0 = time.perf_counter()
            batch.run(_touch, touches, tmp / f"{label}_touch", force=True, progress=stage.stage(0.9, 1.0), **kw)
            figures[f"{label}_runner_ms_per_item"] = round(1000 * (time.perf_counter() - t0) / len(touches), 1)
        serial_per_job = figures["serial_busy_sec"] / n
        for label, kw in runs:
            workers = kw["workers"]
            figures[f"{label}_overhead_sec_per_job"] = round(
                figures[f"{label}_wall_sec"] * workers / n - serial_per_job, 2)
            figures[f"{label}_steady_overhead_sec_per_job"] = round(
                figures.pop(f"{label}_busy_sec") / n - serial_per_job, 2)
        for label, _ in runs[1:]:
            figures[f"{label}_speedup_vs_serial"] = round(
                figures["serial_wall_sec"] / figures[f"{label}_wall_sec"], 3)
            figures[f"{label}_steady_speedup_vs_serial"] = round(
                figures[f"{label}_steady_volumes_per_min"] / figures["serial_steady_volumes_per_min"], 3)
            figures[f"{label}_identical_to_serial"] = (
                f"{_same_outputs(tmp / 'serial', tmp / label, [i.name for i in items])}/{n}")
    if hasattr(os, "getloadavg"):
        figures["load_average_at_end"] = round(os.getloadavg()[0], 2)
    p(1.0, "done")
    return figures
