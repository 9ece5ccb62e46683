"""Benchmarks: ``python -m cochleaai bench <name> --json FILE [--quick] [--seed N]``.

Each benchmark returns a flat dict of figures (numbers, strings, small mappings).
Timings are medians of repeated runs, and every comparison runs side by side in the
same process, because shared machines are noisy: quote ratios.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Dict

import numpy as np


def _modules():
    import importlib
    import pkgutil

    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        yield importlib.import_module(f"{__name__}.{info.name}")


#: name -> (function(quick, seed, progress, out_dir) -> dict, one-line description).
#: Every module ``cochleaai/bench/<file>.py`` with a ``NAME``, ``DESCRIPTION`` and
#: ``run(quick, seed, progress, out_dir, **options)`` is a benchmark; ``OPTIONS``
#: (optional) lists extra command-line options as ``(flag, kwargs for add_argument)``.
#: Heavy imports stay inside ``run`` so that listing benchmarks is instant.
def registry() -> Dict[str, tuple]:
    return {m.NAME: (m.run, m.DESCRIPTION) for m in _modules() if hasattr(m, "run") and hasattr(m, "NAME")}


def options() -> list:
    """Extra command-line options declared by benchmarks, de-duplicated by flag."""
    seen = {}
    for module in _modules():
        for flag, kwargs in getattr(module, "OPTIONS", ()):
            seen.setdefault(flag, kwargs)
    return list(seen.items())


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


def write_json(path, name: str, figures: dict) -> Path:
    import platform

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"benchmark": name, "figures": figures,
              "machine": {"python": platform.python_version(), "processor": platform.machine(),
                          "cpus": __import__("os").cpu_count()}}
    path.write_text(json.dumps(record, indent=2, default=float))
    return path
