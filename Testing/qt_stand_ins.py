"""Stand-ins for the few Qt widgets the module widgets and their helpers touch (Slicer's
Qt is not available to pytest): enabled state, text, value, signal connections, a combo
box with item data and node selectors. They check the Python side, not Qt: a method the
code calls that a stand-in lacks fails the test, so add it here when the code needs it."""
from __future__ import annotations


class Widget:
    """A button, label, progress bar, spin box or slider: attributes, signals, range and value."""

    def __init__(self, enabled=True, **values):
        self.enabled, self.text, self.value, self.toolTip = enabled, "", 0, ""
        self.checked, self.visible = False, True
        self.__dict__.update(values)
        self._slots = {}

    def connect(self, signal, slot):
        self._slots.setdefault(signal, []).append(slot)

    def disconnect(self, signal, slot):
        if slot in self._slots.get(signal, []):
            self._slots[signal].remove(slot)

    def property(self, name):
        """A dynamic property of the .ui file (e.g. SlicerParameterName); None when not set."""
        return self.__dict__.get(name)

    def emit(self, signal, *args):
        for slot in self._slots.get(signal, []):
            slot(*args)

    def setRange(self, low, high):
        self.range = (low, high)

    def setValue(self, value):
        self.value = value

    def setText(self, text):
        self.text = text

    def setMRMLScene(self, scene):
        self.mrmlScene = scene


class ComboBox(Widget):
    def __init__(self, **values):
        super().__init__(**values)
        self.items, self.currentIndex = [], -1

    def clear(self):
        self.items, self.currentIndex = [], -1

    def addItem(self, label, data=None):
        self.items.append((label, data))
        self.currentIndex = max(self.currentIndex, 0)

    def itemData(self, index):
        return self.items[index][1] if 0 <= index < len(self.items) else None

    def findData(self, data):
        return next((i for i, (_, d) in enumerate(self.items) if d == data), -1)

    @property
    def count(self):
        return len(self.items)


class NodeSelector(Widget):
    current = None

    def currentNode(self):
        return self.current

    def setCurrentNode(self, node):
        if node is not self.current:        # as Qt: a signal only when the selection changes
            self.current = node
            self.emit("currentNodeChanged(vtkMRMLNode*)", node)


class CheckableNodeSelector(NodeSelector):
    def __init__(self, **values):
        super().__init__(**values)
        self.checked_nodes = []

    def checkedNodes(self):
        return list(self.checked_nodes)


class PathLineEdit(Widget):
    def __init__(self, **values):
        super().__init__(**values)
        self.currentPath = ""


class PlaceWidget(Widget):
    """qSlicerMarkupsPlaceWidget: the point list it places into and its place mode."""

    def __init__(self, **values):
        super().__init__(**values)
        self.node, self.placeModeEnabled, self.placeMultipleMarkups = None, False, None
        self.buttonsVisible, self.deleteAllControlPointsOptionVisible = True, True

    def setCurrentNode(self, node):
        self.node = node

    def currentNode(self):
        return self.node

    def setPlaceModeEnabled(self, enabled):
        self.placeModeEnabled = enabled


class PlainTextEdit(Widget):
    """QPlainTextEdit: lines appended, the text read back."""

    def __init__(self, **values):
        super().__init__(**values)
        self.lines = []

    def appendPlainText(self, text):
        self.lines.append(str(text))

    def toPlainText(self):
        return "\n".join(self.lines)

    def clear(self):
        self.lines = []


#: Qt Designer class -> stand-in, for the widgets the .ui files use (others are a Widget).
BY_CLASS = {"QComboBox": ComboBox, "ctkComboBox": ComboBox, "qMRMLNodeComboBox": NodeSelector,
            "qMRMLCheckableNodeComboBox": CheckableNodeSelector, "ctkPathLineEdit": PathLineEdit,
            "qSlicerMarkupsPlaceWidget": PlaceWidget, "QPlainTextEdit": PlainTextEdit}
