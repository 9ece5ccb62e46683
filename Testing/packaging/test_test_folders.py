"""The test folders must not shadow a package: slicer-core's ``slicer/__init__.py`` extends its
path to every ``slicer`` folder on ``sys.path`` and imports each module there, and pytest puts
``Testing/`` on ``sys.path``. A ``Testing/slicer/`` folder made ``import slicer`` import test
files (and fail wherever one of them needs torch, which hid the real-MRML tests in the old-Slicer
environments)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TESTING = Path(__file__).resolve().parents[1]


def test_importing_slicer_with_the_test_folder_on_the_path_imports_no_test_file():
    pytest.importorskip("slicer", reason="slicer-core (real MRML) is not installed")
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import slicer; "
            "print(sorted(m for m in sys.modules if m.startswith('slicer.test') or '.test_' in m))")
    done = subprocess.run([sys.executable, "-c", code, str(TESTING)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
