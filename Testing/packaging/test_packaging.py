"""Packaging checks for the Slicer extension; no Slicer (and no Qt) needed.

What is checked: the CMake files (every listed file exists, every module file is
listed, the extension metadata and the install of the ``cochleaai`` package), the
catalog entry (``.json``; ``test_catalog_entry.py`` applies the index's rules), the Qt Designer ``.ui`` files and the
widget names the module scripts use, the module scripts' Module/Widget/Test classes
(read with ``ast``, never imported), the icons, and that the Logic side of the Slicer layer
and the module Libs use no GUI (``test_layers.py`` checks the other rules of DESIGN.md).
"""
from __future__ import annotations

import ast
import fnmatch
import json
import py_compile
import re
import struct
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from cochleaai.planning.interval_scale import INTERVAL_FILE
from cochleaai.slicer.gui.dependencies import REQUIREMENTS_FILE
from cochleaai.slicer.sample_data import EXTENSION_ICON

ROOT = Path(__file__).resolve().parents[2]
MODULES = ("MetalArtifactReduction", "CochleaShapeSegmentation", "LangevinVAEExplorer",
           "OneShotLandmarks")
HOME = "https://github.com/cochleaai/SlicerCochleaAI"
RAW_PREFIX = "https://raw.githubusercontent.com/cochleaai/SlicerCochleaAI/main/"
CATEGORY = "Otolaryngology"
ICON_SIZE = (128, 128)

SLICER_LAYER = ROOT / "cochleaai" / "slicer"
#: The widget and self-test base classes every module script shares.
SHARED_MODULE_BASE = SLICER_LAYER / "gui" / "module.py"
SLICER_ONLY_PACKAGES = {"slicer", "qt", "ctk", "PythonQt", "mrml", "slicer_core", "MRMLCore",
                        "vtkSlicerSegmentationsModuleMRML", "vtkSegmentationCore", "vtkITK",
                        "vtkTeem", "vtkAddon"}
GUI_PACKAGES = {"qt", "ctk", "PythonQt"}


# --------------------------------------------------------------------------- CMake
@dataclass
class Command:
    name: str                 # lower case
    args: List[str]           # after variable expansion and list splitting
    conditions: Tuple[str, ...]  # the if() conditions it is nested in
    line: int


_ARG_RE = re.compile(r'"((?:[^"\\]|\\.)*)"|([^\s()"]+)|(\()|(\))', re.S)
_CMD_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_VAR_RE = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def _strip_cmake_comments(text: str) -> str:
    out, in_quote, i = [], False, 0
    while i < len(text):
        c = text[i]
        if c == '"' and (i == 0 or text[i - 1] != "\\"):
            in_quote = not in_quote
        if c == "#" and not in_quote:
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _raw_commands(text: str):
    """Yield (name, [(value, quoted)], line) for each command invocation."""
    text = _strip_cmake_comments(text)
    pos = 0
    while True:
        m = _CMD_RE.search(text, pos)
        if not m:
            return
        depth, args, i = 1, [], m.end()
        while depth:
            a = _ARG_RE.match(text, i) or None
            if a is None:  # whitespace
                i += 1
                if i > len(text):
                    raise ValueError(f"unbalanced parentheses after {m.group(1)}")
                continue
            if a.group(3):
                depth += 1
                args.append(("(", False))
            elif a.group(4):
                depth -= 1
                if depth:
                    args.append((")", False))
            elif a.group(1) is not None:
                args.append((a.group(1), True))
            else:
                args.append((a.group(2), False))
            i = a.end()
        yield m.group(1), args, text.count("\n", 0, m.start()) + 1
        pos = i


def _expand(value: str, variables: Dict[str, List[str]]) -> str:
    def repl(m):
        name = m.group(1)
        return ";".join(variables[name]) if name in variables else m.group(0)
    previous = None
    while previous != value:
        previous, value = value, _VAR_RE.sub(repl, value)
    return value


def _cmake_glob(base: Path, args: List[str]) -> List[str]:
    """Emulate file(GLOB[_RECURSE] VAR [RELATIVE dir] [CONFIGURE_DEPENDS] patterns...)."""
    recurse = args[0] == "GLOB_RECURSE"
    rest, relative = args[2:], None
    if "RELATIVE" in rest:
        k = rest.index("RELATIVE")
        relative = Path(rest[k + 1])
        rest = rest[:k] + rest[k + 2:]
    found = []
    for pattern in (p for p in rest if p != "CONFIGURE_DEPENDS"):
        if "${" in pattern:
            continue  # depends on a loop variable: not emulated
        full = Path(pattern) if Path(pattern).is_absolute() else base / pattern
        folder, mask = full.parent, full.name
        if not folder.is_dir():
            continue
        candidates = folder.rglob("*") if recurse else folder.glob("*")
        for f in candidates:
            if f.is_file() and fnmatch.fnmatch(f.name, mask):
                found.append(str(f.relative_to(relative) if relative else f))
    return sorted(found)


def parse_cmake(path: Path) -> List[Command]:
    """Commands of a CMakeLists.txt with set()/file(GLOB) variables expanded."""
    base = path.parent
    variables: Dict[str, List[str]] = {"CMAKE_CURRENT_SOURCE_DIR": [str(base)],
                                       "CMAKE_SOURCE_DIR": [str(base)],
                                       "PROJECT_SOURCE_DIR": [str(base)]}
    commands, conditions = [], []
    for name, raw, line in _raw_commands(path.read_text(encoding="utf-8")):
        args = []
        for value, quoted in raw:
            expanded = _expand(value, variables)
            if quoted:
                args.append(expanded)
            else:
                args.extend(v for v in expanded.split(";") if v)
        lname = name.lower()
        if lname == "if":
            conditions.append(" ".join(args))
        elif lname == "endif" and conditions:
            conditions.pop()
        elif lname == "set" and args:
            values = [a for a in args[1:] if a not in ("PARENT_SCOPE",)]
            variables[args[0]] = values
        elif lname == "file" and args and args[0] in ("GLOB", "GLOB_RECURSE"):
            variables[args[1]] = _cmake_glob(base, args)
        elif lname == "list" and len(args) >= 2 and args[0] == "APPEND":
            variables.setdefault(args[1], []).extend(args[2:])
        commands.append(Command(lname, args, tuple(conditions), line))
    return commands


def keyword_values(args: List[str], keyword: str, keywords: Tuple[str, ...]) -> List[str]:
    """Values after ``keyword`` up to the next keyword of the macro's signature.

    A quoted list (``"${VAR}"``) reaches a macro as one argument and is split there, as here.
    """
    if keyword not in args:
        return []
    out = []
    for a in args[args.index(keyword) + 1:]:
        if a in keywords:
            break
        out.extend(v for v in a.split(";") if v)
    return out


SCRIPTED_MODULE_KEYWORDS = ("NAME", "SCRIPTS", "RESOURCES", "WITH_GENERIC_TESTS",
                            "WITH_SUBDIR", "VERBOSE")
CTK_COMPILE_KEYWORDS = ("TARGET_NAME", "SCRIPTS", "RESOURCES", "SOURCE_DIR", "DESTINATION_DIR",
                        "INSTALL_DIR", "NO_INSTALL_SUBDIR", "GLOBAL_TARGET")


def _find(commands: List[Command], name: str) -> List[Command]:
    return [c for c in commands if c.name == name]


def _set_value(commands: List[Command], variable: str) -> List[str]:
    values = [c.args[1:] for c in _find(commands, "set") if c.args and c.args[0] == variable]
    assert values, f"{variable} is not set"
    return values[-1]


@pytest.fixture(scope="module")
def top_cmake() -> List[Command]:
    return parse_cmake(ROOT / "CMakeLists.txt")


def module_cmake(module: str) -> List[Command]:
    return parse_cmake(ROOT / module / "CMakeLists.txt")


def scripted_module_files(module: str) -> Tuple[str, List[str], List[str], List[str]]:
    """NAME, SCRIPTS, RESOURCES and all arguments of the module's slicerMacroBuildScriptedModule."""
    calls = _find(module_cmake(module), "slicermacrobuildscriptedmodule")
    assert len(calls) == 1, f"{module}/CMakeLists.txt must call slicerMacroBuildScriptedModule once"
    args = calls[0].args
    name = keyword_values(args, "NAME", SCRIPTED_MODULE_KEYWORDS)
    return (name[0] if name else "",
            keyword_values(args, "SCRIPTS", SCRIPTED_MODULE_KEYWORDS),
            keyword_values(args, "RESOURCES", SCRIPTED_MODULE_KEYWORDS), args)


# ------------------------------------------------------------ top-level CMakeLists
def test_top_level_cmake_declares_the_extension(top_cmake):
    names = [c.name for c in top_cmake]
    assert names[0] == "cmake_minimum_required"
    project = _find(top_cmake, "project")
    assert project and project[0].args[0] == "CochleaAI"
    assert _set_value(top_cmake, "EXTENSION_HOMEPAGE") == [HOME]
    assert _set_value(top_cmake, "EXTENSION_CATEGORY") == [CATEGORY]
    for variable in ("EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL",
                     "EXTENSION_SCREENSHOTURLS"):
        value = _set_value(top_cmake, variable)
        assert value and all(v.strip() for v in value), f"{variable} is empty"
    assert "PyTorch" in _set_value(top_cmake, "EXTENSION_DEPENDS")
    icon_url = _set_value(top_cmake, "EXTENSION_ICONURL")[0]
    assert icon_url.startswith(RAW_PREFIX)
    assert (ROOT / icon_url[len(RAW_PREFIX):]).is_file(), f"the icon URL {icon_url} names no file here"


def test_ctest_runs_the_pytest_suite_under_slicers_python(top_cmake, monkeypatch):
    tests = [c for c in _find(top_cmake, "add_test") if "NAME" in c.args]
    assert len(tests) == 1 and "BUILD_TESTING" in " ".join(tests[0].conditions)
    args = tests[0].args
    command = args[args.index("COMMAND") + 1:]
    assert command[:2] == ["${PYTHON_EXECUTABLE}", str(ROOT / "Testing" / "run_pytest.py")]
    name = args[args.index("NAME") + 1]
    properties = [c.args for c in _find(top_cmake, "set_tests_properties") if c.args[0] == name]
    assert properties and properties[0][-2:] == ["SKIP_RETURN_CODE", "77"]
    import run_pytest

    monkeypatch.setattr(run_pytest, "missing_packages", lambda: ["pytest"])
    assert run_pytest.main([]) == run_pytest.SKIP == 77
    monkeypatch.undo()
    import importlib.util

    expected = [] if importlib.util.find_spec("torch") else ["torch>=2.1"]
    assert run_pytest.missing_packages() == expected    # this Python has everything but, maybe, torch


def test_top_level_cmake_order(top_cmake):
    def index(name, first_arg=None):
        for i, c in enumerate(top_cmake):
            if c.name == name and (first_arg is None or (c.args and c.args[0] == first_arg)):
                return i
        raise AssertionError(f"{name}({first_arg or ''}) missing from CMakeLists.txt")

    find_slicer = index("find_package", "Slicer")
    assert "REQUIRED" in top_cmake[find_slicer].args
    use_file = index("include", "${Slicer_USE_FILE}")
    first_module = index("add_subdirectory")
    generate = index("include", "${Slicer_EXTENSION_GENERATE_CONFIG}")
    cpack = index("include", "${Slicer_EXTENSION_CPACK}")
    assert find_slicer < use_file < first_module < generate < cpack
    assert cpack == len(top_cmake) - 1, "include(${Slicer_EXTENSION_CPACK}) must come last"


def test_top_level_adds_every_module(top_cmake):
    added = [c.args[0] for c in _find(top_cmake, "add_subdirectory")]
    assert sorted(added) == sorted(MODULES)
    for folder in added:
        assert (ROOT / folder / "CMakeLists.txt").is_file(), f"add_subdirectory({folder}) has no CMakeLists.txt"
    # no module folder left out of the build
    for cmake in ROOT.glob("*/CMakeLists.txt"):
        if "slicerMacroBuildScriptedModule" in cmake.read_text(encoding="utf-8"):
            assert cmake.parent.name in added, f"{cmake.parent.name} is not added to the build"


def test_top_level_installs_the_cochleaai_package(top_cmake):
    installers = [c for c in top_cmake
                  if c.name in ("ctkmacrocompilepythonscript", "slicermacrobuildscriptedmodule")
                  and any(a.startswith("cochleaai/") for a in c.args)]
    assert len(installers) == 1, "the cochleaai package must be installed by one CMake call"
    call = installers[0]
    keywords = CTK_COMPILE_KEYWORDS if call.name == "ctkmacrocompilepythonscript" else SCRIPTED_MODULE_KEYWORDS
    scripts = keyword_values(call.args, "SCRIPTS", keywords)
    on_disk = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "cochleaai").rglob("*.py")
                     if "__pycache__" not in p.parts)
    assert "cochleaai/__init__.py" in scripts
    assert sorted(scripts) == on_disk, "the GLOB_RECURSE must pick up every .py of cochleaai/, subpackages included"
    text = (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")
    assert re.search(r"file\s*\(\s*GLOB_RECURSE", text)
    if call.name == "ctkmacrocompilepythonscript":
        assert keyword_values(call.args, "INSTALL_DIR", keywords) == ["${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}"]
        destination = keyword_values(call.args, "DESTINATION_DIR", keywords)
        assert destination and destination[0].endswith("${Slicer_QTSCRIPTEDMODULES_LIB_DIR}")
        assert "NO_INSTALL_SUBDIR" in call.args
    for folder in ("Resources/Models", "Resources/Physics", "Resources/Dependencies", "Resources/Terminology"):
        if (ROOT / folder).is_dir():
            assert folder in text, f"{folder} exists but is not installed"


def _installed_resources(top_cmake: List[Command]) -> List[str]:
    """The common library's data files as the top-level CMakeLists.txt installs them: every
    file under the folders its foreach loop globs (not expanded by :func:`parse_cmake`), and
    the files the RESOURCES of its install call name."""
    loop = next(c for c in _find(top_cmake, "foreach") if c.args[:3] == ["resource_dir", "IN", "ITEMS"])
    installed = [str(p.relative_to(ROOT)) for folder in loop.args[3:] for p in (ROOT / folder).rglob("*")
                 if p.is_file()]
    call = next(c for c in _find(top_cmake, "ctkmacrocompilepythonscript") if "CochleaAICommonLibrary" in c.args)
    return installed + keyword_values(call.args, "RESOURCES", CTK_COMPILE_KEYWORDS)


@pytest.mark.parametrize("path", [EXTENSION_ICON, REQUIREMENTS_FILE, INTERVAL_FILE], ids=lambda p: p.name)
def test_what_the_library_finds_beside_it_is_installed(top_cmake, path):
    """The library finds these relative to its own folder, in the source tree and installed
    alike: the Sample Data thumbnail, the list of packages to install on first use, the
    plan's interval scale."""
    assert path.is_file()
    assert str(path.relative_to(ROOT)) in _installed_resources(top_cmake)


# ----------------------------------------------------------------- module CMake
@pytest.mark.parametrize("module", MODULES)
def test_module_cmake_lists_the_expected_files(module):
    name, scripts, resources, args = scripted_module_files(module)
    assert name == module
    assert "WITH_GENERIC_TESTS" in args
    for required in (f"{module}.py", f"{module}Lib/__init__.py", f"{module}Lib/logic.py",
                     f"{module}Lib/parameters.py"):
        assert required in scripts, f"{required} missing from SCRIPTS"
    for required in (f"Resources/Icons/{module}.png", f"Resources/UI/{module}.ui"):
        assert required in resources, f"{required} missing from RESOURCES"
    for listed in scripts + resources:
        assert (ROOT / module / listed).is_file(), f"{module}/CMakeLists.txt lists {listed}, which does not exist"
    for sub in _find(module_cmake(module), "add_subdirectory"):
        assert (ROOT / module / sub.args[0] / "CMakeLists.txt").is_file()


@pytest.mark.parametrize("module", MODULES)
def test_module_registers_its_self_test(module):
    tests = [c for c in _find(module_cmake(module), "slicer_add_python_unittest")
             if keyword_values(c.args, "SCRIPT", ("SCRIPT", "SLICER_ARGS", "TESTNAME_PREFIX")) == [f"{module}.py"]]
    assert tests, f"slicer_add_python_unittest(SCRIPT {module}.py) missing"
    assert any("BUILD_TESTING" in cond for cond in tests[0].conditions), "must be inside if(BUILD_TESTING)"


@pytest.mark.parametrize("module", MODULES)
def test_every_module_file_is_listed(module):
    _, scripts, resources, _ = scripted_module_files(module)
    listed = set(scripts) | set(resources)
    folder = ROOT / module
    on_disk = [p for p in folder.glob("*.py")]
    on_disk += [p for p in (folder / f"{module}Lib").rglob("*.py")]
    on_disk += [p for p in (folder / "Resources").rglob("*") if p.is_file()]
    for path in on_disk:
        if "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        relative = str(path.relative_to(folder))
        assert relative in listed, f"{module}/{relative} is not listed in {module}/CMakeLists.txt"
    subdirs = {c.args[0] for c in _find(module_cmake(module), "add_subdirectory")}
    for cmake in folder.glob("*/CMakeLists.txt"):
        assert cmake.parent.name in subdirs, f"{cmake.parent} has a CMakeLists.txt but is not added"


# --------------------------------------------------------------------- .ui files
def ui_widgets(module: str) -> Tuple[ET.Element, Dict[str, str]]:
    tree = ET.parse(ROOT / module / "Resources" / "UI" / f"{module}.ui")
    root = tree.getroot()
    widgets = {}
    for w in root.iter("widget"):
        name = w.get("name")
        assert name, f"a {w.get('class')} in {module}.ui has no objectName"
        assert name not in widgets, f"objectName {name!r} is used twice in {module}.ui"
        widgets[name] = w.get("class")
    return root, widgets


def ui_names_used(module: str) -> Dict[str, int]:
    """Every ``self.ui.<name>`` in the module script and in the widget base class all
    modules share (``cochleaai/slicer/gui/module.py``), with its first line."""
    used = {}
    for path in (ROOT / module / f"{module}.py", SHARED_MODULE_BASE):
        _collect_ui_names(ast.parse(path.read_text(encoding="utf-8")), used)
    return used


def _collect_ui_names(tree, used: Dict[str, int]) -> None:
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "ui" and isinstance(node.value.value, ast.Name)
                and node.value.value.id == "self"):
            used.setdefault(node.attr, node.lineno)
    return used


@pytest.mark.parametrize("module", MODULES)
def test_ui_file_is_valid_designer_xml(module):
    root, widgets = ui_widgets(module)
    assert root.tag == "ui" and root.get("version") == "4.0"
    top = root.find("widget")
    assert top is not None and top.get("class") == "qMRMLWidget"
    assert root.findtext("class") == top.get("name") == module
    assert "ctkCollapsibleButton" in widgets.values()
    # layouts and spacers need distinct names as well
    others = [e.get("name") for tag in ("layout", "spacer") for e in root.iter(tag) if e.get("name")]
    all_names = list(widgets) + others
    assert len(all_names) == len(set(all_names)), f"duplicate object names in {module}.ui"

    declared = {}
    for cw in root.iter("customwidget"):
        cls = cw.findtext("class")
        assert cw.findtext("extends") and cw.findtext("header"), f"customwidget {cls} is incomplete"
        declared[cls] = cw
    used_custom = {c for c in widgets.values() if not c.startswith("Q")}
    assert used_custom <= set(declared), f"undeclared custom widgets: {used_custom - set(declared)}"
    assert set(declared) <= used_custom, f"declared but unused: {set(declared) - used_custom}"
    for conn in root.iter("connection"):
        assert conn.findtext("sender") in widgets and conn.findtext("receiver") in widgets
    for selector, cls in widgets.items():
        if cls == "qMRMLNodeComboBox":
            receivers = [c for c in root.iter("connection") if c.findtext("receiver") == selector
                         and c.findtext("slot") == "setMRMLScene(vtkMRMLScene*)"]
            assert receivers, f"{selector} never receives the scene"


@pytest.mark.parametrize("module", MODULES)
def test_widget_names_used_in_code_exist_in_ui(module):
    _, widgets = ui_widgets(module)
    missing = {name: line for name, line in ui_names_used(module).items() if name not in widgets}
    assert not missing, f"{module}.py uses self.ui names absent from {module}.ui: {missing}"


@pytest.mark.parametrize("module", MODULES)
def test_phantom_controls_and_no_idle_buttons(module):
    _, widgets = ui_widgets(module)
    expected = {"phantomSeedSpinBox": "QSpinBox", "phantomFieldOfViewComboBox": "QComboBox",
                "generatePhantomButton": "QPushButton", "progressBar": "QProgressBar",
                "cancelButton": "QPushButton", "statusLabel": "QLabel"}
    for name, cls in expected.items():
        assert widgets.get(name) == cls, f"{module}.ui needs a {cls} named {name}"
    used = ui_names_used(module)
    idle = [n for n, cls in widgets.items() if cls in ("QPushButton", "ctkPushButton", "QToolButton")
            and n not in used]
    assert not idle, f"buttons in {module}.ui that the code never wires: {idle}"


# ------------------------------------------------------------------ module scripts
def _literal(node):
    """The value of a literal, also inside the translation call ``_("...")``."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "_"
            and len(node.args) == 1 and not node.keywords):
        node = node.args[0]
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _module_constants(path: Path) -> Dict[str, object]:
    """The literal values assigned at the top level of ``path`` (e.g. CATEGORIES)."""
    constants = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = _literal(node.value)
            if value is not None:
                constants[node.targets[0].id] = value
    return constants


def _classes(path: Path) -> Dict[str, ast.ClassDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}


def _decorator_names(cls: ast.ClassDef) -> List[str]:
    return [d.id if isinstance(d, ast.Name) else getattr(d, "attr", "") for d in cls.decorator_list]


def _base_names(cls: ast.ClassDef) -> List[str]:
    return [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in cls.bases]


def _parent_assignments(cls: ast.ClassDef) -> Dict[str, ast.AST]:
    init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    out = {}
    for node in ast.walk(init):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Attribute)
                        and target.value.attr == "parent"):
                    out[target.attr] = node.value
    return out


def test_python_files_compile(tmp_path):
    files = [p for m in MODULES for p in (ROOT / m).rglob("*.py") if "__pycache__" not in p.parts]
    files += sorted(p for p in SLICER_LAYER.rglob("*.py") if "__pycache__" not in p.parts)
    assert files
    for i, path in enumerate(files):
        py_compile.compile(str(path), cfile=str(tmp_path / f"{i}.pyc"), doraise=True)


@pytest.mark.parametrize("module", MODULES)
def test_module_class_describes_the_module(module):
    classes = _classes(ROOT / module / f"{module}.py")
    assert module in classes, f"{module}.py must define class {module}"
    assert "ScriptedLoadableModule" in _base_names(classes[module])
    shared = _module_constants(SHARED_MODULE_BASE)
    values = {k: _literal(v) if not isinstance(v, ast.Name) else shared.get(v.id)
              for k, v in _parent_assignments(classes[module]).items()}
    assert isinstance(values.get("title"), str) and values["title"].strip()
    assert values.get("categories") == [CATEGORY]
    assert isinstance(values.get("contributors"), list) and values["contributors"]
    help_text = values.get("helpText")
    assert isinstance(help_text, str) and len(help_text) > 100
    assert "phantom" in help_text.lower(), "the help must say what works today"
    ack = values.get("acknowledgementText")
    assert isinstance(ack, str) and "Wang" in ack and "thesis" in ack.lower()
    assert "Delingette" in ack and re.search(r"20(20|21|22)", ack)


@pytest.mark.parametrize("module", MODULES)
def test_module_texts_are_marked_for_translation(module):
    """As Slicer's module template does: title, help and acknowledgement go through ``_()``
    (``slicer.i18n.tr``), and so do the texts the widget shows."""
    tree = ast.parse((ROOT / module / f"{module}.py").read_text(encoding="utf-8"))
    assert any(isinstance(n, ast.ImportFrom) and n.module == "slicer.i18n"
               and any(a.name == "tr" and a.asname == "_" for a in n.names) for n in tree.body)
    for name, value in _parent_assignments(_classes(ROOT / module / f"{module}.py")[module]).items():
        if name in ("title", "helpText", "acknowledgementText"):
            assert isinstance(value, ast.Call) and getattr(value.func, "id", "") == "_", name
    for node in ast.walk(tree):     # no f-string shown to the user: "...{x}...".format(x=...) inside _()
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "setStatus" and node.args:
            assert not isinstance(node.args[0], ast.JoinedStr), f"{module}.py:{node.lineno}"


def test_module_titles_are_distinct():
    titles = [_literal(_parent_assignments(_classes(ROOT / m / f"{m}.py")[m])["title"]) for m in MODULES]
    assert len(set(titles)) == len(titles)


def test_shared_widget_and_test_bases():
    classes = _classes(SHARED_MODULE_BASE)
    widget = classes["CochleaAIModuleWidget"]
    assert {"ScriptedLoadableModuleWidget", "VTKObservationMixin"} <= set(_base_names(widget))
    source = ast.unparse(widget)
    assert "slicer.util.loadUI" in source and "childWidgetVariables" in source
    test = classes["CochleaAIModuleTest"]
    assert "ScriptedLoadableModuleTest" in _base_names(test)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "runTest" for n in test.body)


@pytest.mark.parametrize("module", MODULES)
def test_module_has_widget_logic_and_test(module):
    classes = _classes(ROOT / module / f"{module}.py")
    widget = classes.get(f"{module}Widget")
    assert widget is not None and "CochleaAIModuleWidget" in _base_names(widget)
    widget_source = ast.unparse(widget)
    assert f"UI/{module}.ui" in widget_source and f"{module}Logic" in widget_source
    assert f"{module}ParameterNode" in widget_source
    assert (ROOT / module / "Resources" / "UI" / f"{module}.ui").is_file()
    test = classes.get(f"{module}Test")
    assert test is not None and "CochleaAIModuleTest" in _base_names(test)
    assert f"{module}Widget.newLogic" in ast.unparse(test)      # the same Logic as the widget's
    logic_classes = _classes(ROOT / module / f"{module}Lib" / "logic.py")
    assert f"{module}Logic" in logic_classes
    parameter_classes = _classes(ROOT / module / f"{module}Lib" / "parameters.py")
    assert "parameterNodeWrapper" in _decorator_names(parameter_classes[f"{module}ParameterNode"])


# ------------------------------------------------------------------------- icons
def _png_size(path: Path) -> Tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_icons_are_distinct_128px_pngs():
    icons = [ROOT / "Resources" / "Icons" / "CochleaAI.png"]
    icons += [ROOT / m / "Resources" / "Icons" / f"{m}.png" for m in MODULES]
    for icon in icons:
        assert icon.is_file(), f"{icon} is missing"
        assert _png_size(icon) == ICON_SIZE
    contents = [i.read_bytes() for i in icons]
    assert len(set(contents)) == len(contents), "two icons are identical"


# ----------------------------------------------------------------- catalog entry
def test_catalog_json_matches_the_build(top_cmake):
    """What the catalog entry and the top-level CMakeLists.txt both say must agree (the
    index's own rules are in test_catalog_entry.py)."""
    entry = json.loads((ROOT / "CochleaAI.json").read_text(encoding="utf-8"))
    assert entry["category"] == _set_value(top_cmake, "EXTENSION_CATEGORY")[0]
    assert entry["build_dependencies"] == _set_value(top_cmake, "EXTENSION_DEPENDS") == ["PyTorch"]
    assert entry["scm_url"].startswith(_set_value(top_cmake, "EXTENSION_HOMEPAGE")[0])
    assert entry["build_subdirectory"] == "."
    assert entry.get("scm_type", "git") == "git" and isinstance(entry.get("enabled", True), bool)


# ------------------------------------------------------------------- layering
def _imports(path: Path, top_level_only: bool = False):
    """(module name, line) for each import in the file ('' for relative-only imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 0:
                yield base, node.lineno
                for alias in node.names:
                    yield f"{base}.{alias.name}", node.lineno


def _attribute_chains(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            yield f"{node.value.id}.{node.attr}", node.lineno


def _gui_offences(path: Path) -> List[str]:
    bad = []
    for name, line in _imports(path):
        if (name.split(".")[0] in GUI_PACKAGES or name.startswith(("slicer.app", "slicer.modules"))
                or name.startswith("cochleaai.slicer.gui.") and not path.name == "parameters.py"):
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    for chain, line in _attribute_chains(path):
        if chain in ("slicer.app", "slicer.modules"):
            bad.append(f"{path.relative_to(ROOT)}:{line} uses {chain}")
    return bad


def test_logic_layer_has_no_gui():
    """The Slicer layer outside ``gui/`` and the module Libs run headless (slicer-core): no Qt,
    CTK, ``slicer.app`` or ``slicer.modules``; only a Lib's parameter class uses the GUI helpers
    (its combo-box choices and the phantom settings)."""
    paths = [p for p in SLICER_LAYER.rglob("*.py") if "__pycache__" not in p.parts
             and SLICER_LAYER / "gui" not in p.parents]
    paths += [p for m in MODULES for p in (ROOT / m / f"{m}Lib").rglob("*.py")
              if "__pycache__" not in p.parts]
    assert len(paths) > 8
    offences = [o for p in paths for o in _gui_offences(p)]
    assert not offences, "\n".join(offences)


@pytest.mark.parametrize("helper", ["jobs", "dependencies"])
def test_widget_helpers_import_slicer_lazily(helper):
    import importlib

    path = SLICER_LAYER / "gui" / f"{helper}.py"
    eager = [name for name, _ in _imports(path, top_level_only=True)
             if name.split(".")[0] in SLICER_ONLY_PACKAGES]
    assert not eager, f"{helper}.py imports {eager} at module level; import inside functions"
    importlib.import_module(f"cochleaai.slicer.gui.{helper}")  # must import outside Slicer


@pytest.mark.parametrize("module", MODULES)
def test_module_does_not_reach_into_other_modules(module):
    others = {f"{m}Lib" for m in MODULES if m != module} | {m for m in MODULES if m != module}
    paths = [p for p in (ROOT / module).rglob("*.py") if "__pycache__" not in p.parts]
    for path in paths:
        for name, line in _imports(path):
            assert name.split(".")[0] not in others, f"{path.relative_to(ROOT)}:{line} imports {name}"


def test_catalogue_images_ship_with_the_repository():
    """The icon and screenshot URLs of the catalogue entries point at files of this repository."""
    prefix = "https://raw.githubusercontent.com/cochleaai/SlicerCochleaAI/main/"
    text = (ROOT / "CMakeLists.txt").read_text()
    urls = set(re.findall(re.escape(prefix) + r"[^\s\")]+", text))
    assert urls, "no icon or screenshot URL found"
    for url in urls:
        assert (ROOT / url[len(prefix):]).is_file(), f"{url} names a file the repository lacks"
