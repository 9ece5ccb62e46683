"""Run this pytest suite with the Python that runs this file: for the CTest entry of the
extension build, that is Slicer's own Python (``PythonSlicer``).

Exits with 77, which CTest reports as "skipped", when pytest or a package the library
needs is missing from that Python, and says which; nothing is installed here.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIP = 77


def missing_packages():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from cochleaai.slicer.gui.dependencies import missing_requirements

    missing = [] if importlib.util.find_spec("pytest") else ["pytest"]
    return missing + [str(r) for r in missing_requirements()]


def main(argv) -> int:
    missing = missing_packages()
    if missing:
        print(f"CochleaAI tests skipped: {', '.join(missing)} not installed in {sys.executable}. "
              "The modules offer to install the packages on first use; pytest installs with pip.")
        return SKIP
    import pytest

    return int(pytest.main([str(ROOT / "Testing"), "-q", "-p", "no:cacheprovider", *argv]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
