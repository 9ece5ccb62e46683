"""A stand-in for Slicer's ``slicer.parameterNodeWrapper`` (Slicer 5.4 and later).

``slicer-core`` (real MRML without the application) does not ship the package, so the
tests use this one. It behaves like Slicer's where the modules depend on it:

* the same declaration: ``@parameterNodeWrapper`` (or ``@parameterNodeWrapper()``) on a
  class of annotated attributes; the default is the class attribute, else a ``Default``
  in ``Annotated``, else the type's own (0, 0.0, "", False, the first enum member, None);
  ``Annotated`` validators ``WithinRange``, ``Minimum``, ``Maximum``, ``Choice``;
* the same storage in the ``vtkMRMLScriptedModuleNode``: ``SetParameter(name, text)`` with
  ``str(value)`` for numbers and strings, ``"True"``/``"False"``, the enum member's *name*,
  and for a node an empty parameter plus the node reference whose role is the parameter's
  name; every default is written when the wrapper is made on a node that lacks it;
* the same refusals, with Slicer's messages: ``ValueError("Value must not be None")`` for a
  number, string, bool or path, ``TypeError("Value must be of type ...")`` for a value of
  the wrong type (a node of another class too), the validators' ``ValueError``; a refused
  value leaves the stored one as it was;
* ``connectGui(ui)`` binds each widget whose ``SlicerParameterName`` property names a
  parameter (on a widget: its children; else the attributes of ``ui``, as
  ``slicer.util.childWidgetVariables`` gives them); the parameter node's values go to the
  widgets first, a widget's change is written to the node, a node change updates the
  widgets. An enum combo box is filled with the members' ``label()`` (else their names).

Types other than int, float, str, bool, pathlib paths, enums and MRML nodes are refused
when the class is declared, as Slicer refuses a type it has no serializer for.

``install()`` makes ``import slicer.parameterNodeWrapper`` find this module when the
installed ``slicer`` package lacks it.
"""
from __future__ import annotations

import enum
import importlib.abc
import importlib.util
import pathlib
import sys
import typing

SLICER_PARAMETER_NAME = "SlicerParameterName"
MODIFIED_EVENT = 33        # vtkCommand::ModifiedEvent


# ------------------------------------------------------------------ annotations
class Validator:
    def validate(self, value) -> None:
        raise NotImplementedError


class NotNone(Validator):
    def validate(self, value) -> None:
        if value is None:
            raise ValueError("Value must not be None")


class IsInstance(Validator):
    def __init__(self, classtype):
        self.classtype = classtype

    def validate(self, value) -> None:
        if value is not None and not isinstance(value, self.classtype):
            raise TypeError(f"Value must be of type '{self.classtype}', is type '{type(value)}' value '{value}'")


class WithinRange(Validator):
    def __init__(self, minimum, maximum):
        self.minimum, self.maximum = minimum, maximum

    def validate(self, value) -> None:
        if not self.minimum <= value <= self.maximum:
            raise ValueError(f"Value must be within range [{self.minimum}, {self.maximum}], is {value}")


class Minimum(Validator):
    def __init__(self, minimum):
        self.minimum = minimum

    def validate(self, value) -> None:
        if value < self.minimum:
            raise ValueError(f"Value must be greater than {self.minimum}, is {value}")


class Maximum(Validator):
    def __init__(self, maximum):
        self.maximum = maximum

    def validate(self, value) -> None:
        if value > self.maximum:
            raise ValueError(f"Value must be greater than {self.maximum}, is {value}")


class Choice(Validator):
    def __init__(self, choices):
        self.choices = choices

    def validate(self, value) -> None:
        if value not in self.choices:
            raise ValueError(f"Value is {value}, but must be in one of the following: {self.choices}")


class Default:
    def __init__(self, value=None, *, generator=None):
        self._value, self.generator = value, generator

    @property
    def value(self):
        return self.generator() if self.generator is not None else self._value


# ------------------------------------------------------------------ storage
def is_node_type(kind) -> bool:
    return isinstance(kind, type) and kind.__name__.startswith("vtkMRML")


class Serializer:
    """How one type is written to and read from the node (Slicer's formats)."""

    def __init__(self, kind):
        self.kind = kind
        if is_node_type(kind):
            self.validators = [IsInstance(kind)]
        elif isinstance(kind, type) and issubclass(kind, enum.Enum):
            if not list(kind):
                raise Exception(f"Unable to create serializer for type: {kind} (an empty enum)")
            self.validators = [IsInstance(kind)]
        elif kind is float:
            self.validators = [NotNone(), IsInstance((int, float))]
        elif kind in (int, str, bool) or (isinstance(kind, type) and issubclass(kind, pathlib.PurePath)):
            self.validators = [NotNone(), IsInstance(kind)]
        else:
            raise Exception(f"Unable to create serializer for type: {kind}")

    def default(self):
        if is_node_type(self.kind):
            return None
        if issubclass(self.kind, enum.Enum):
            return next(iter(self.kind))
        return self.kind()

    def isIn(self, node, name) -> bool:
        return node.HasParameter(name)

    def write(self, node, name, value) -> None:
        if is_node_type(self.kind):
            node.SetParameter(name, "")
            node.SetNodeReferenceID(name, value.GetID() if value is not None else None)
        elif issubclass(self.kind, enum.Enum):
            node.SetParameter(name, value.name)
        else:
            node.SetParameter(name, str(value))

    def read(self, node, name):
        if is_node_type(self.kind):
            return node.GetNodeReference(name)
        text = node.GetParameter(name)
        if self.kind is bool:
            return text == "True"
        if issubclass(self.kind, enum.Enum):
            try:
                return self.kind[text]
            except KeyError:
                raise ValueError(f"Found '{text}' in parameter node but it is not a name in {self.kind}") from None
        return self.kind(text)


class ParameterInfo:
    def __init__(self, basename, serializer, validators, default, unalteredType):
        self.basename, self.serializer, self.validators = basename, serializer, validators
        self.default, self.unalteredType = default, unalteredType

    def write(self, node, name, value) -> None:
        for validator in self.serializer.validators + self.validators:   # the type's own first
            validator.validate(value)
        modifying = node.StartModify()
        try:
            self.serializer.write(node, name, value)
        finally:
            node.EndModify(modifying)

    def read(self, node, name):
        if not self.serializer.isIn(node, name):     # removed since: the default comes back
            self.write(node, name, self.default.value)
        return self.serializer.read(node, name)


def _split(hint):
    if typing.get_origin(hint) is typing.Annotated:
        kind, *annotations = typing.get_args(hint)
        return kind, list(annotations)
    return hint, []


# ------------------------------------------------------------------ the GUI
class Connector:
    """One widget kept in step with one parameter (the widget's class as the .ui file names it)."""

    SPIN_BOXES = {"QSpinBox", "QSlider"}
    DOUBLE_WIDGETS = {"QDoubleSpinBox", "ctkSliderWidget", "qMRMLSliderWidget", "ctkDoubleSpinBox",
                      "ctkDoubleSlider", "qMRMLSpinBox"}
    COMBO_BOXES = {"QComboBox", "ctkComboBox"}

    def __init__(self, widget, info: ParameterInfo):
        self.widget, self.kind = widget, info.serializer.kind
        cls = getattr(widget, "className", type(widget).__name__)
        bounds = [v for v in info.validators if isinstance(v, WithinRange)]
        choices = [v for v in info.validators if isinstance(v, Choice)]
        if cls == "qMRMLNodeComboBox" and is_node_type(self.kind):
            self.signal, self.read, self.write = ("currentNodeChanged(vtkMRMLNode*)", widget.currentNode,
                                                  widget.setCurrentNode)
            widget.nodeTypes = (self.kind.__name__,)
        elif cls in self.SPIN_BOXES and self.kind is int or cls in self.DOUBLE_WIDGETS and self.kind is float:
            low, high = (bounds[0].minimum, bounds[0].maximum) if bounds else (-2**31, 2**31 - 1)
            widget.minimum, widget.maximum = low, high
            self.signal = "valueChanged(int)" if self.kind is int else "valueChanged(double)"
            self.read = lambda: self.kind(widget.value)
            self.write = lambda value: setattr(widget, "value", value)
        elif cls in self.COMBO_BOXES and isinstance(self.kind, type) and issubclass(self.kind, enum.Enum):
            label = getattr(self.kind, "label", lambda member: member.name)
            self.members = list(self.kind)
            widget.clear()
            for member in self.members:
                widget.addItem(label(member))
            self.signal = "currentIndexChanged(int)"
            self.read = lambda: self.members[widget.currentIndex]
            self.write = lambda value: setattr(widget, "currentIndex", self.members.index(value))
        elif cls in self.COMBO_BOXES and choices:
            self.members = list(choices[0].choices)
            widget.clear()
            for choice in self.members:
                widget.addItem(str(choice))
            self.signal = "currentIndexChanged(int)"
            self.read = lambda: self.members[widget.currentIndex]
            self.write = lambda value: setattr(widget, "currentIndex", self.members.index(value))
        elif cls == "QLineEdit" and self.kind is str:
            self.signal, self.read = "textChanged(QString)", lambda: widget.text
            self.write = lambda value: setattr(widget, "text", value)
        elif cls in ("QCheckBox", "ctkCheckBox") and self.kind is bool:
            self.signal, self.read = "toggled(bool)", lambda: bool(widget.checked)
            self.write = lambda value: setattr(widget, "checked", value)
        else:
            raise RuntimeError(f"Unable to create GUI connector from datatype {info.unalteredType} "
                               f"to widget type {cls}")


def parameter_name(widget):
    getter = getattr(widget, "property", None)
    return getter(SLICER_PARAMETER_NAME) if callable(getter) else getattr(widget, SLICER_PARAMETER_NAME, None)


# ------------------------------------------------------------------ the decorator
RESERVED = ("allParameters", "default", "getValue", "setValue", "connectGui", "connectParametersToGui",
            "disconnectGui", "dataType", "isCached", "StartModify", "EndModify", "AddObserver",
            "RemoveObserver", "Modified")


def _process(cls):
    infos = {}
    for name, hint in typing.get_type_hints(cls, include_extras=True).items():
        kind, annotations = _split(hint)
        try:
            serializer = Serializer(kind)
        except Exception as error:
            raise Exception(f"Unable to create serializer for {cls} member {name}") from error
        defaults = [a for a in annotations if isinstance(a, Default)]
        if len(defaults) > 1:
            raise Exception("Multiple defaults found")
        validators = [a() if isinstance(a, type) else a for a in annotations
                      if isinstance(a, Validator) or (isinstance(a, type) and issubclass(a, Validator))]
        if hasattr(cls, name):
            default = Default(getattr(cls, name))
        else:
            default = defaults[0] if defaults else Default(serializer.default())
        infos[name] = ParameterInfo(name, serializer, validators, default, hint)
        setattr(cls, name, property(lambda self, n=name: self.getValue(n),
                                    lambda self, value, n=name: self.setValue(n, value)))

    def __init__(self, parameterNode, prefix=None):
        self.parameterNode, self._prefix = parameterNode, prefix or ""
        self._guis, self._nextTag = {}, 0
        for n, info in infos.items():
            if not info.serializer.isIn(parameterNode, self._prefix + n):
                info.write(parameterNode, self._prefix + n, info.default.value)

    def check(self, name):
        if name not in infos:
            raise ValueError(f"Cannot find a param with the given name: {name}\n  Found parameters {list(infos)}")
        return infos[name]

    def getValue(self, name):
        return check(self, name).read(self.parameterNode, self._prefix + name)

    def setValue(self, name, value):
        check(self, name).write(self.parameterNode, self._prefix + name, value)

    def connectParametersToGui(self, mapping):
        connectors = {name: Connector(widget, check(self, name)) for name, widget in mapping.items()}
        tag, self._nextTag = self._nextTag, self._nextTag + 1
        updating = [False]

        def toGui(*_unused):
            updating[0] = True
            try:
                for n, connector in connectors.items():
                    connector.write(self.getValue(n))
            finally:
                updating[0] = False

        toGui()
        slots = []
        for n, connector in connectors.items():
            def changed(*_unused, n=n, connector=connector):
                if not updating[0]:
                    self.setValue(n, connector.read())
            connector.widget.connect(connector.signal, changed)
            slots.append((connector.widget, connector.signal, changed))
        observer = self.parameterNode.AddObserver(MODIFIED_EVENT, toGui)
        self._guis[tag] = (slots, observer)
        return tag

    def connectGui(self, gui):
        if callable(getattr(gui, "isWidgetType", None)) and gui.isWidgetType():
            widgets = gui.findChildren(object)
        else:
            widgets = list(vars(gui).values())
        return self.connectParametersToGui({parameter_name(w): w for w in widgets if parameter_name(w)})

    def disconnectGui(self, tag):
        slots, observer = self._guis.pop(tag)
        for widget, signal, slot in slots:
            widget.disconnect(signal, slot)
        self.parameterNode.RemoveObserver(observer)

    methods = {"default": lambda self, name: check(self, name).default,
               "getValue": getValue, "setValue": setValue, "connectGui": connectGui,
               "connectParametersToGui": connectParametersToGui, "disconnectGui": disconnectGui,
               "dataType": staticmethod(lambda name: infos[name].unalteredType),
               "isCached": lambda self, name: False,
               "StartModify": lambda self: self.parameterNode.StartModify(),
               "EndModify": lambda self, was: self.parameterNode.EndModify(was),
               "AddObserver": lambda self, event, callback, priority=0.0: self.parameterNode.AddObserver(
                   event, callback, priority),
               "RemoveObserver": lambda self, tag: self.parameterNode.RemoveObserver(tag),
               "Modified": lambda self: self.parameterNode.Modified()}
    for attribute in ("allParameters", "_is_parameter_node_wrapper", *RESERVED):
        if hasattr(cls, attribute):
            raise ValueError(f"Cannot use reserved name '{attribute}' in a parameterNodeWrapper")
    cls.allParameters, cls._is_parameter_node_wrapper = infos, True
    cls.__init__ = __init__
    for attribute, method in methods.items():
        setattr(cls, attribute, method)
    return cls


def parameterNodeWrapper(classtype=None):
    """``@parameterNodeWrapper`` or ``@parameterNodeWrapper()``."""
    return _process if classtype is None else _process(classtype)


def isParameterNodeWrapper(obj) -> bool:
    return getattr(obj, "_is_parameter_node_wrapper", False)


# ------------------------------------------------------------------ installing
class _Finder(importlib.abc.MetaPathFinder):
    """Finds this module as ``slicer.parameterNodeWrapper`` when nothing else does."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "slicer.parameterNodeWrapper":
            return None
        return importlib.util.spec_from_file_location(fullname, __file__)


def install() -> None:
    """Let ``import slicer.parameterNodeWrapper`` fall back on this module (last on the path:
    a real one, inside Slicer, is found first)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
