"""A stand-in for the parts of the Slicer application the module scripts touch.

``install()`` puts modules named ``slicer``, ``slicer.util``, ``slicer.ScriptedLoadableModule``,
``slicer.i18n``, ``slicer.parameterNodeWrapper`` (``parameter_node_stand_in``: it binds the
panel's widgets to the module's parameter node, a stand-in ``vtkMRMLScriptedModuleNode`` of
the stand-in scene), ``qt``, ``ctk`` and ``SampleData`` (``sample_data_stand_in``: it
builds and refuses sources as Slicer's Sample Data module does) into ``sys.modules``. ``slicer.util.loadUI`` reads the
module's real ``.ui`` file and gives one stand-in widget (see ``qt_stand_ins``) per
objectName, with the numbers, texts and check states the file sets. Nothing of Qt runs:
this checks what the Python side of the module does while its panel is built and used.

``block_imports(names)`` makes packages unimportable (an import raises ImportError, and
the attempt is recorded), to show what a fresh Slicer without them would do.

Run as a script (``python slicer_stand_in.py MODULE...``), it builds each module's panel
with torch, numba, scikit-image, pynrrd, slicerio, matplotlib and tqdm unimportable and prints a
JSON report; ``test_slicer_panels.py`` runs it in a subprocess.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import json
import os
import sys
import traceback
import types
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

import parameter_node_stand_in
import sample_data_stand_in
from qt_stand_ins import BY_CLASS, Widget

ROOT = Path(__file__).resolve().parents[1]
#: What Slicer's own Python lacks and the extension installs on first use (or never needs).
OPTIONAL_PACKAGES = ("torch", "numba", "skimage", "nrrd", "slicerio", "matplotlib", "tqdm")


class _Unimportable(importlib.abc.MetaPathFinder):
    def __init__(self, names):
        self.names = set(names)
        self.attempts = []

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            if self._from_the_project():
                self.attempts.append(fullname)
            raise ImportError(f"{fullname} is not installed (made unimportable for this check)")
        return None

    @staticmethod
    def _from_the_project() -> bool:
        """Whether the import statement is the project's: a library that tries an optional
        package of its own (pydicom tries tqdm) and goes on without it is not counted."""
        frame = sys._getframe(2)
        while frame is not None and frame.f_code.co_filename.startswith("<frozen"):
            frame = frame.f_back
        if frame is None:
            return True
        path = Path(frame.f_code.co_filename).resolve()
        return ROOT in path.parents and "site-packages" not in path.parts


def block_imports(names=OPTIONAL_PACKAGES) -> _Unimportable:
    for name in list(sys.modules):
        if name.split(".")[0] in names:
            del sys.modules[name]
    finder = _Unimportable(names)
    sys.meta_path.insert(0, finder)
    return finder


# ------------------------------------------------------------------ the .ui file
def _property_value(prop):
    value = next(iter(prop), None)
    if value is None:
        return None
    if value.tag == "number":
        return int(value.text)
    if value.tag == "double":
        return float(value.text)
    if value.tag == "bool":
        return value.text == "true"
    if value.tag == "string":
        return value.text or ""
    return None


class _Panel(Widget):
    """The widget loadUI returns: it holds the named children."""

    def __init__(self, children):
        super().__init__()
        self.children = children


def load_ui(path):
    children = {}
    for element in ET.parse(path).getroot().iter("widget"):
        values = {p.get("name"): _property_value(p) for p in element.findall("property")}
        values = {k: v for k, v in values.items() if v is not None and k in (
            "value", "minimum", "maximum", "text", "checked", "enabled", "toolTip", "decimals",
            "singleStep", "SlicerParameterName")}
        widget = BY_CLASS.get(element.get("class"), Widget)()
        widget.__dict__.update(values)
        widget.className = element.get("class")
        children[element.get("name")] = widget
    return _Panel(children)


# ------------------------------------------------------------------ slicer itself
class Observable:
    """vtkObject's observer calls: a tag per observer, removed by tag."""

    def AddObserver(self, event, callback, priority=0.0):
        tag = len(self.observers) + 1
        self.observers[tag] = (event, callback)
        return tag

    def RemoveObserver(self, tag):
        self.observers.pop(tag, None)


class Scene(Observable):
    """slicer.mrmlScene for a panel: observers, the events the modules watch, and the modules'
    parameter nodes (one per module, as ``GetSingletonNode`` gives them)."""

    StartCloseEvent, EndCloseEvent, NodeAddedEvent = 100, 101, 102

    def __init__(self):
        self.observers = {}
        self.parameterNodes = {}


    def fire(self, event):
        for observed, callback in list(self.observers.values()):
            if observed == event:
                callback(self, event)

    def GetNumberOfNodes(self):
        return 0

    def GetNodeByID(self, node_id):
        return None         # the panel's scene holds no data nodes

    def parameterNode(self, moduleName):
        return self.parameterNodes.setdefault(moduleName, ParameterNode())


class ParameterNode(Observable):
    """A vtkMRMLScriptedModuleNode: string parameters, node references by role, ModifiedEvent
    (once per change, or once at the end of a StartModify/EndModify block)."""

    def __init__(self):
        self.values, self.references, self.observers = {}, {}, {}
        self.modifying, self.pending = 0, False

    def GetParameter(self, name):
        return self.values.get(name, "")

    def HasParameter(self, name):
        return name in self.values

    def SetParameter(self, name, value):
        if self.values.get(name) != str(value) or name not in self.values:
            self.values[name] = str(value)
            self.Modified()

    def UnsetParameter(self, name):
        if self.values.pop(name, None) is not None:
            self.Modified()

    def SetNodeReferenceID(self, role, node_id):
        if self.references.get(role) != node_id:
            self.references[role] = node_id
            self.Modified()

    def GetNodeReferenceID(self, role):
        return self.references.get(role)

    def GetNodeReference(self, role):
        node_id = self.references.get(role)
        return None if node_id is None else sys.modules["slicer"].mrmlScene.GetNodeByID(node_id)


    def StartModify(self):
        self.modifying += 1
        return self.modifying - 1

    def EndModify(self, was):
        self.modifying = was
        if not was and self.pending:
            self.pending = False
            self.Modified()

    def Modified(self):
        if self.modifying:
            self.pending = True
            return
        for event, callback in list(self.observers.values()):
            if event == parameter_node_stand_in.MODIFIED_EVENT:
                callback(self, event)


def slicer_core_util():
    """Slicer's own ``slicer/util.py`` as shipped by slicer-core, loaded as a separate module
    (its functions import ``slicer`` when called, and then get this stand-in); None without it."""
    for folder in sys.path:
        path = Path(folder or ".") / "slicer" / "util.py"
        if path.is_file() and "site-packages" in str(path):
            spec = importlib.util.spec_from_file_location("slicer_core_util", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    return None


class ProcessEnvironment:
    """qt.QProcessEnvironment as ``slicer.app.startupEnvironment()`` gives it: keys() and value()."""

    def __init__(self, variables):
        self._variables = dict(variables)

    def keys(self):
        return list(self._variables)

    def value(self, name, default=""):
        return self._variables.get(name, default)


class App:
    """slicer.app: event processing (counted, with a hook for tests), signals, settings."""

    def __init__(self):
        self._startup = ProcessEnvironment(os.environ)     # the environment Slicer was started in
        self.events = 0
        self.on_events = None
        self.signals = {}
        self.testing = False

    def processEvents(self, *flags):
        self.events += 1
        if self.on_events is not None:
            self.on_events()

    def connect(self, signal, slot):
        self.signals.setdefault(signal, []).append(slot)

    def disconnect(self, signal, slot):
        if slot in self.signals.get(signal, []):
            self.signals[signal].remove(slot)

    def emit(self, signal):
        for slot in list(self.signals.get(signal, [])):
            slot()

    def testingEnabled(self):
        return self.testing

    def startupEnvironment(self):
        return self._startup

    def layoutManager(self):
        return None

    def applicationLogic(self):
        selection = types.SimpleNamespace(SetActiveTableID=lambda *_: None,
                                          SetReferenceActivePlaceNodeID=lambda *_: None)
        return types.SimpleNamespace(GetSelectionNode=lambda: selection,
                                     PropagateTableSelection=lambda: None)


def _scripted_module_classes(slicer):
    module = types.ModuleType("slicer.ScriptedLoadableModule")

    class ScriptedLoadableModule:
        def __init__(self, parent):
            self.parent = parent

    class ScriptedLoadableModuleWidget:
        def __init__(self, parent=None):
            self.parent = parent if parent is not None else types.SimpleNamespace(isEntered=False)
            self.layout = types.SimpleNamespace(addWidget=lambda w: None, addStretch=lambda *a: None)
            self.moduleName = type(self).__name__[:-len("Widget")]

        def resourcePath(self, filename):
            script = Path(sys.modules[type(self).__module__].__file__)
            return str(script.parent / "Resources" / filename)

        def setup(self):
            pass

        def cleanup(self):
            pass

    class ScriptedLoadableModuleLogic:
        def __init__(self, parent=None):
            self.moduleName = type(self).__name__
            if self.moduleName.endswith("Logic"):
                self.moduleName = self.moduleName[:-len("Logic")]

        def getParameterNode(self):
            return slicer.mrmlScene.parameterNode(self.moduleName)

    class ScriptedLoadableModuleTest(unittest.TestCase):
        def delayDisplay(self, message, msec=0):
            pass

    module.ScriptedLoadableModule = ScriptedLoadableModule
    module.ScriptedLoadableModuleWidget = ScriptedLoadableModuleWidget
    module.ScriptedLoadableModuleLogic = ScriptedLoadableModuleLogic
    module.ScriptedLoadableModuleTest = ScriptedLoadableModuleTest
    return module


_NODE_CLASSES = {}


def _node_class(name):
    """An empty stand-in for each MRML node class named in an annotation (the same one each time)."""
    if name.startswith("vtkMRML"):
        return _NODE_CLASSES.setdefault(name, type(name, (), {}))
    raise AttributeError(name)


class VTKObservationMixin:
    def __init__(self):
        self.Observations = []

    def addObserver(self, obj, event, callback, priority=0.0):
        self.Observations.append((obj, event, callback, obj.AddObserver(event, callback)))

    def removeObserver(self, obj, event, callback):
        for observation in [o for o in self.Observations if o[:3] == (obj, event, callback)]:
            obj.RemoveObserver(observation[3])
            self.Observations.remove(observation)

    def removeObservers(self, method=None):
        for obj, _, _, tag in self.Observations:
            obj.RemoveObserver(tag)
        self.Observations = []


def install():
    """Put the stand-in ``slicer``, ``qt`` and ``ctk`` modules in ``sys.modules``; returns slicer."""
    slicer = types.ModuleType("slicer")
    slicer.__path__ = []          # a package, so that ``import slicer.util`` works
    slicer.app = App()
    slicer.mrmlScene = Scene()
    slicer.calls = {"errors": [], "layers": [], "confirm": []}

    util = types.ModuleType("slicer.util")
    util.loadUI = load_ui
    util.childWidgetVariables = lambda panel: types.SimpleNamespace(**panel.children)
    util.VTKObservationMixin = VTKObservationMixin
    util.errorDisplay = lambda text, **kw: slicer.calls["errors"].append((text, kw))
    util.setSliceViewerLayers = lambda **kw: slicer.calls["layers"].append(kw)
    util.mainWindow = lambda: None
    util.confirmOkCancelDisplay = lambda text, *a, **kw: slicer.calls["confirm"].append(text) or False
    util.confirmYesNoDisplay = lambda text, *a, **kw: slicer.calls["confirm"].append(text) or False
    util.infoDisplay = lambda text, **kw: slicer.calls.setdefault("info", []).append(text)

    def load_volume(filename, properties={}, returnNode=False):
        """Slicer's signature; like Slicer, a file that cannot be read raises RuntimeError."""
        if not Path(filename).is_file():
            raise RuntimeError(f"Failed to load volume from {filename}")
        slicer.calls.setdefault("loaded", []).append((str(filename), dict(properties)))
        return types.SimpleNamespace(name=properties.get("name"))

    util.loadVolume = load_volume
    real = slicer_core_util()
    if real is not None:        # Slicer's own process launcher, where it runs without the application
        util.startupEnvironment = real.startupEnvironment
        util.launchConsoleProcess = real.launchConsoleProcess
        util.logProcessOutput = real.logProcessOutput
    slicer.util = util

    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    slicer.i18n = i18n

    sys.modules["SampleData"] = sample_data_stand_in    # Slicer's Sample Data module

    torch_utils = types.ModuleType("PyTorchUtils")    # the PyTorch extension is installed
    torch_utils.PyTorchUtilsLogic = lambda: types.SimpleNamespace(installTorch=lambda **kw: None)
    sys.modules["PyTorchUtils"] = torch_utils

    slicer.parameterNodeWrapper = parameter_node_stand_in
    # node classes named in annotations (parameter node types): empty stand-ins
    slicer.__getattr__ = _node_class

    scripted = _scripted_module_classes(slicer)
    slicer.ScriptedLoadableModule = scripted
    slicer.modules = types.SimpleNamespace()
    for name, module in (("slicer", slicer), ("slicer.util", util), ("slicer.i18n", i18n),
                         ("slicer.parameterNodeWrapper", slicer.parameterNodeWrapper),
                         ("slicer.ScriptedLoadableModule", scripted),
                         ("qt", types.ModuleType("qt")), ("ctk", types.ModuleType("ctk"))):
        sys.modules[name] = module
    return slicer


def import_module_script(name):
    """Import ``<name>/<name>.py`` as Slicer does (its folder on sys.path)."""
    folder = str(ROOT / name)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


def build_panel(name, slicer):
    """Module(parent) and Widget(parent).setup(), as Slicer does when the module is opened."""
    script = import_module_script(name)
    parent = types.SimpleNamespace(isEntered=True)
    getattr(script, name)(parent)
    widget = getattr(script, f"{name}Widget")(parent)
    widget.setup()
    widget.enter()
    slicer.mrmlScene.fire(slicer.mrmlScene.EndCloseEvent)   # the scene is closed once
    return script, parent, widget


#: Distribution names of the blocked packages, as the dependency check knows them.
_DISTRIBUTIONS = {"torch": "torch", "numba": "numba", "scikit-image": "skimage", "pynrrd": "nrrd",
                  "slicerio": "slicerio", "matplotlib": "matplotlib", "tqdm": "tqdm"}


class DeclineDialogs:
    """The dependency check's dialogs: the user says no to installing (and is counted)."""

    def __init__(self):
        self.asked = []

    def testing(self):
        return False

    def ask_install(self, missing, offer_torch_builds):
        self.asked.append(sorted(r.name for r in missing))
        return None


def as_if_not_installed(check):
    """Make ``check`` (a DependencyCheck) see the blocked packages as not installed."""
    real = check.version_of
    check.version_of = lambda name: None if name in _DISTRIBUTIONS else real(name)
    check.dialogs = DeclineDialogs()
    return check.dialogs


#: Buttons that start no computation, so need no optional package: Cancel, and placing points
#: (tested on real MRML in test_point_placing.py; the stand-in has no MRML).
NOT_ACTIONS = {"cancelButton", "placePointsButton", "placeLandmarksButton"}


def click_every_button(widget):
    """Click each push button of the panel that starts a computation, and move each slider;
    returns the names of the buttons clicked."""
    clicked = []
    for name, child in sorted(vars(widget.ui).items()):
        kind = getattr(child, "className", "")
        if kind == "QPushButton" and name not in NOT_ACTIONS:
            child.emit("clicked(bool)", False)
            clicked.append(name)
        elif kind == "ctkSliderWidget":
            child.emit("valueChanged(double)", 0.5)
    return clicked


def unit_test_classes(name):
    """The TestCase classes whose tests ``slicer.testing.runUnitTest`` runs for the module
    (the ctest of ``slicer_add_python_unittest``): it puts the module's folder on sys.path and
    runs ``unittest.TestLoader().loadTestsFromName(name)``, every TestCase class the module
    script holds, the imported ones too."""
    folder = str(ROOT / name)
    if folder not in sys.path:
        sys.path.append(folder)

    def tests(suite):
        for item in suite:
            yield from tests(item) if isinstance(item, unittest.TestSuite) else [item]
    return sorted({type(test).__qualname__ for test in tests(unittest.TestLoader().loadTestsFromName(name))})


def run_self_test(name):
    """The module's self-test as Slicer's "Reload and Test" runs it; what became of it."""
    test = getattr(sys.modules[name], f"{name}Test")()
    try:
        test.runTest()
    except unittest.SkipTest as skipped:
        return f"skipped: {skipped}"
    return "ran"


def sample_entries(slicer):
    """Start-up completes (the modules register their data sets), then each CochleaAI entry
    of the Sample Data module is described and clicked, with the packages missing."""
    try:
        slicer.app.emit("startupCompleted()")
    except Exception:       # Slicer logs a failing slot and goes on: the entries are not there
        return {"error": traceback.format_exc()}
    entries = []
    for source in getattr(slicer.modules, "sampleDataSources", {}).get("CochleaAI", []):
        entry = {field: getattr(source, field)
                 for field in ("sampleName", "thumbnailFileName", *sample_data_stand_in.PER_FILE)}
        entry["customDownloader"] = source.customDownloader is not None
        # Slicer shows the thumbnail only where the file exists
        entry["thumbnailShown"] = bool(source.thumbnailFileName) and Path(source.thumbnailFileName).is_file()
        entries.append(entry)
        sample_data_stand_in.click(source)
    return entries


def main(names):
    finder = block_imports()
    slicer = install()
    sys.path.insert(0, str(ROOT))
    report = {}
    for name in names:
        entry = {}
        try:
            _, parent, widget = build_panel(name, slicer)
            entry["title"] = parent.title
            entry["categories"] = parent.categories
            entry["status"] = getattr(widget.ui.statusLabel, "text", "")
            entry["built"] = True
            entry["parameters"] = sorted(type(widget.parameters).allParameters)
            names = [parameter_node_stand_in.parameter_name(w) for w in vars(widget.ui).values()]
            entry["bound_widgets"] = sorted(name for name in names if name)
            entry["stored"] = dict(widget.parameters.parameterNode.values)
            entry["blocked_imports"] = sorted(set(finder.attempts))
            finder.attempts.clear()
            dialogs = as_if_not_installed(widget.runner.dependencies)
            entry["clicked"] = click_every_button(widget)
            entry["asked"] = list(dialogs.asked)
            entry["status_after_clicks"] = widget.ui.statusLabel.text
            entry["blocked_imports_on_click"] = sorted(set(finder.attempts))
            entry["self_test"] = run_self_test(name)
            widget.cleanup()
        except BaseException:   # reported to the test, which shows it
            entry["built"] = entry.get("built", False)
            entry["error"] = traceback.format_exc()
        entry.setdefault("blocked_imports", sorted(set(finder.attempts)))
        finder.attempts.clear()
        report[name] = entry
    report["samples"] = sample_entries(slicer)
    report["sample_info"] = slicer.calls.get("info", [])
    report["sample_loaded"] = slicer.calls.get("loaded", [])
    report["sample_errors"] = [text for text, _ in slicer.calls["errors"]]
    report["blocked_imports_by_samples"] = sorted(set(finder.attempts))
    report["loaded_optional_packages"] = sorted(
        n for n in sys.modules if n.split(".")[0] in OPTIONAL_PACKAGES)
    report["errors_shown"] = [text for text, _ in slicer.calls["errors"]]
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])


def run_jobs_in_this_process(monkeypatch):
    """Play ``JobRunner.runInProcess`` in this process, for widget tests that replace a core
    function (``monkeypatch.setattr(pipeline, "segment", replay)``): the function is found by
    its reference as the worker finds it, and the arguments and the result go through pickle
    as they do to and from the worker; ``finish`` then runs as it would. The process itself
    is tested in ``gui/test_worker_jobs.py``."""
    import pickle

    from cochleaai import worker
    from cochleaai.slicer.gui.jobs import JobRunner

    def run_in_process(self, description, function, args=(), kwargs=None, finish=None, share=1.0):
        function = worker.resolve(worker.function_reference(function))
        args, kwargs = pickle.loads(pickle.dumps((tuple(args), dict(kwargs or {}))))

        def job(progress):
            result = pickle.loads(pickle.dumps(function(*args, progress=progress, **kwargs)))
            return result if finish is None else finish(result)

        return self.run(description, job)

    monkeypatch.setattr(JobRunner, "runInProcess", run_in_process)
