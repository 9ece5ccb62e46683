"""Slicer 5.8 runs the extension on Python 3.9: every Python file of the project stays valid
Python 3.9 and uses no newer standard library.

Three checks, each also shown a file that breaks it, so that finding nothing means something:
- vermin (syntax and standard library by version; skipped when it is not installed);
- the Python 3.9 compiler, where one is installed (``python3.9`` or pyenv's; skipped otherwise);
- what vermin misses: ``X | Y`` unions, which Python 3.9 refuses where it evaluates them
  (annotations without ``from __future__ import annotations``, and those that Slicer's
  parameterNodeWrapper or ``typing.get_type_hints`` read; ``isinstance``; aliases), and
  ``entry_points(group=...)``. Rather than tell which annotations are read, the project spells
  every union ``Optional``/``Union``.
"""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("cochleaai", "Testing", "Resources", "MetalArtifactReduction", "CochleaShapeSegmentation",
           "LangevinVAEExplorer", "OneShotLandmarks")
TARGET = "3.9"
BUILTIN_TYPES = {"int", "float", "complex", "str", "bytes", "bool", "list", "dict", "tuple", "set",
                 "frozenset", "type", "object"}


def project_files() -> List[Path]:
    files = [p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts]
    return sorted(files + list(ROOT.glob("*.py")))


# --------------------------------------------------------------------------- vermin
def vermin_violations(paths: List[Path]) -> str:
    """vermin's report of what needs a newer Python than TARGET ('' when nothing does).

    ``--eval-annotations``: parameter node annotations are evaluated; no config file, so that a
    stray one changes nothing. A false finding is silenced on its line with ``# novm``."""
    pytest.importorskip("vermin", reason="vermin is not installed (requirements.txt pins it: make setup)")
    out = subprocess.run([sys.executable, "-c", "import sys; from vermin.main import main; sys.exit(main())",
                          f"-t={TARGET}-", "--violations", "--quiet", "--no-tips", "--eval-annotations",
                          "--no-config-file", *map(str, paths)], capture_output=True, text=True)
    assert out.returncode in (0, 1), out.stderr
    return (out.stdout + out.stderr).strip() if out.returncode else ""


def test_vermin_finds_nothing_newer_than_python_39():
    found = vermin_violations(project_files())
    assert not found, f"needs more than Python {TARGET} (Slicer 5.8):\n{found}"


@pytest.mark.parametrize("source, finding", [
    ("zip([1], [2], strict=True)\n", "zip(strict)"),
    ("import itertools\nitertools.pairwise([1, 2])\n", "itertools.pairwise"),
    ("from dataclasses import dataclass\n@dataclass(slots=True)\nclass A:\n    x: int\n",
     "dataclass(slots)"),
    pytest.param("match 1:\n    case 1:\n        pass\n", "pattern matching", marks=pytest.mark.skipif(
        sys.version_info < (3, 10), reason="vermin parses with this Python, which cannot read `match` "
        "(the 3.9 compiler check sees it)")),
])
def test_vermin_sees_what_python_39_lacks(tmp_path, source, finding):
    path = tmp_path / "new.py"
    path.write_text(source)
    assert finding in vermin_violations([path])


# --------------------------------------------------------------------------- Python 3.9
def python39() -> Optional[str]:
    """A Python 3.9 interpreter: this one, ``python3.9`` on the PATH or pyenv's; None without one."""
    if sys.version_info[:2] == (3, 9):
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = [shutil.which("python3.9")] + sorted(map(str, pyenv.glob("versions/3.9*/bin/python")))
    for candidate in filter(None, candidates):
        # a pyenv shim may exist without 3.9 behind it: ask the interpreter itself
        check = subprocess.run([candidate, "-c", "import sys; sys.exit(sys.version_info[:2] != (3, 9))"],
                               capture_output=True)
        if check.returncode == 0:
            return candidate
    return None


#: Compiles the files named on stdin into sys.argv[1] (never beside them); prints the errors.
COMPILE = """
import py_compile, sys
errors = []
for number, path in enumerate(sys.stdin.read().splitlines()):
    try:
        py_compile.compile(path, cfile=f"{sys.argv[1]}/{number}.pyc", doraise=True)
    except py_compile.PyCompileError as error:
        errors.append(error.msg)
print("\\n".join(errors))
sys.exit(1 if errors else 0)
"""


def python39_compile_errors(paths: List[Path], out: Path) -> str:
    interpreter = python39()
    if interpreter is None:
        pytest.skip("no Python 3.9 here (python3.9 on the PATH or pyenv's)")
    # -I: the interpreter's own standard library only, whatever the environment says
    result = subprocess.run([interpreter, "-I", "-c", COMPILE, str(out)], input="\n".join(map(str, paths)),
                            capture_output=True, text=True)
    assert result.returncode in (0, 1), result.stderr
    return result.stdout.strip() if result.returncode else ""


def test_every_file_compiles_with_python_39(tmp_path):
    errors = python39_compile_errors(project_files(), tmp_path)
    assert not errors, errors


def test_python_39_refuses_newer_syntax(tmp_path):
    path = tmp_path / "new.py"
    path.write_text("match 1:\n    case 1:\n        pass\n")
    assert "SyntaxError" in python39_compile_errors([path], tmp_path)


# --------------------------------------------------------------------------- what vermin misses
def _is_union(node: ast.AST) -> bool:
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)


def _names_a_type(node: ast.AST) -> bool:
    """None, a builtin type or its generic (``list[int]``): ``|`` beside it is a union, never bits."""
    if isinstance(node, ast.Subscript):
        node = node.value
    return (isinstance(node, ast.Constant) and node.value is None) or \
        (isinstance(node, ast.Name) and node.id in BUILTIN_TYPES)


def _annotations(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            yield from (arg.annotation for arg in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg]
                        if arg is not None and arg.annotation is not None)
            if node.returns is not None:
                yield node.returns
        elif isinstance(node, ast.AnnAssign):
            yield node.annotation


def python39_unions(path: Path) -> List[str]:
    """``path:line: what`` for each union or call that Python 3.9 refuses when it runs."""
    tree = ast.parse(path.read_text(), str(path))
    found, in_annotations = set(), set()
    for annotation in _annotations(tree):
        in_annotations.update(map(id, ast.walk(annotation)))
        expression = annotation
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:     # a string annotation is evaluated when read, too
                expression = ast.parse(annotation.value, mode="eval")
            except SyntaxError:
                continue
        if any(map(_is_union, ast.walk(expression))):
            found.add((annotation.lineno, "`X | Y` in an annotation (write Optional/Union)"))
    for node in ast.walk(tree):
        if id(node) in in_annotations:
            continue
        if _is_union(node) and (_names_a_type(node.left) or _names_a_type(node.right)):
            found.add((node.lineno, "`X | Y` of types (write Optional/Union, or a tuple)"))
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            if name in ("isinstance", "issubclass") and len(node.args) == 2 and \
                    any(map(_is_union, ast.walk(node.args[1]))):
                found.add((node.lineno, f"`X | Y` in {name} (write a tuple)"))
            elif name == "entry_points" and node.keywords:
                found.add((node.lineno, "entry_points(...) takes no arguments before Python 3.10"))
    return [f"{path}:{line}: {what}" for line, what in sorted(found)]


def test_no_union_or_call_that_python_39_refuses():
    found = [line for path in project_files() for line in python39_unions(path)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("source", [
    "def f(x: int | None = None): ...\n",
    "from __future__ import annotations\nclass Parameters:\n    volume: 'Node | None'\n",
    "def f() -> 'list[int] | None': ...\n",
    "Alias = float | None\n",
    "isinstance(1, (int, float | str))\n",
    "from importlib.metadata import entry_points\nentry_points(group='cochleaai.commands')\n",
])
def test_union_check_sees_what_python_39_refuses(tmp_path, source):
    path = tmp_path / "new.py"
    path.write_text(source)
    assert python39_unions(path)


def test_union_check_leaves_bit_flags_alone(tmp_path):
    path = tmp_path / "flags.py"
    path.write_text("import re\nflags = re.M | re.S\nmask = 4 | 1\nvalue = mask | flags\n"
                    "def f(x: 'Optional[int]' = None, y: int = 1 | 2): ...\n")
    assert python39_unions(path) == []
