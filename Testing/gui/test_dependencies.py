"""The dependency check the modules run before their first action
(``cochleaai.slicer.gui.dependencies``), with stand-in installers and dialogs: nothing is
installed, downloaded or shown."""
from __future__ import annotations

import importlib
import re
import sys
import types
from contextlib import contextmanager
from pathlib import Path

import pytest

from cochleaai.errors import CochleaAIError
from cochleaai.slicer.gui.dependencies import (CPU_BUILD,
                                               GPU_BUILD,
                                               REQUIREMENTS_FILE,
                                               DependencyCheck,
                                               Requirement,
                                               SlicerInstaller,
                                               changed_and_loaded,
                                               missing_requirements,
                                               read_requirements,
                                               release)

ROOT = Path(__file__).resolve().parents[2]
TORCH, NUMBA, SKIMAGE = Requirement("torch", "2.1"), Requirement("numba", "0.58"), Requirement("scikit-image")


def test_the_shipped_list_names_what_slicer_lacks_with_the_pyproject_minimums():
    shipped = {r.name: r.minimum for r in read_requirements()}
    assert REQUIREMENTS_FILE.is_relative_to(ROOT / "Resources")
    assert set(shipped) == {"torch", "numba", "scikit-image", "pynrrd", "slicerio"}
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    for name, minimum in shipped.items():
        assert re.search(rf'"{re.escape(name)}>={re.escape(minimum)}"', text), (
            f"{name}>={minimum} differs from pyproject.toml's dependency")


def test_requirement_lines(tmp_path):
    path = tmp_path / "requirements.txt"
    path.write_text("# comment\n\ntorch>=2.1\nnumba\n  pynrrd >= 1.0  \n")
    assert read_requirements(path) == [Requirement("torch", "2.1"), Requirement("numba"),
                                       Requirement("pynrrd", "1.0")]
    path.write_text("torch<3\n")
    with pytest.raises(CochleaAIError, match="line 1"):
        read_requirements(path)
    with pytest.raises(CochleaAIError, match="reinstall"):
        read_requirements(tmp_path / "absent.txt")


def test_versions_compare_by_their_numbers():
    assert release("2.13.0+cpu") == (2, 13, 0) and release("2.1rc1") == (2, 1) and release("x") == ()
    assert TORCH.satisfied_by("2.13.0+cu121") and TORCH.satisfied_by("2.1")
    assert not TORCH.satisfied_by("2.0.1") and not TORCH.satisfied_by(None)
    assert SKIMAGE.satisfied_by("0.1")
    versions = {"torch": "1.13", "numba": "0.60.0"}
    assert missing_requirements([TORCH, NUMBA, SKIMAGE], versions.get) == [TORCH, SKIMAGE]


#: The modules of the torch distribution (its top_level.txt).
TORCH_MODULES = ("torch", "functorch", "torchgen")


@pytest.fixture(autouse=True)
def torch_to_import(tmp_path, monkeypatch):
    """What the installer imports as ``torch``: a package of one line, first on sys.path, and
    no torch loaded before the test (a real one a test before loaded is put back after)."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text('__version__ = "2.13.0"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    hidden = {name: sys.modules.pop(name) for name in TORCH_MODULES if name in sys.modules}
    yield
    for name in TORCH_MODULES:
        sys.modules.pop(name, None)
    sys.modules.update(hidden)


class Installer:
    def __init__(self, versions, installs=None, torch_installer=True, fail=None):
        self.versions, self.installs = versions, installs or {}
        self.torch_installer, self.fail = torch_installer, fail
        self.calls = []

    def check_torch_installer(self):
        if not self.torch_installer:
            raise CochleaAIError("install the PyTorch extension")

    def install_torch(self, requirement, choice):
        """As PyTorchUtils' ``installTorch``: it installs, then ends with ``import torch``."""
        self.calls.append(("torch", str(requirement), choice))
        self.versions.update({k: v for k, v in self.installs.items() if k == "torch"})
        return importlib.import_module("torch")

    def install_packages(self, requirements):
        self.calls.append(("pip", [str(r) for r in requirements]))
        if self.fail:
            raise self.fail
        self.versions.update({k: v for k, v in self.installs.items() if k != "torch"})

    def restart(self):
        self.calls.append(("restart",))


class Dialogs:
    def __init__(self, answer=None, restart=False, testing=False):
        self.answer, self.restart, self.testing_mode = answer, restart, testing
        self.asked, self.steps, self.restart_asked = [], [], []

    def testing(self):
        return self.testing_mode

    def ask_install(self, missing, offer_torch_builds):
        self.asked.append(([str(r) for r in missing], offer_torch_builds))
        return self.answer

    @contextmanager
    def progress(self, steps):
        shown = []
        self.steps.append(shown)

        def step():
            shown.append(steps[len(shown)])
        yield step

    def confirm_restart(self, packages):
        self.restart_asked.append(list(packages))
        return self.restart


def _check(versions, dialogs, installer=None, changed=()):
    """A check of torch, numba and scikit-image; ``changed`` distributions get a new version
    during the installation (as if pip had upgraded them)."""
    snapshots = iter([{}, {name: "new" for name in changed}])
    return DependencyCheck([TORCH, NUMBA, SKIMAGE], versions.get, installer or Installer(versions),
                           dialogs, versions=lambda: next(snapshots))


def test_nothing_is_asked_when_everything_is_there():
    versions = {"torch": "2.13.0", "numba": "0.68.1", "scikit-image": "0.26.0"}
    dialogs = Dialogs()
    check = _check(versions, dialogs)
    assert check.ensure() and check.ready and dialogs.asked == []


def test_declining_installs_nothing_and_says_why():
    versions = {"numba": "0.68.1"}
    dialogs = Dialogs(answer=None)
    installer = Installer(versions)
    check = _check(versions, dialogs, installer)
    assert not check.ensure()
    assert dialogs.asked == [(["torch>=2.1", "scikit-image"], True)] and installer.calls == []
    assert "Nothing was installed" in check.message and "torch>=2.1" in check.message
    assert not check.ensure() and len(dialogs.asked) == 2     # asked again at the next action


@pytest.mark.parametrize("choice", [CPU_BUILD, GPU_BUILD])
def test_torch_through_the_pytorch_extension_the_rest_with_pip(choice):
    versions = {}
    installer = Installer(versions, installs={"torch": "2.13.0", "numba": "0.68.1", "scikit-image": "0.26.0"})
    dialogs = Dialogs(answer=choice)
    check = _check(versions, dialogs, installer)
    assert check.ensure() and check.ready
    assert installer.calls == [("torch", "torch>=2.1", choice), ("pip", ["numba>=0.58", "scikit-image"])]
    assert dialogs.steps == [["Installing torch>=2.1 through the PyTorch extension",
                              "Installing numba>=0.58, scikit-image"]]
    assert dialogs.restart_asked == []
    assert check.ensure() and len(dialogs.asked) == 1          # checked once per session


def test_without_torch_missing_no_build_is_offered():
    versions = {"torch": "2.13.0"}
    installer = Installer(versions, installs={"numba": "0.68.1", "scikit-image": "0.26.0"})
    dialogs = Dialogs(answer="install")
    assert _check(versions, dialogs, installer).ensure()
    assert dialogs.asked == [(["numba>=0.58", "scikit-image"], False)]
    assert installer.calls == [("pip", ["numba>=0.58", "scikit-image"])]


def test_a_missing_pytorch_extension_is_reported_before_asking():
    dialogs = Dialogs(answer=CPU_BUILD)
    with pytest.raises(CochleaAIError, match="PyTorch extension"):
        _check({}, dialogs, Installer({}, torch_installer=False)).ensure()
    assert dialogs.asked == []


def test_failed_or_incomplete_installations_raise_a_user_error():
    versions = {"torch": "2.13.0"}
    installer = Installer(versions, fail=OSError("no network"))
    with pytest.raises(CochleaAIError, match="no network"):
        _check(versions, Dialogs(answer="install"), installer).ensure()
    installer = Installer(versions, installs={"numba": "0.68.1"})       # scikit-image did not come
    with pytest.raises(CochleaAIError, match="scikit-image still missing"):
        _check(versions, Dialogs(answer="install"), installer).ensure()


def test_a_restart_is_offered_when_a_loaded_package_changed(monkeypatch):
    monkeypatch.setitem(sys.modules, "fake_loaded_numpy", types.ModuleType("fake_loaded_numpy"))
    for accept in (False, True):
        versions = {"torch": "2.13.0"}
        installer = Installer(versions, installs={"numba": "0.68.1", "scikit-image": "0.26.0"})
        dialogs = Dialogs(answer="install", restart=accept)
        check = _check(versions, dialogs, installer, changed=["fake-loaded-numpy", "fake-not-loaded"])
        assert not check.ensure() and not check.ready
        assert dialogs.restart_asked == [["fake-loaded-numpy"]] and "Restart Slicer" in check.message
        assert (installer.calls[-1] == ("restart",)) == accept


def test_the_first_torch_install_needs_no_restart():
    """The installer imported the torch it had just installed: that copy is the new one."""
    versions = {"numba": "0.68.1", "scikit-image": "0.26.0"}
    installer = Installer(versions, installs={"torch": "2.13.0"})
    dialogs = Dialogs(answer=CPU_BUILD)
    check = _check(versions, dialogs, installer, changed=["torch"])
    assert check.ensure() and check.ready and check.message == ""
    assert "torch" in sys.modules and dialogs.restart_asked == []


def test_a_torch_loaded_before_its_upgrade_needs_a_restart():
    importlib.import_module("torch")                # an older torch, loaded before the install
    versions = {"torch": "2.0.1", "numba": "0.68.1", "scikit-image": "0.26.0"}
    installer = Installer(versions, installs={"torch": "2.13.0"})
    dialogs = Dialogs(answer=CPU_BUILD)
    check = _check(versions, dialogs, installer, changed=["torch"])
    assert not check.ensure() and not check.ready
    assert dialogs.restart_asked == [["torch"]] and "Restart Slicer" in check.message


def test_testing_mode_never_installs():
    dialogs = Dialogs(answer=CPU_BUILD, testing=True)
    with pytest.raises(CochleaAIError, match="testing mode"):
        _check({}, dialogs).ensure()
    assert dialogs.asked == []


def test_changed_and_loaded():
    before, after = {"a-pkg": "1", "b": "1"}, {"a-pkg": "2", "b": "1", "c": "1"}
    assert changed_and_loaded(before, after, loaded=["a_pkg", "c"]) == ["a-pkg", "c"]
    assert changed_and_loaded(before, after, loaded=["b"]) == []


# ------------------------------------------------------------ the Slicer installer
@pytest.fixture
def fake_slicer(monkeypatch):
    calls = []
    slicer = types.ModuleType("slicer")
    slicer.__path__ = []
    slicer.util = types.SimpleNamespace(pip_install=lambda args: calls.append(("pip_install", args)),
                                        restart=lambda: calls.append(("restart",)))
    monkeypatch.setitem(sys.modules, "slicer", slicer)
    monkeypatch.delitem(sys.modules, "slicer.packaging", raising=False)
    return slicer, calls


def test_packages_go_through_slicer_packaging_where_it_exists(fake_slicer, monkeypatch):
    slicer, calls = fake_slicer
    SlicerInstaller().install_packages([NUMBA, SKIMAGE])          # Slicer 5.8 and 5.10
    assert calls == [("pip_install", ["numba>=0.58", "scikit-image"])]

    packaging = types.ModuleType("slicer.packaging")
    packaging.pip_ensure = lambda reqs, **kw: calls.append(("pip_ensure", reqs, kw))
    monkeypatch.setitem(sys.modules, "slicer.packaging", packaging)
    SlicerInstaller().install_packages([NUMBA])                   # Slicer 5.12 and later
    name, reqs, kw = calls[-1]
    assert (name, reqs) == ("pip_ensure", ["numba>=0.58"])
    assert kw["prompt_install"] is False and kw["prompt_restart"] is False and kw["requester"] == "CochleaAI"


def test_torch_goes_through_pytorch_utils(monkeypatch):
    seen = []
    utils = types.ModuleType("PyTorchUtils")
    utils.PyTorchUtilsLogic = lambda: types.SimpleNamespace(installTorch=lambda **kw: seen.append(kw) or "torch")
    monkeypatch.setitem(sys.modules, "PyTorchUtils", utils)
    SlicerInstaller.check_torch_installer()
    SlicerInstaller.install_torch(TORCH, CPU_BUILD)
    SlicerInstaller.install_torch(TORCH, GPU_BUILD)
    assert seen == [dict(askConfirmation=False, forceComputationBackend="cpu", torchVersionRequirement=">=2.1"),
                    dict(askConfirmation=False, forceComputationBackend=None, torchVersionRequirement=">=2.1")]
    utils.PyTorchUtilsLogic = lambda: types.SimpleNamespace(installTorch=lambda **kw: None)
    with pytest.raises(CochleaAIError, match="did not install torch"):
        SlicerInstaller.install_torch(TORCH, CPU_BUILD)
    monkeypatch.delitem(sys.modules, "PyTorchUtils")
    with pytest.raises(CochleaAIError, match="Extensions Manager"):
        SlicerInstaller.check_torch_installer()


def test_a_click_during_the_installation_starts_no_second_one():
    """The progress dialog lets Qt process events: a second click arrives while pip runs."""
    versions = {}
    installs = {"torch": "2.13.0", "numba": "0.68.1", "scikit-image": "0.26.0"}
    dialogs = Dialogs(answer=CPU_BUILD)
    second = []

    class ClickingInstaller(Installer):
        def install_packages(self, requirements):
            second.append((check.ensure(), check.message))
            super().install_packages(requirements)

    installer = ClickingInstaller(versions, installs)
    check = _check(versions, dialogs, installer)
    assert check.ensure()
    assert second == [(False, "CochleaAI is installing its Python packages; wait for the installation to end.")]
    assert [call[0] for call in installer.calls] == ["torch", "pip"] and len(dialogs.asked) == 1
    assert not check.installing


def test_the_installation_progress_dialog_is_modal(monkeypatch):
    import types

    from cochleaai.slicer.gui.dependencies import SlicerDialogs

    seen = {}

    class Dialog:
        labelText, value = "", 0

        def setCancelButton(self, button):
            seen["cancel"] = button

        def setWindowModality(self, modality):
            seen["modality"] = modality

        def close(self):
            seen["closed"] = True

    qt = types.SimpleNamespace(Qt=types.SimpleNamespace(ApplicationModal="application-modal"))
    slicer = types.SimpleNamespace(util=types.SimpleNamespace(createProgressDialog=lambda **kw: Dialog()),
                                   app=types.SimpleNamespace(processEvents=lambda: None))
    monkeypatch.setitem(sys.modules, "qt", qt)
    monkeypatch.setitem(sys.modules, "slicer", slicer)
    with SlicerDialogs.progress(["Installing torch"]) as step:
        step()
    assert seen == {"cancel": None, "modality": "application-modal", "closed": True}
