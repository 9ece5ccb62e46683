"""The Python packages the modules need inside Slicer: one check before any action.

Slicer's own Python has numpy, scipy, SimpleITK, pydicom and vtk. What else the modules
need is listed in ``Resources/Dependencies/requirements.txt``, which ships with the
extension. Before a module does anything, :meth:`DependencyCheck.ensure` compares that
list with the installed distributions (by their metadata: nothing is imported). When
something is missing it asks the user once, then

* installs torch through the PyTorch extension's ``PyTorchUtils``: the build for the
  NVIDIA GPU and driver it finds, or the CPU build, as the user chooses;
* installs the others through ``slicer.packaging.pip_ensure`` (Slicer 5.12 and later) or
  ``slicer.util.pip_install`` (earlier versions);
* shows a progress dialog, and offers to restart Slicer when an installation changed a
  package that was loaded before it (the old copy stays in memory until a restart; what
  the installers import themselves, as torch, is the new copy).

Nothing is downloaded without the user's yes, and nothing is installed in testing mode.
``slicer`` and ``qt`` are imported only inside the Slicer-side classes, so this file
imports anywhere; the check itself is plain Python and tested with stand-ins.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence

from cochleaai.errors import CochleaAIError

REQUIREMENTS_FILE = Path(__file__).resolve().parents[3] / "Resources" / "Dependencies" / "requirements.txt"
TORCH = "torch"
#: Choices of torch build offered to the user (``None``: nothing is installed).
GPU_BUILD, CPU_BUILD, NO_BUILD_CHOICE = "gpu", "cpu", "install"

_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:>=\s*([0-9][0-9A-Za-z.]*))?$")


@dataclass(frozen=True)
class Requirement:
    """A distribution name and the lowest version that will do (``None``: any)."""

    name: str
    minimum: Optional[str] = None

    def __str__(self) -> str:
        return f"{self.name}>={self.minimum}" if self.minimum else self.name

    def satisfied_by(self, version: Optional[str]) -> bool:
        return version is not None and (self.minimum is None or
                                        release(version) >= release(self.minimum))


def release(version: str) -> tuple:
    """The leading numbers of a version ("2.13.0+cpu" -> (2, 13, 0); "2.1rc1" -> (2, 1))."""
    numbers = []
    for part in version.split("+")[0].split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        numbers.append(int(digits.group()))
        if digits.end() < len(part):    # a pre-release tag ends the comparable part
            break
    return tuple(numbers)


def read_requirements(path: Path = REQUIREMENTS_FILE) -> List[Requirement]:
    """The requirements of ``path``: one ``name`` or ``name>=version`` per line, ``#`` comments."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise CochleaAIError(f"The list of Python packages the extension needs ({path}) cannot be "
                             f"read ({error}); reinstall the CochleaAI extension.") from None
    requirements = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise CochleaAIError(f"{path}, line {number}: {line!r} is not understood; write one "
                                 "'name' or 'name>=version' per line.")
        requirements.append(Requirement(match.group(1), match.group(2)))
    return requirements


def installed_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_requirements(requirements: Optional[Sequence[Requirement]] = None,
                         version_of: Callable[[str], Optional[str]] = installed_version) -> List[Requirement]:
    """The requirements that no installed distribution satisfies (default: the extension's list)."""
    if requirements is None:
        requirements = read_requirements()
    return [r for r in requirements if not r.satisfied_by(version_of(r.name))]


def describe(requirements: Sequence[Requirement]) -> str:
    return ", ".join(str(r) for r in requirements)


# ------------------------------------------------------------------ what changed
def installed_versions() -> Dict[str, str]:
    """{distribution name (lower case): version} of everything installed."""
    importlib.invalidate_caches()     # a pip subprocess may just have changed them
    versions = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            versions[name.lower()] = dist.version
    return versions


def _import_names(distribution: str) -> List[str]:
    try:
        top_level = importlib.metadata.distribution(distribution).read_text("top_level.txt")
    except importlib.metadata.PackageNotFoundError:
        top_level = None
    names = [n.strip() for n in (top_level or "").splitlines() if n.strip()]
    return names or [distribution.replace("-", "_")]


def changed_and_loaded(before: Dict[str, str], after: Dict[str, str],
                       loaded: Optional[Iterable[str]] = None) -> List[str]:
    """Distributions whose version changed (or that appeared) while a module of theirs was
    already imported (``loaded``: the module names imported before the installation; default:
    those imported now): only a restart makes Python use the new files."""
    loaded = set(sys.modules if loaded is None else loaded)
    changed = [name for name, version in after.items() if before.get(name) != version]
    return sorted(name for name in changed if any(n in loaded for n in _import_names(name)))


# ------------------------------------------------------------------ the check
class DependencyCheck:
    """Check once before the first action; install what is missing after asking.

    ``installer`` and ``dialogs`` default to the Slicer ones (:class:`SlicerInstaller`,
    :class:`SlicerDialogs`); tests pass stand-ins. After a successful check, later calls
    return at once. ``message`` says why the last :meth:`ensure` returned False.
    """

    def __init__(self, requirements: Optional[Sequence[Requirement]] = None,
                 version_of: Callable[[str], Optional[str]] = installed_version,
                 installer=None, dialogs=None, versions: Callable[[], Dict[str, str]] = installed_versions):
        self._requirements = list(requirements) if requirements is not None else None
        self.version_of = version_of
        self.installer = installer if installer is not None else SlicerInstaller()
        self.dialogs = dialogs if dialogs is not None else SlicerDialogs()
        self._versions = versions
        self.ready = False
        self.message = ""
        #: True while an installation runs: a click that comes in meanwhile (the progress
        #: dialog lets Qt process events) must not start a second pip run.
        self.installing = False

    @property
    def requirements(self) -> List[Requirement]:
        if self._requirements is None:
            self._requirements = read_requirements()
        return self._requirements

    def missing(self) -> List[Requirement]:
        return missing_requirements(self.requirements, self.version_of)

    def ensure(self) -> bool:
        """True when every package is there (possibly after installing it now).

        False when the user said no, or when Slicer must restart first (``message`` says
        which). A failed installation raises :class:`CochleaAIError`.
        """
        if self.ready:
            return True
        if self.installing:
            self.message = "CochleaAI is installing its Python packages; wait for the installation to end."
            return False
        self.message = ""
        missing = self.missing()
        if not missing:
            self.ready = True
            return True
        if self.dialogs.testing():
            raise CochleaAIError(f"These Python packages are not installed: {describe(missing)}. Nothing "
                                 "is installed in testing mode; open a CochleaAI module in Slicer to "
                                 "install them.")
        torch = next((r for r in missing if r.name == TORCH), None)
        others = [r for r in missing if r is not torch]
        if torch is not None:
            self.installer.check_torch_installer()
        choice = self.dialogs.ask_install(missing, offer_torch_builds=torch is not None)
        if choice is None:
            self.message = f"Nothing was installed; the modules need {describe(missing)}."
            return False
        before = self._versions()
        # What the installers import is the new copy (PyTorchUtils' installTorch ends with
        # ``import torch``): only a module imported before the installation is an old one.
        loaded_before = set(sys.modules)
        steps = ([f"Installing {torch} through the PyTorch extension"] if torch else []) + (
            [f"Installing {describe(others)}"] if others else [])
        self.installing = True
        with self.dialogs.progress(steps) as step:
            try:
                if torch is not None:
                    step()
                    self.installer.install_torch(torch, choice)
                if others:
                    step()
                    self.installer.install_packages(others)
            except CochleaAIError:
                raise
            except Exception as error:    # pip's and light-the-torch's failures, shown to the user
                raise CochleaAIError(f"Installing {describe(missing)} failed ({error}). Check the network "
                                     "connection; the Python console shows the installer's messages.") from error
            finally:
                self.installing = False
        still = self.missing()
        if still:
            raise CochleaAIError(f"{describe(still)} still missing after the installation; the Python "
                                 "console shows the installer's messages.")
        reloaded = changed_and_loaded(before, self._versions(), loaded_before)
        if reloaded:
            self.message = (f"Restart Slicer to use the installed packages ({', '.join(reloaded)} "
                            "were already loaded).")
            if self.dialogs.confirm_restart(reloaded):
                self.installer.restart()
            return False
        self.ready = True
        return True


# ------------------------------------------------------------------ inside Slicer
def translator(context: str) -> Callable[[str], str]:
    """A ``_()`` for a helper file that imports outside Slicer too: Slicer's ``translate``
    with the context ``slicer.i18n.tr`` would give that file ("cochleaai.<file name>"), or
    the text itself where Slicer's translations are not available."""
    def _(text: str) -> str:
        try:
            from slicer.i18n import translate  # lazy: Slicer's own, present only inside the application

            return translate(context, text)
        except (ImportError, AttributeError):
            return text
    return _


_ = translator("cochleaai.slicer.gui.dependencies")


class SlicerInstaller:
    """Installs through the PyTorch extension and Slicer's pip helpers."""

    REQUESTER = "CochleaAI"

    @staticmethod
    def check_torch_installer() -> None:
        try:    # a scripted module of the PyTorch extension, importable once that is installed
            found = "PyTorchUtils" in sys.modules or importlib.util.find_spec("PyTorchUtils") is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise CochleaAIError("torch is installed through the PyTorch extension, which is missing: "
                                 "install 'PyTorch' from the Extensions Manager, restart Slicer and "
                                 "try again.")

    @staticmethod
    def install_torch(requirement: Requirement, choice: str) -> None:
        import PyTorchUtils  # lazy: a module of the PyTorch extension, present once it is installed

        version = f">={requirement.minimum}" if requirement.minimum else None
        torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(
            askConfirmation=False, forceComputationBackend="cpu" if choice == CPU_BUILD else None,
            torchVersionRequirement=version)
        if torch is None:
            raise CochleaAIError("The PyTorch extension did not install torch; install it from the "
                                 "'PyTorch Utils' module, then try again.")

    def install_packages(self, requirements: Sequence[Requirement]) -> None:
        import slicer  # lazy: Slicer's own, present only inside the application

        specifiers = [str(r) for r in requirements]
        try:
            packaging = importlib.import_module("slicer.packaging")
        except ImportError:
            packaging = None
        if getattr(packaging, "pip_ensure", None) is not None:
            # the restart question is asked once for everything, by DependencyCheck
            packaging.pip_ensure(specifiers, prompt_install=False, prompt_restart=False,
                                 requester=self.REQUESTER, skip_in_testing=False)
        else:
            slicer.util.pip_install(specifiers)

    @staticmethod
    def restart() -> None:
        import slicer  # lazy: Slicer's own, present only inside the application

        slicer.util.restart()


class SlicerDialogs:
    """The question, the progress dialog and the restart prompt, as Qt dialogs."""

    @staticmethod
    def testing() -> bool:
        import slicer  # lazy: Slicer's own, present only inside the application

        return bool(slicer.app.testingEnabled())

    @staticmethod
    def ask_install(missing: Sequence[Requirement], offer_torch_builds: bool) -> Optional[str]:
        import qt  # lazy: Slicer's own, present only inside the application
        import slicer  # lazy: Slicer's own, present only inside the application

        box = qt.QMessageBox(slicer.util.mainWindow())
        box.setIcon(qt.QMessageBox.Question)
        box.setWindowTitle(_("CochleaAI: install Python packages"))
        text = _("The CochleaAI modules need Python packages that this Slicer does not have yet. "
                   "They are downloaded and installed now (a few minutes and a network connection "
                   "are needed; torch alone is several hundred megabytes).")
        box.setDetailedText("\n".join(str(r) for r in missing))
        if offer_torch_builds:
            text += "\n\n" + _("torch: choose the build with NVIDIA GPU (CUDA) support, used when a "
                                 "compatible GPU and driver are found, or the CPU-only build. Every "
                                 "feature works on the CPU.")
            box.setStandardButtons(qt.QMessageBox.Yes | qt.QMessageBox.No | qt.QMessageBox.Cancel)
            box.button(qt.QMessageBox.Yes).text = _("Install (GPU if available)")
            box.button(qt.QMessageBox.No).text = _("Install (CPU only)")
            answers = {int(qt.QMessageBox.Yes): GPU_BUILD, int(qt.QMessageBox.No): CPU_BUILD}
        else:
            box.setStandardButtons(qt.QMessageBox.Ok | qt.QMessageBox.Cancel)
            box.button(qt.QMessageBox.Ok).text = _("Install")
            answers = {int(qt.QMessageBox.Ok): NO_BUILD_CHOICE}
        box.setText(text)
        return answers.get(int(box.exec_()))

    @staticmethod
    @contextmanager
    def progress(steps: Sequence[str]) -> Iterator[Callable[[], None]]:
        import qt  # lazy: Slicer's own, present only inside the application
        import slicer  # lazy: Slicer's own, present only inside the application

        dialog = slicer.util.createProgressDialog(
            windowTitle=_("CochleaAI: installing Python packages"), maximum=len(steps), value=0,
            labelText=steps[0] if steps else "", autoClose=False)
        dialog.setCancelButton(None)    # pip cannot be stopped half way without damage
        dialog.setWindowModality(qt.Qt.ApplicationModal)    # no other click while pip runs
        done = [0]

        def step() -> None:
            dialog.labelText = f"{steps[done[0]]} ({done[0] + 1} of {len(steps)})..."
            dialog.value = done[0]
            done[0] += 1
            slicer.app.processEvents()

        try:
            yield step
        finally:
            dialog.close()

    @staticmethod
    def confirm_restart(packages: Sequence[str]) -> bool:
        import slicer  # lazy: Slicer's own, present only inside the application

        return bool(slicer.util.confirmYesNoDisplay(
            _("The packages are installed. Slicer must restart before the CochleaAI modules can use "
                "them, because an older copy is already loaded. Restart now?"),
            windowTitle=_("CochleaAI: restart Slicer"), detailedText="\n".join(packages)))
