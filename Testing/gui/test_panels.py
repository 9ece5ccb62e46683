"""Every module panel builds in a fresh Slicer, where torch, numba, scikit-image, pynrrd and
slicerio are not installed yet: the module script is imported and its widget's setup() runs against
the stand-in ``slicer``/``qt``/``ctk`` of ``slicer_stand_in.py``, in a subprocess whose
imports of those packages fail (this test process keeps them). Then every button of the
panel is clicked while the dependency check sees them as missing and the user declines to
install them: each click asks first, and nothing tries to import them. The self-tests are
then skipped, saying which packages are missing."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cochleaai.slicer.sample_data import REAL_SPECIMEN

TESTING = Path(__file__).resolve().parents[1]
ROOT = TESTING.parent
MODULES = ("MetalArtifactReduction", "CochleaShapeSegmentation", "LangevinVAEExplorer",
           "OneShotLandmarks")


@pytest.fixture(scope="module")
def panels():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTING), str(ROOT)]))
    done = subprocess.run([sys.executable, str(TESTING / "slicer_stand_in.py"), *MODULES],
                          capture_output=True, text=True, env=env, cwd=str(TESTING), timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", MODULES)
def test_panel_builds_without_the_optional_packages(panels, module):
    entry = panels[module]
    assert entry["built"], entry.get("error")
    assert entry["blocked_imports"] == [], (
        f"building the {module} panel tried to import {entry['blocked_imports']}")


@pytest.mark.parametrize("module", MODULES)
def test_the_panel_is_connected_to_its_parameter_node(panels, module):
    """Every parameter of the module's class has its widget (SlicerParameterName) and every
    such widget its parameter; the fresh node holds every default (seed 1, the ROI)."""
    entry = panels[module]
    assert "volume" in entry["parameters"] and entry["bound_widgets"] == entry["parameters"]
    assert entry["stored"]["phantomSeed"] == "1" and entry["stored"]["phantomFieldOfView"] == "roi"


GUI_HELPERS = ("cochleaai.slicer.gui.module", "cochleaai.slicer.gui.jobs", "cochleaai.slicer.gui.panels",
               "cochleaai.slicer.gui.dependencies")
BLOCKED = ("torch", "numba", "skimage", "nrrd", "slicerio", "tqdm", "threadpoolctl")
#: The core's tables the panels are built from (one home each, which the panels import).
CORE_TABLES = ("cochleaai.phantom.options", "cochleaai.mar.methods", "cochleaai.simulation.arrays",
               "cochleaai.segmentation.options", "cochleaai.vae.shipped")


def test_shells_and_gui_helpers_import_without_the_optional_packages():
    """``sys.modules[name] = None`` makes each of torch, numba, scikit-image, pynrrd, slicerio,
    tqdm and threadpoolctl fail to import (as in a fresh Slicer); the core's tables of the
    panels, the module scripts, their parameter classes and the GUI helpers import all the
    same, and leave none of them loaded."""
    script = "\n".join([
        "import importlib, json, sys",
        f"for name in {BLOCKED!r}:",
        "    sys.modules[name] = None",
        f"for name in {CORE_TABLES!r}:",
        "    importlib.import_module(name)",
        "import slicer_stand_in",
        "slicer_stand_in.install()",
        f"for name in {GUI_HELPERS!r}:",
        "    importlib.import_module(name)",
        f"for name in {MODULES!r}:",
        "    slicer_stand_in.import_module_script(name)",
        "    importlib.import_module(name + 'Lib.parameters')",
        "print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in "
        f"{BLOCKED!r} and sys.modules[n] is not None)))"])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTING), str(ROOT)]))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          cwd=str(TESTING), timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("module", MODULES)
def test_every_action_checks_the_dependencies_first(panels, module):
    entry = panels[module]
    assert entry["built"] and "error" not in entry, entry.get("error")
    assert "generatePhantomButton" in entry["clicked"] and len(entry["clicked"]) >= 2
    assert len(entry["asked"]) == len(entry["clicked"]), "an action ran without the dependency check"
    assert all("torch" in names and "numba" in names for names in entry["asked"])
    assert entry["blocked_imports_on_click"] == []
    assert entry["status_after_clicks"].startswith("Nothing was installed")


@pytest.mark.parametrize("module", MODULES)
def test_self_test_is_skipped_with_a_clear_message(panels, module):
    message = panels[module]["self_test"]
    assert message.startswith("skipped: CochleaAI self-test skipped")
    assert "torch>=2.1" in message and "install them" in message


def test_sample_data_are_registered_once(panels):
    """As Slicer's Sample Data module builds its sources (``sample_data_stand_in``): both
    entries are accepted, under "CochleaAI", with the extension's icon as thumbnail."""
    assert "error" not in panels["samples"], panels["samples"]["error"]
    real, phantom = panels["samples"]
    # nothing to download: a custom loader and no files, for both
    assert real["customDownloader"] and real["uris"] == real["fileNames"] == []
    assert phantom["customDownloader"] and phantom["uris"] == phantom["fileNames"] == []
    # the real specimen ships with the extension and loads offline, without the packages
    assert panels["sample_loaded"] == [[str(REAL_SPECIMEN.path), {"name": REAL_SPECIMEN.node_name}]]
    assert not any(REAL_SPECIMEN.name in text for text in panels["sample_errors"])
    assert real["thumbnailShown"] and phantom["thumbnailShown"]
    # the phantom is made on click, after the dependency check (declined here: nothing imported)
    assert panels["sample_info"] and panels["sample_info"][0].startswith("Nothing was installed")
    assert panels["blocked_imports_by_samples"] == []


def test_nothing_optional_was_loaded_and_no_error_was_shown(panels):
    assert panels["loaded_optional_packages"] == []
    assert panels["errors_shown"] == []
