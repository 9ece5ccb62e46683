"""The layers of DESIGN.md, read from the source with ``ast`` (nothing is imported).

* the core (``cochleaai/`` outside ``cochleaai/slicer/``) never reaches Slicer, Qt, CTK, MRML
  or the Slicer layer, by any import: absolute, relative or inside a function;
* the project's own modules are imported at the top of files; a lazy import is left only
  for a package that may be missing when it runs (torch and the other packages installed on
  first use, Slicer's own), and it says why in a comment on its line;
* the import graph of the project's modules has no cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cochleaai"
SLICER_LAYER = PACKAGE / "slicer"
MODULES = ("MetalArtifactReduction", "CochleaShapeSegmentation", "LangevinVAEExplorer", "OneShotLandmarks")
#: Packages that exist only inside Slicer (or slicer-core): the core must never import them.
SLICER_PACKAGES = {"slicer", "qt", "ctk", "PythonQt", "mrml", "slicer_core", "MRMLCore", "SampleData",
                   "PyTorchUtils", "vtkSlicerSegmentationsModuleMRML", "vtkSegmentationCore", "vtkITK",
                   "vtkTeem", "vtkAddon"}
#: What may be imported inside a function: packages that may be missing when the file is
#: loaded (installed on first use in Slicer, Resources/Dependencies/requirements.txt, or an
#: optional extra), and Slicer's own. tqdm and threadpoolctl are core dependencies that Slicer's
#: Python lacks and never installs: only the command line and batch runs use them. fcntl and
#: msvcrt are the standard library's for one platform each (the batch lock picks one).
LAZY_ALLOWED = {"torch", "itk", "numba", "skimage", "nrrd", "slicerio", "matplotlib", "dask", "distributed",
                "tqdm", "threadpoolctl", "fcntl", "msvcrt"} | SLICER_PACKAGES


def python_files(*folders: Path) -> List[Path]:
    return sorted(p for f in folders for p in f.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path: Path) -> Iterator[Tuple[str, int, bool]]:
    """``(absolute module name, line, inside a function)`` of every import in the file;
    relative imports are resolved and ``from package import module`` names the module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(node) for node in tree.body}
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    for node in ast.walk(tree):
        lazy = id(node) not in top
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, lazy
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[:len(package) - (node.level - 1)]
                base = ".".join(parent + ([base] if base else []))
            yield base, node.lineno, lazy
            for alias in node.names:
                yield f"{base}.{alias.name}", node.lineno, lazy


def project_modules() -> Dict[str, Path]:
    files = python_files(PACKAGE) + [p for m in MODULES for p in python_files(ROOT / m)]
    return {module_name(p): p for p in files}


def is_core(path: Path) -> bool:
    return PACKAGE in path.parents and SLICER_LAYER not in path.parents and path != SLICER_LAYER


def test_core_never_reaches_the_slicer_layer():
    offences = []
    for path in python_files(PACKAGE):
        if not is_core(path):
            continue
        for name, line, _ in imports(path):
            if name.split(".")[0] in SLICER_PACKAGES or name == "cochleaai.slicer" or name.startswith(
                    "cochleaai.slicer."):
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not offences, "\n".join(offences)


def test_a_relative_or_lazy_import_of_the_slicer_layer_is_seen(tmp_path):
    """The reader above catches the forms an allow-list of absolute imports missed."""
    probe = PACKAGE / "segmentation" / "probe.py"
    text = "from ..slicer import mrml\n\ndef f():\n    from cochleaai.slicer.logic import x  # why\n"
    names = []
    try:
        probe.write_text(text)
        names = [(n, lazy) for n, _, lazy in imports(probe)]
    finally:
        probe.unlink()
    assert ("cochleaai.slicer.mrml", False) in names and ("cochleaai.slicer.logic", True) in names


def _lazy_offences(path: Path) -> List[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    bad = []
    for name, line, lazy in imports(path):
        if not lazy:
            continue
        top = name.split(".")[0]
        if top not in LAZY_ALLOWED and not (path.parent.name in MODULES or SLICER_LAYER / "gui" in path.parents):
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} inside a function")
        elif "#" not in lines[line - 1]:
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {name} lazily without saying why")
    return bad


def test_imports_stand_at_the_top_and_lazy_ones_say_why():
    """In the core and the Slicer layer's headless part, only packages that may be missing
    are imported inside functions; the module shells and the GUI helpers may also defer
    the Logic (it needs torch, installed on first use). Every lazy import has its reason."""
    offences = sorted({o for path in project_modules().values() for o in _lazy_offences(path)})
    assert not offences, "\n".join(offences)


def _graph() -> Dict[str, Set[str]]:
    modules = project_modules()
    graph: Dict[str, Set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        found = [(target, line) for target, line, _ in imports(path)]
        for target, line in found:
            # "from package import module" depends on the module, not on the package's own code
            if any(t.startswith(target + ".") and t in modules and ln == line for t, ln in found):
                continue
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_import_graph_has_no_cycle():
    """Lazy imports count too: a circle through them is still a circle for the reader."""
    assert cycles(_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", MODULES)
def test_module_libs_use_only_the_slicer_layer_and_the_core(module):
    """A module's Lib may import its own Lib, the core and the Slicer layer, not another module."""
    others = {f"{m}Lib" for m in MODULES if m != module} | {m for m in MODULES if m != module}
    bad = [f"{p.relative_to(ROOT)}:{line} imports {name}" for p in python_files(ROOT / module)
           for name, line, _ in imports(p) if name.split(".")[0] in others]
    assert not bad, "\n".join(bad)


def test_no_file_of_the_library_is_over_600_lines():
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in python_files(PACKAGE)
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600]
    assert not long, "\n".join(long)


def test_no_private_name_is_imported_from_another_file():
    bad = []
    modules = project_modules()
    for path in modules.values():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
                    {"cochleaai"} | {f"{m}Lib" for m in MODULES}):
                bad += [f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}.{a.name}"
                        for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, "\n".join(bad)


def test_the_pip_package_leaves_out_the_gui_helpers():
    """``pip install cochleaai`` gives the core and the headless Slicer layer (MRML, demo);
    the GUI helpers need the Slicer application and ship with the extension only."""
    tomllib = pytest.importorskip("tomllib")
    setuptools = pytest.importorskip("setuptools")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = set(setuptools.find_packages(str(ROOT), include=config["include"], exclude=config.get("exclude", ())))
    every = set(setuptools.find_packages(str(ROOT), include=["cochleaai*"]))
    assert every - packages == {"cochleaai.slicer.gui"}
    assert {"cochleaai", "cochleaai.slicer", "cochleaai.slicer.mrml", "cochleaai.slicer.demo"} <= packages
