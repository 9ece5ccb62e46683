"""Re-exports of a package, loaded when first used.

A package such as :mod:`cochleaai.phantom` offers its main names at the top
(``from cochleaai.phantom import make_phantom``) but keeps small torch-free submodules
(its ``options``: the choices the Slicer panels list) importable without torch: importing
one of them runs the package's ``__init__``, which therefore must not load the heavy
submodules itself. :func:`lazy_exports` gives such a package the module ``__getattr__``
(PEP 562) that imports the submodule of a name on first use.
"""
from __future__ import annotations

import importlib
import sys
from typing import Callable, Dict, List, Tuple


def lazy_exports(package: str, names: Dict[str, str]) -> Tuple[Callable[[str], object], Callable[[], List[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose ``names`` map each re-exported name
    to the submodule (relative to the package) that defines it."""

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
        setattr(sys.modules[package], name, value)        # found directly next time
        return value

    def __dir__() -> List[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
