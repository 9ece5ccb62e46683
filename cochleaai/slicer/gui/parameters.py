"""A module's parameter node class, made from its .ui file (Slicer's ``parameterNodeWrapper``).

Every widget of the .ui file that has the dynamic property ``SlicerParameterName`` becomes a
parameter of that name, typed after the widget: a node selector gives a node of its node
type, a spin box an int or float within the spin box's range (its value in the .ui file is
the default), a line edit a string. ``parameterNodeWrapper`` then keeps the widgets and the
module's parameter node in step, so the selections and settings are saved with the scene.
The .ui file is the one place where a parameter is declared.

:func:`ui_parameters` reads the file (plain Python, tested outside Slicer);
:func:`parameter_node_class` needs Slicer (``slicer.parameterNodeWrapper``, Slicer 5.2+).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

PROPERTY = "SlicerParameterName"
NODE_SELECTORS = {"qMRMLNodeComboBox"}
INT_WIDGETS = {"QSpinBox"}
FLOAT_WIDGETS = {"QDoubleSpinBox", "ctkSliderWidget", "ctkDoubleSpinBox"}
TEXT_WIDGETS = {"QLineEdit"}


@dataclass(frozen=True)
class UiParameter:
    name: str
    widget: str                    # objectName
    kind: str                      # "node", "int", "float" or "str"
    default: Any = None
    node_types: Tuple[str, ...] = ()
    range: Optional[Tuple[float, float]] = None


def _properties(element) -> Dict[str, Any]:
    values = {}
    for prop in element.findall("property"):
        value = next(iter(prop), None)
        if value is None:
            continue
        if value.tag == "number":
            values[prop.get("name")] = int(value.text)
        elif value.tag == "double":
            values[prop.get("name")] = float(value.text)
        elif value.tag in ("string", "cstring"):
            values[prop.get("name")] = value.text or ""
        elif value.tag == "stringlist":
            values[prop.get("name")] = tuple(s.text for s in value.iter("string"))
    return values


def ui_parameters(ui_file) -> Dict[str, UiParameter]:
    """The parameters the .ui file declares, by name (a widget kind that cannot hold one is refused)."""
    parameters = {}
    for element in ET.parse(str(ui_file)).getroot().iter("widget"):
        props = _properties(element)
        name = props.get(PROPERTY)
        if not name:
            continue
        cls, widget = element.get("class"), element.get("name")
        if name in parameters:
            raise ValueError(f"{ui_file}: two widgets hold the parameter {name!r}")
        if cls in NODE_SELECTORS:
            parameter = UiParameter(name, widget, "node", None, props.get("nodeTypes", ()))
        elif cls in INT_WIDGETS:
            parameter = UiParameter(name, widget, "int", int(props.get("value", 0)),
                                    range=(int(props.get("minimum", 0)), int(props.get("maximum", 99))))
        elif cls in FLOAT_WIDGETS:
            parameter = UiParameter(name, widget, "float", float(props.get("value", 0.0)),
                                    range=(float(props.get("minimum", 0.0)), float(props.get("maximum", 99.99))))
        elif cls in TEXT_WIDGETS:
            parameter = UiParameter(name, widget, "str", props.get("text", ""))
        else:
            raise ValueError(f"{ui_file}: a {cls} ({widget}) cannot hold the parameter {name!r}")
        if parameter.kind == "node" and len(parameter.node_types) != 1:
            raise ValueError(f"{ui_file}: the selector {widget} must have exactly one node type")
        parameters[name] = parameter
    return parameters


def parameter_node_class(ui_file, class_name: str):
    """A ``parameterNodeWrapper`` class with the parameters of ``ui_file`` (inside Slicer)."""
    from typing import Annotated

    import slicer
    from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper

    annotations, defaults = {}, {}
    for p in ui_parameters(ui_file).values():
        if p.kind == "node":
            annotations[p.name] = getattr(slicer, p.node_types[0])
            continue
        kind = {"int": int, "float": float, "str": str}[p.kind]
        annotations[p.name] = Annotated[kind, WithinRange(*p.range)] if p.range else kind
        defaults[p.name] = p.default
    namespace = {"__annotations__": annotations, "__module__": __name__, **defaults,
                 "__doc__": f"Parameters of {Path(ui_file).name}: node selections and settings."}
    return parameterNodeWrapper(type(class_name, (), namespace))
