"""Each module's parameter node class (``<Module>Lib/parameters.py``, a ``@parameterNodeWrapper``)
on a real ``vtkMRMLScriptedModuleNode`` (slicer-core), with the stand-in of
``slicer.parameterNodeWrapper`` (``parameter_node_stand_in.py``, Slicer's formats and refusals):

* every parameter has its widget in the module's .ui file (``SlicerParameterName``) and back,
  with the widget's value as default and its range as ``WithinRange``;
* every parameter round-trips through the node in Slicer's string format, and a fresh node
  gets every default;
* a value of the wrong type, None for a number or a value out of range is refused as Slicer
  refuses it, and the stored value stays;
* the choices (enums) are the core's tables, which need torch and so are not imported there.
"""
from __future__ import annotations

import enum
import importlib
import sys
import typing
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("MetalArtifactReduction", "CochleaShapeSegmentation", "LangevinVAEExplorer", "OneShotLandmarks")
for _module in MODULES:
    if str(ROOT / _module) not in sys.path:
        sys.path.insert(0, str(ROOT / _module))

slicer = pytest.importorskip("slicer", reason="slicer-core (real MRML) is not installed")

from slicer.parameterNodeWrapper import WithinRange  # noqa: E402  (the stand-in: slicer-core lacks it)

from cochleaai.slicer.gui.panels import ComboChoice, choice_items  # noqa: E402

SPIN_BOXES = {"QSpinBox": (int, 0, 99), "QDoubleSpinBox": (float, 0.0, 99.99)}


def parameters_module(module: str):
    return importlib.import_module(f"{module}Lib.parameters")


def parameter_class(module: str):
    return getattr(parameters_module(module), f"{module}ParameterNode")


def ui_parameters(module: str):
    """``{parameter name: (widget class, {property: value})}`` of the widgets with a SlicerParameterName."""
    found = {}
    for widget in ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui").getroot().iter("widget"):
        props = {}
        for prop in widget.findall("property"):
            value = next(iter(prop), None)
            if value is None:
                continue
            props[prop.get("name")] = {"number": lambda v: int(v.text), "double": lambda v: float(v.text),
                                       "string": lambda v: v.text or "", "bool": lambda v: v.text == "true",
                                       "stringlist": lambda v: [s.text for s in v.iter("string")]}.get(
                value.tag, lambda v: None)(value)
        name = props.get("SlicerParameterName")
        if name:
            assert name not in found, f"two widgets hold {name}"
            found[name] = (widget.get("class"), props)
    return found


def split(hint):
    if typing.get_origin(hint) is typing.Annotated:
        kind, *annotations = typing.get_args(hint)
        return kind, annotations
    return hint, []


def is_node_type(kind) -> bool:
    return isinstance(kind, type) and kind.__name__.startswith("vtkMRML")


@pytest.fixture
def fresh(scene):
    """``make(module)``: the module's parameter object on a new scripted module node of ``scene``."""
    def make(module):
        node = scene.AddNewNodeByClass("vtkMRMLScriptedModuleNode")
        return node, parameter_class(module)(node)
    return make


@pytest.mark.parametrize("module", MODULES)
def test_every_parameter_has_its_widget_with_its_default_and_range(module, fresh):
    cls, ui = parameter_class(module), ui_parameters(module)
    assert set(cls.allParameters) == set(ui), "parameters and SlicerParameterName widgets differ"
    selectors = [w.get("name") for w in ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui").getroot().iter(
        "widget") if w.get("class") == "qMRMLNodeComboBox"]
    assert len(selectors) == sum(c == "qMRMLNodeComboBox" for c, _ in ui.values()), \
        "every node selection is a parameter (saved with the scene)"
    _, parameters = fresh(module)
    for name, (widget_class, props) in ui.items():
        kind, annotations = split(cls.allParameters[name].unalteredType)
        default = parameters.default(name).value
        if widget_class == "qMRMLNodeComboBox":
            assert is_node_type(kind) and props["nodeTypes"] == [kind.__name__] and default is None, name
        elif widget_class in SPIN_BOXES:
            number, low, high = SPIN_BOXES[widget_class]
            bounds = [a for a in annotations if isinstance(a, WithinRange)]
            assert kind is number and type(default) is number, name
            assert default == props.get("value", number(0)), name
            assert bounds and (bounds[0].minimum, bounds[0].maximum) == (props.get("minimum", low),
                                                                         props.get("maximum", high)), name
            assert bounds[0].minimum <= default <= bounds[0].maximum, name
        elif widget_class == "QComboBox":
            assert issubclass(kind, ComboChoice) and isinstance(default, kind), name
        elif widget_class == "QLineEdit":
            assert kind is str and default == props.get("text", ""), name
        elif widget_class == "QCheckBox":
            assert kind is bool and default == props.get("checked", False), name
        else:
            pytest.fail(f"{module}.ui: {name} is bound to a {widget_class}")


def _other_value(scene, name, kind, annotations, default):
    """A valid value of the parameter that is not its default."""
    if is_node_type(kind):
        return scene.AddNewNodeByClass(kind.__name__, f"{name} node")
    if issubclass(kind, enum.Enum):
        return next(m for m in reversed(list(kind)) if m is not default)
    if kind is str:
        return f"{default} and more"
    if kind is bool:
        return not default
    low, high = next((a.minimum, a.maximum) for a in annotations if isinstance(a, WithinRange))
    if kind is int:
        return low if default != low else high
    return (low + 2 * high) / 3.0


@pytest.mark.parametrize("module", MODULES)
def test_every_parameter_round_trips_through_the_node(module, fresh, scene):
    node, parameters = fresh(module)
    cls = type(parameters)
    defaults = {}
    for name, info in cls.allParameters.items():      # a fresh node gets every default, in Slicer's format
        kind, _ = split(info.unalteredType)
        default = parameters.default(name).value
        defaults[name] = default
        assert node.HasParameter(name), name
        if is_node_type(kind):
            assert node.GetParameter(name) == "" and node.GetNodeReferenceID(name) is None
        elif issubclass(kind, enum.Enum):
            assert node.GetParameter(name) == default.name
        else:
            assert node.GetParameter(name) == str(default)
        assert getattr(parameters, name) == default
    changed = {}
    for name, info in cls.allParameters.items():
        kind, annotations = split(info.unalteredType)
        changed[name] = _other_value(scene, name, kind, annotations, defaults[name])
        setattr(parameters, name, changed[name])
    again = cls(node)                                   # a new object reads the node: e.g. a loaded scene
    for name, value in changed.items():
        kind, _ = split(cls.allParameters[name].unalteredType)
        read = getattr(again, name)
        if is_node_type(kind):
            assert read.GetID() == value.GetID() and node.GetNodeReferenceID(name) == value.GetID(), name
        else:
            assert read == value and type(read) is type(value), name
            assert node.GetParameter(name) == (value.name if isinstance(value, enum.Enum) else str(value)), name


@pytest.mark.parametrize("module", MODULES)
def test_wrong_values_are_refused_as_slicer_refuses_them(module, fresh, scene):
    node, parameters = fresh(module)
    table = scene.AddNewNodeByClass("vtkMRMLTableNode")
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode")
    for name, info in type(parameters).allParameters.items():
        kind, annotations = split(info.unalteredType)
        stored = node.GetParameter(name)
        if is_node_type(kind):
            other = volume if not isinstance(volume, kind) else table
            with pytest.raises(TypeError, match="Value must be of type"):
                setattr(parameters, name, other)
            with pytest.raises(TypeError):
                setattr(parameters, name, 4)
        elif issubclass(kind, enum.Enum):
            with pytest.raises(TypeError, match="Value must be of type"):
                setattr(parameters, name, getattr(parameters, name).name)      # its key, not the member
        else:
            with pytest.raises(ValueError, match="Value must not be None"):
                setattr(parameters, name, None)
            with pytest.raises(TypeError, match="Value must be of type"):
                setattr(parameters, name, [1] if kind is str else "3")
            bounds = [a for a in annotations if isinstance(a, WithinRange)]
            if bounds:
                with pytest.raises(ValueError, match="Value must be within range"):
                    setattr(parameters, name, bounds[0].maximum + 1)
        assert node.GetParameter(name) == stored, f"a refused value of {name} was stored"
    with pytest.raises(ValueError, match="Cannot find a param"):
        parameters.getValue("noSuchParameter")


def test_an_unknown_choice_in_a_node_is_reported(fresh):
    node, parameters = fresh("CochleaShapeSegmentation")
    node.SetParameter("side", "middle")
    with pytest.raises(ValueError, match="not a name in"):
        parameters.side


# ------------------------------------------------------------------ the core's tables
def test_phantom_choices_are_the_core_table():
    from cochleaai.phantom.options import DEFAULT_SEED, FIELDS_OF_VIEW, FOVS, MAX_SEED
    from cochleaai.slicer.gui import panels

    assert choice_items(panels.FieldOfView) == FIELDS_OF_VIEW and set(FIELDS_OF_VIEW) == set(FOVS)
    assert (panels.PhantomParameters.phantomSeed, panels.MAX_SEED) == (DEFAULT_SEED, MAX_SEED)


def test_metal_artifact_reduction_choices_are_the_core_tables(fresh):
    from cochleaai.mar import methods
    from cochleaai.simulation.arrays import ARRAYS, DEFAULT_ARRAY

    p = parameters_module("MetalArtifactReduction")
    arrays = {key: array.name for key, array in ARRAYS.items()}
    assert choice_items(p.MarMethod) == methods.METHODS
    assert choice_items(p.ElectrodeArray) == arrays and choice_items(p.ImplantedArray) == {None: "Unknown", **arrays}
    _, parameters = fresh("MetalArtifactReduction")
    assert parameters.method.key == methods.default_method() and parameters.array.key == DEFAULT_ARRAY
    assert parameters.implantedArray.key is None and parameters.thresholdHU == methods.DEFAULT_THRESHOLD_HU


def _load_copy(path: Path, name: str):
    """A second, private instance of the module at ``path`` (built from the tables as they are now)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_menus_are_built_from_the_core_tables(monkeypatch):
    """No copy: an entry added to a core table is an item of the menu built after it."""
    import dataclasses

    from cochleaai.mar import methods
    from cochleaai.phantom import options as phantom_options
    from cochleaai.segmentation import options as segmentation_options
    from cochleaai.simulation import arrays

    monkeypatch.setitem(methods.METHODS, "probe", "A probe method")
    monkeypatch.setitem(arrays.ARRAYS, "probe", dataclasses.replace(arrays.ARRAYS["flex28"], key="probe",
                                                                    name="A probe array"))
    monkeypatch.setitem(phantom_options.FIELDS_OF_VIEW, "probe", "A probe field")
    monkeypatch.setattr(segmentation_options, "SIDES", segmentation_options.SIDES + ("probe",))
    panels = _load_copy(ROOT / "cochleaai" / "slicer" / "gui" / "panels.py", "probe_panels")
    mar = _load_copy(ROOT / "MetalArtifactReduction" / "MetalArtifactReductionLib" / "parameters.py", "probe_mar")
    seg = _load_copy(ROOT / "CochleaShapeSegmentation" / "CochleaShapeSegmentationLib" / "parameters.py",
                     "probe_segmentation")
    assert choice_items(panels.FieldOfView)["probe"] == "A probe field"
    assert choice_items(mar.MarMethod)["probe"] == "A probe method"
    assert choice_items(mar.ElectrodeArray)["probe"] == choice_items(mar.ImplantedArray)["probe"] == "A probe array"
    assert choice_items(seg.Side)["probe"] == "Probe ear"


def test_segmentation_settings_are_the_pipeline_s(fresh):
    from cochleaai.segmentation.config import SegmentConfig
    from cochleaai.segmentation.options import SIDES

    assert tuple(choice_items(parameters_module("CochleaShapeSegmentation").Side)) == SIDES
    _, p = fresh("CochleaShapeSegmentation")
    settings = SegmentConfig()
    assert (p.side.key, p.lRefFit, p.lRefFinal, p.iterations, p.samples, p.vestibuleWedge) == (
        settings.side, settings.l_ref_fit, settings.l_ref_final, settings.outer_iterations, settings.samples,
        settings.vestibule_wedge_deg)


def test_landmark_choices():
    assert choice_items(parameters_module("OneShotLandmarks").EarSide) == {
        None: "Auto (try both)", "left": "Left", "right": "Right"}


@pytest.mark.parametrize("module", MODULES)
def test_the_slots_read_declared_parameters(module):
    """Every ``self.parameters.<name>`` (and ``p.<name>`` after ``p = self.parameters``) of the
    module script is a parameter of its class: the slots read the parameter node, by name."""
    import ast

    tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    read = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner = node.value
            if (isinstance(owner, ast.Attribute) and owner.attr == "parameters" and isinstance(owner.value, ast.Name)
                    and owner.value.id == "self") or (isinstance(owner, ast.Name) and owner.id == "p"):
                read.add(node.attr)
    declared = set(parameter_class(module).allParameters)
    assert read and read <= declared, f"undeclared parameters read: {read - declared}"
