"""The packages that hold a torch-free table for the Slicer panels (phantom options, MAR
methods, electrode arrays, segmentation options, the shipped VAE) load nothing optional: their
``__init__`` re-exports nothing, so importing a table never drags in torch."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cochleaai.phantom", "cochleaai.mar", "cochleaai.simulation", "cochleaai.segmentation", "cochleaai.vae")
TABLES = ("cochleaai.phantom.options", "cochleaai.mar.methods", "cochleaai.simulation.arrays",
          "cochleaai.segmentation.options", "cochleaai.segmentation.config", "cochleaai.vae.shipped")
OPTIONAL = ("torch", "numba", "skimage", "nrrd", "slicerio", "tqdm", "threadpoolctl")


def test_the_packages_and_their_tables_load_nothing_optional():
    code = ("import importlib, sys\n"
            f"for name in {OPTIONAL!r}: sys.modules[name] = None\n"
            f"for name in {PACKAGES + TABLES!r}: importlib.import_module(name)\n"
            "print('loaded')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr
