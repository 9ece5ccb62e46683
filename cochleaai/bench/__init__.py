"""Benchmarks: ``python -m cochleaai bench <name> --json FILE [--quick] [--tiny] [--seed N]``.

Each benchmark returns a flat dict of figures (numbers, strings, small mappings).
Timings are medians of repeated runs, and every comparison runs side by side in the
same process, because shared machines are noisy: quote ratios.
"""
from __future__ import annotations

import importlib
import json
import os
import pkgutil
import platform
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np

from cochleaai.errors import CochleaAIError
from cochleaai.io.outputs import OutputPlan, write_text_whole

#: What every benchmark's ``run`` takes, whatever its own options: ``quick`` (a shorter
#: run), ``tiny`` (the same code on the smallest work, seconds: a smoke test whose figures
#: mean nothing), ``seed``, ``progress`` and ``out_dir`` (a folder for pictures).
COMMON = ("quick", "tiny", "seed", "progress", "out_dir")

#: Options that several benchmarks declare alike.
THREADS_VAE = ("--threads", {"type": int, "help": "torch CPU threads (default 1: on a shared machine more "
                                                  "threads contend and run slower)"})
VAE_OPTIONS = [
    ("--device", {"help": "torch device: cpu, cuda or auto (default auto)"}),
    ("--vae-epochs", {"type": int, "help": "override the number of training epochs"}),
    ("--vae-k", {"type": int, "help": "override the number of importance samples"}),
    ("--vae-train-size", {"type": int, "help": "override the training-set size"}),
    ("--vae-test-size", {"type": int, "help": "override the test-set size"}),
    THREADS_VAE,
]


def _modules():
    # plugin discovery: every module of this folder that defines a benchmark
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        yield importlib.import_module(f"{__name__}.{info.name}")


def _benchmarks():
    return [m for m in _modules() if hasattr(m, "run") and hasattr(m, "NAME")]


#: name -> (function, one-line description). Every module ``cochleaai/bench/<file>.py`` with
#: a ``NAME``, a ``DESCRIPTION`` and ``run(quick, tiny, seed, progress, out_dir, <options>)``
#: is a benchmark; ``OPTIONS`` (optional) lists its own command-line options as
#: ``(flag, kwargs for add_argument)``, and ``run`` takes each of them by its ``dest``
#: (``--vae-k`` -> ``vae_k``). The command passes a benchmark those and :data:`COMMON` only.
def registry() -> Dict[str, tuple]:
    return {m.NAME: (m.run, m.DESCRIPTION) for m in _benchmarks()}


def options(name: str = None) -> List[Tuple[str, dict]]:
    """The command-line options benchmark ``name`` declares; without a name, those of all
    benchmarks, de-duplicated by flag."""
    seen = {}
    for module in _benchmarks():
        if name is None or module.NAME == name:
            for flag, kwargs in getattr(module, "OPTIONS", ()):
                seen.setdefault(flag, kwargs)
    return list(seen.items())


def dest(flag: str, kwargs: dict = None) -> str:
    """The keyword an option reaches ``run`` as (argparse's rule): ``--vae-k`` -> ``vae_k``."""
    return (kwargs or {}).get("dest") or flag.lstrip("-").replace("-", "_")


def median_time(fn: Callable, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time (s) of ``fn()`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def format_table(name: str, figures: dict) -> str:
    width = max(len(k) for k in figures) if figures else 10
    lines = [f"benchmark: {name}", "-" * (width + 24)]
    for k, v in figures.items():
        if isinstance(v, float):
            v = f"{v:.6g}"
        elif isinstance(v, dict):
            v = _pairs(v)
        elif isinstance(v, list) and v and all(isinstance(row, dict) for row in v):
            lines.append(f"{k}:")            # a table of rows, one line each
            lines += [f"  {_pairs(row)}" for row in v]
            continue
        lines.append(f"{k:<{width}}  {v}")
    return "\n".join(lines)


def _pairs(row: dict) -> str:
    return ", ".join(f"{a}={b:.4g}" if isinstance(b, float) else f"{a}={b}" for a, b in row.items())


#: A figures file larger than this is not read to see whether it is one (a scan, not a record).
_RECORD_MAX_BYTES = 50_000_000


def _is_figures_record(path: Path) -> bool:
    """Whether ``path`` holds an earlier run's figures (what :func:`write_json` writes)."""
    if path.stat().st_size > _RECORD_MAX_BYTES:
        return False
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(record, dict) and "benchmark" in record and "figures" in record


def check_figures_file(path) -> Path:
    """The ``--json`` file, checked before the run: figures are re-run at will, so an earlier
    figures file is replaced, but anything else already there (a scan, a label, a table given
    by mistake) may be the user's and is never written over."""
    path = Path(path)
    if path.is_file() and not _is_figures_record(path):
        raise CochleaAIError(f"'{path}' already exists and is not a benchmark figures file; choose another "
                             "--json name (only an earlier run's figures are replaced).")
    return OutputPlan(force=True).file(path, "figures file")


def write_json(path, name: str, figures: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "figures": figures,
              "machine": {"python": platform.python_version(), "processor": platform.machine(),
                          "cpus": os.cpu_count()}}
    write_text_whole(path, json.dumps(record, indent=2, default=float))
    return path
