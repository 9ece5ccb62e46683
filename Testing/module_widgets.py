"""A module's widget built on a real slicer-core MRML scene, for the widget tests of
``Testing/logic``.

slicer-core gives the real MRML scene and nodes, but not the Qt side of Slicer: no
``slicer.ScriptedLoadableModule``, ``slicer.i18n`` or ``slicer.app``, and a ``slicer.util``
without the functions that show things. :func:`build_widget` plays those parts just enough
for the module script to import and its widget to be set up, so each test drives the panel
(stand-in Qt widgets with the values of the module's .ui file) and checks the nodes that
reach the real scene:

- ``slicer.ScriptedLoadableModule``: plain base classes, and a Logic whose
  ``getParameterNode()`` gives the module's singleton ``vtkMRMLScriptedModuleNode`` of
  ``slicer.mrmlScene`` (made on first use), as Slicer's does;
- ``slicer.i18n``: no translations (the text as written);
- ``slicer.util``: the ``VTKObservationMixin`` of ``slicer_stand_in``, and
  ``setSliceViewerLayers`` and ``errorDisplay`` recorded in ``calls`` instead of shown;
- ``slicer.app``: no event loop, no layout, the environment a worker process starts with
  (``startupEnvironment``) and an application logic whose selection node records the
  tables made active (``SetActiveTableID``) in ``calls``;
- ``CochleaAIModuleWidget.setup``: what the real one does minus loading the .ui file in Qt
  (the .ui file's stand-in widgets are read with ``slicer_stand_in.load_ui``).

Everything is changed through ``monkeypatch``: when the test ends, ``sys.modules`` (the
module script and ``cochleaai.slicer.gui.module``, imported here on the stand-ins, included)
and ``slicer`` are as they were before.
"""
from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

from slicer_stand_in import ProcessEnvironment, VTKObservationMixin, load_ui

ROOT = Path(__file__).resolve().parents[1]
#: Imported anew on the stand-ins by each build (and put back as they were after the test).
_REIMPORTED = ("cochleaai.slicer.gui.module",)


class Calls(dict):
    """What the widget showed through the stand-ins, by kind: ``layers`` (the keyword
    arguments of each ``setSliceViewerLayers``), ``tables`` (the node IDs given to
    ``SetActiveTableID``) and ``errors`` (the texts of ``errorDisplay``). Read as
    ``calls["errors"]`` or ``calls.errors``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _scripted_loadable_module(slicer):
    """A stand-in ``slicer.ScriptedLoadableModule`` (see the module's docstring)."""
    module = types.ModuleType("slicer.ScriptedLoadableModule")

    class _Base:
        def __init__(self, parent=None):
            self.parent = parent
            self.moduleName = type(self).__name__[:-len("Widget")]

        def setup(self):
            pass

    class _Logic:       # Slicer's: the module's singleton parameter node in slicer.mrmlScene
        def getParameterNode(self):
            node = slicer.mrmlScene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
            if node is None:
                node = slicer.mrmlScene.CreateNodeByClass("vtkMRMLScriptedModuleNode")
                node.UnRegister(None)
                node.SetSingletonTag(self.moduleName)
                slicer.mrmlScene.AddNode(node)
            return node

    module.ScriptedLoadableModule = module.ScriptedLoadableModuleWidget = _Base
    module.ScriptedLoadableModuleTest = _Base
    module.ScriptedLoadableModuleLogic = _Logic
    return module


def build_widget(monkeypatch, module_name: str, scene, **app_attributes) -> types.SimpleNamespace:
    """Import the module script ``module_name`` (its folder put on ``sys.path`` when it is not
    there) on the stand-ins, with ``scene`` as ``slicer.mrmlScene``, and set its widget up on
    the stand-in widgets of its .ui file.

    ``app_attributes`` add to or replace the attributes of the stand-in ``slicer.app``.
    Returns a namespace: ``module`` (the module script), ``widget`` (set up, bound to the
    module's parameter node), ``ui`` (the .ui file's widgets by objectName), ``calls``
    (:class:`Calls`) and ``scene``."""
    import slicer
    import slicer.util as slicer_util

    from cochleaai.slicer.gui.jobs import JobRunner

    folder = str(ROOT / module_name)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    calls = Calls(layers=[], tables=[], errors=[])
    monkeypatch.setitem(sys.modules, "slicer.ScriptedLoadableModule", _scripted_loadable_module(slicer))
    i18n = types.ModuleType("slicer.i18n")          # slicer-core has no translations
    i18n.tr = i18n.translate = lambda *texts: texts[-1]
    monkeypatch.setitem(sys.modules, "slicer.i18n", i18n)
    monkeypatch.setattr(slicer_util, "VTKObservationMixin", VTKObservationMixin, raising=False)
    monkeypatch.setattr(slicer_util, "setSliceViewerLayers", lambda **kw: calls["layers"].append(kw), raising=False)
    monkeypatch.setattr(slicer_util, "errorDisplay", lambda text, **kw: calls["errors"].append(text), raising=False)
    selection = types.SimpleNamespace(SetActiveTableID=calls["tables"].append)
    application_logic = types.SimpleNamespace(GetSelectionNode=lambda: selection,
                                              PropagateTableSelection=lambda: None)
    startup = ProcessEnvironment(os.environ)        # what the worker process is started with
    app = types.SimpleNamespace(processEvents=lambda: None, layoutManager=lambda: None,
                                startupEnvironment=lambda: startup, applicationLogic=lambda: application_logic)
    vars(app).update(app_attributes)
    monkeypatch.setattr(slicer, "app", app, raising=False)
    monkeypatch.setattr(slicer, "mrmlScene", scene, raising=False)
    for name in (*_REIMPORTED, module_name):
        monkeypatch.setitem(sys.modules, name, None)    # recorded: put back (or removed) after the test
        del sys.modules[name]
    module = importlib.import_module(module_name)
    ui = types.SimpleNamespace(**load_ui(ROOT / module_name / "Resources" / "UI" / f"{module_name}.ui").children)

    def base_setup(self):           # what CochleaAIModuleWidget.setup does, minus loading the .ui
        self.ui = ui
        self.runner = JobRunner(ui.progressBar, ui.cancelButton, ui.statusLabel, logBox=ui.logTextEdit)
        self.initializeParameterNode()

    monkeypatch.setattr(module.CochleaAIModuleWidget, "setup", base_setup)
    widget = getattr(module, f"{module_name}Widget")(types.SimpleNamespace(isEntered=True))
    widget.setup()
    return types.SimpleNamespace(module=module, widget=widget, ui=ui, calls=calls, scene=scene)
