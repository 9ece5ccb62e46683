"""Batch runner throughput: the same roi phantoms segmented (segment-batch's job, default
settings) serially in this process, by 2 local worker processes, and by a 2-worker Dask
LocalCluster, each on one thread per worker; then serially on every core, for comparison.

Figures per run: wall time, volumes per minute, the ratio to the serial run, the time to
the first finished volume, and the overhead per job, ``(wall x workers - sum of item
times) / volumes``: what a volume costs beyond its own work (worker start-up, imports,
scheduling, an idle worker at the end). The serial run starts warm: this process has
already imported the libraries and run the shape function while making the phantoms.
A second measure of the runner alone: 16 items that write one small file each. Every run
is checked against the serial one: the label map and probability volume of each volume
must be equal, value for value.
"""
from __future__ import annotations

NAME = "batch"
DESCRIPTION = "batch runner: 8 roi phantoms serial vs 2 worker processes vs a 2-worker Dask LocalCluster"

import os
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from ..progress import Progress


def _touch(path, name, folder) -> dict:
    """The cheapest job: one small file (the runner's own cost per item)."""
    (Path(folder) / f"{name}.txt").write_text(str(path))
    return {}


def _same_outputs(a: Path, b: Path, names) -> int:
    from .. import io

    same = 0
    for name in names:
        la = [m for _, m in io.read_seg_nrrd(a / name / "labels.seg.nrrd")[1]]
        lb = [m for _, m in io.read_seg_nrrd(b / name / "labels.seg.nrrd")[1]]
        pa = io.read_volume(a / name / "probability.nrrd").array
        pb = io.read_volume(b / name / "probability.nrrd").array
        same += all(np.array_equal(x, y) for x, y in zip(la, lb)) and np.array_equal(pa, pb)
    return int(same)


def _runs(quick: bool) -> list:
    from importlib.util import find_spec

    runs = [("serial", {"workers": 1, "threads": 1}), ("processes", {"workers": 2, "threads": 1})]
    if find_spec("distributed"):
        runs.append(("dask_local", {"workers": 2, "threads": 1, "scheduler": "local"}))
    if not quick:
        runs.append(("serial_all_cores", {"workers": 1, "threads": os.cpu_count() or 1}))
    return runs


def run(quick: bool = False, seed: int = 0, progress=None, out_dir=None, **options) -> dict:
    from .. import batch, io
    from ..phantom import make_phantom
    from ..segmentation.cli import batch_job
    from ..segmentation.pipeline import SegmentSettings

    p = Progress.wrap(progress)
    n = 4 if quick else 8
    runs = _runs(quick)
    figures = {"volumes": n, "cpus": os.cpu_count()}
    if hasattr(os, "getloadavg"):           # the machine may be shared: say how busy it was
        figures["load_average_at_start"] = round(os.getloadavg()[0], 2)
    if not any(label == "dask_local" for label, _ in runs):
        figures["dask_local"] = "not run: pip install 'cochleaai[cluster]'"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for k in range(n):
            p(0.1 * k / n, f"phantom {k + 1}/{n}")
            io.write_volume(make_phantom(seed=2000 + seed + k, fov="roi").ct, tmp / "in" / f"case{k}.nrrd")
        items = batch.items_from_files(tmp / "in")
        settings = SegmentSettings()
        job = partial(batch_job, settings=settings)
        touches = [batch.Item(f"t{k}", k) for k in range(16)]
        share = 0.9 / len(runs)
        for r, (label, kw) in enumerate(runs):
            stage = p.stage(0.1 + r * share, 0.1 + (r + 1) * share)
            marks, report = [], stage.stage(0.0, 0.9)

            def timed(fraction, message, marks=marks, report=report):
                marks.append(time.perf_counter())
                report(fraction, message)

            t0 = time.perf_counter()
            rows = batch.run(job, items, tmp / label, force=True, signature=repr(settings),
                             progress=timed, **kw)
            wall = time.perf_counter() - t0
            failed = [row for row in rows if row["status"] != "done"]
            if failed:
                figures[f"{label}_failed"] = f"{len(failed)}: {failed[0].get('error')}"
            work = sum(float(row.get("item_seconds") or 0) for row in rows)
            figures[f"{label}_wall_sec"] = round(wall, 2)
            figures[f"{label}_volumes_per_min"] = round(60.0 * n / wall, 2)
            figures[f"{label}_overhead_sec_per_job"] = round((wall * kw["workers"] - work) / n, 2)
            # the first call reports the start, the second the first volume done
            figures[f"{label}_first_result_sec"] = round(marks[1] - t0, 2)
            t0 = time.perf_counter()
            batch.run(_touch, touches, tmp / f"{label}_touch", force=True, progress=stage.stage(0.9, 1.0), **kw)
            figures[f"{label}_runner_ms_per_item"] = round(1000 * (time.perf_counter() - t0) / len(touches), 1)
        base = figures["serial_wall_sec"]
        for label, _ in runs[1:]:
            figures[f"{label}_speedup_vs_serial"] = round(base / figures[f"{label}_wall_sec"], 3)
            figures[f"{label}_identical_to_serial"] = (
                f"{_same_outputs(tmp / 'serial', tmp / label, [i.name for i in items])}/{n}")
    if hasattr(os, "getloadavg"):
        figures["load_average_at_end"] = round(os.getloadavg()[0], 2)
    p(1.0, "done")
    return figures
