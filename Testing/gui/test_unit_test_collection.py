"""Slicer's ctest of a module (``slicer_add_python_unittest``) runs ``slicer.testing.runUnitTest``,
which loads every TestCase class in the module script with unittest's loader: only the
module's own test class may be there, not the shared base it specialises (which cannot run
alone). Counted in a subprocess, on the stand-in ``slicer`` (this process keeps the real one)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

TESTING = Path(__file__).resolve().parents[1]
ROOT = TESTING.parent
MODULES = ("MetalArtifactReduction", "CochleaShapeSegmentation", "LangevinVAEExplorer",
           "OneShotLandmarks")


def test_runUnitTest_finds_one_test_class_per_module():
    script = "\n".join([
        "import json, slicer_stand_in",
        "slicer_stand_in.install()",
        f"print(json.dumps({{name: slicer_stand_in.unit_test_classes(name) for name in {MODULES!r}}}))"])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTING), str(ROOT)]))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          cwd=str(TESTING), timeout=300)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {name: [f"{name}Test"] for name in MODULES}
