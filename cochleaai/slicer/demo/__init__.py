"""The demo scene on the built-in phantom (``python -m cochleaai demo``, ``make demo``):
:mod:`.scene` builds it, each method's step module adds its result, :mod:`.cli` is the command."""
