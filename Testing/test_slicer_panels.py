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

TESTING = Path(__file__).resolve().parent
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
    from cochleaai.slicer.gui.parameters import ui_parameters

    declared = ui_parameters(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    assert "volume" in declared and panels[module]["parameters"] == sorted(declared)


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
    real, phantom = panels["samples"]
    assert real["category"] == phantom["category"] == "CochleaAI"
    assert real["checksums"][0].startswith("SHA256:") and len(real["checksums"][0]) == 7 + 64
    assert real["uris"][0].endswith(real["fileNames"][0]) and "uris" not in phantom
    # the phantom is made on click, after the dependency check (declined here: nothing imported)
    assert panels["sample_info"] and panels["sample_info"][0].startswith("Nothing was installed")
    assert panels["blocked_imports_by_samples"] == []


def test_nothing_optional_was_loaded_and_no_error_was_shown(panels):
    assert panels["loaded_optional_packages"] == []
    assert panels["errors_shown"] == []
