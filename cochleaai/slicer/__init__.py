"""The Slicer layer: the only part of CochleaAI that imports ``slicer``, ``qt``, ``ctk`` or MRML.

* :mod:`.mrml`: MRML nodes <-> the core's types (volumes, segmentations, markups, tables, models);
* :mod:`.logic`: the base of the module Logics (MRML in, MRML out; headless on slicer-core);
* :mod:`.results`: result-node builders per method;
* :mod:`.demo`: the demo scene (``python -m cochleaai demo``);
* :mod:`.gui`: job runner, panels, dependencies, parameters (needs the Slicer application).
"""
