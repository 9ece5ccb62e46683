"""The packages whose main names load on first use (``cochleaai.exports.lazy_exports``): each
re-exported name is its submodule's object, an unknown one is an AttributeError, and
importing the package (or one of its torch-free tables) loads no optional package."""
from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cochleaai.phantom", "cochleaai.mar", "cochleaai.simulation", "cochleaai.vae")
OPTIONAL = ("torch", "numba", "skimage", "nrrd", "slicerio", "tqdm", "threadpoolctl")


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_is_its_submodule_s(name):
    pytest.importorskip("torch")
    package = importlib.import_module(name)
    for export in package.__all__:
        own = export == "SIDE"                               # cochleaai.phantom's own constant
        value = getattr(package, export)
        assert export in dir(package)
        assert own or any(getattr(module, export, None) is value for key, module in sys.modules.items()
                   if key.startswith(name + ".")), export
        assert export in vars(package)                       # found directly from now on
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        package.no_such_name


def test_from_package_import_still_works():
    pytest.importorskip("torch")
    from cochleaai.mar import reduce_metal_artifacts
    from cochleaai.mar.dispatch import reduce_metal_artifacts as original
    from cochleaai.phantom import FOVS, make_phantom
    from cochleaai.phantom.core import make_phantom as made
    from cochleaai.phantom.options import FOVS as fovs

    assert reduce_metal_artifacts is original and make_phantom is made and FOVS is fovs


def test_the_packages_load_nothing_optional():
    code = ("import importlib, sys\n"
            f"for name in {OPTIONAL!r}: sys.modules[name] = None\n"
            f"for name in {PACKAGES!r}: importlib.import_module(name)\n"
            "import cochleaai.phantom.options, cochleaai.mar.methods, cochleaai.simulation.arrays\n"
            "import cochleaai.segmentation.options, cochleaai.vae.shipped\n"
            "print('loaded')\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "loaded" in result.stdout, result.stderr
