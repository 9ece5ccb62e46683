"""Stand-ins for the few Qt widgets the module widgets and their helpers touch (Slicer's
Qt is not available to pytest): enabled state, text, value, signal connections, a combo
box with item data and a node selector. They check the Python side, not Qt."""
from __future__ import annotations


class Widget:
    """A button, label, progress bar or spin box: attributes, signals, range and value."""

    def __init__(self, enabled=True, **values):
        self.enabled, self.text, self.value = enabled, "", 0
        self.__dict__.update(values)
        self._slots = {}

    def connect(self, signal, slot):
        self._slots.setdefault(signal, []).append(slot)

    def emit(self, signal, *args):
        for slot in self._slots.get(signal, []):
            slot(*args)

    def setRange(self, low, high):
        self.range = (low, high)

    def setValue(self, value):
        self.value = value


class ComboBox(Widget):
    def __init__(self):
        super().__init__()
        self.items, self.currentIndex = [], -1

    def clear(self):
        self.items, self.currentIndex = [], -1

    def addItem(self, label, data):
        self.items.append((label, data))
        self.currentIndex = max(self.currentIndex, 0)

    def itemData(self, index):
        return self.items[index][1] if 0 <= index < len(self.items) else None

    def findData(self, data):
        return next((i for i, (_, d) in enumerate(self.items) if d == data), -1)


class NodeSelector(Widget):
    current = None

    def currentNode(self):
        return self.current

    def setCurrentNode(self, node):
        self.current = node
        self.emit("currentNodeChanged(vtkMRMLNode*)", node)
