"""The catalog entry against the rules of the Slicer ExtensionsIndex description checker.

The ExtensionsIndex repository checks every submitted ``<Name>.json`` with its
``scripts/check_description_files.py`` and the catalog-entry JSON schema published in
Slicer's ``Schemas/`` folder. Its rules, as read there (August 2026) and re-implemented
here without the network:

* the file is valid JSON with LF line endings, and follows the schema: ``$schema``,
  ``category`` and ``scm_url`` are required, no other keys than the schema's, each of the
  schema's type (``scm_type`` "git" or "local", ``tier`` an integer 1-5, ...);
* the category is one of the accepted ones (below);
* the extension name (the file name) does not start with "Slicer", the repository name
  does ("Slicer", "Slicer-", "Slicer_", "SlicerExtension-" or "SlicerExtension_");
* ``scm_url`` is ``scheme://host/path`` with the scheme git or https;
* the top-level CMakeLists.txt names the extension in ``project()`` and sets
  ``EXTENSION_ICONURL`` and ``EXTENSION_SCREENSHOTURLS`` to image URLs;
* a licence file (LICENSE, LICENCE, License.txt, license.txt, LICENSE.txt, COPYING or
  COPYING.txt) is in the repository root, and the repository is at most 100 MB;
* every build dependency is itself in the index.

The checker downloads the images and asks GitHub for the repository topic
"3d-slicer-extension"; here the image URLs must name files of this repository instead, and
the topic is left to whoever publishes the repository.
"""
from __future__ import annotations

import json
import re
import struct
import subprocess
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "CochleaAI.json"
NAME = ENTRY.stem
RAW_PREFIX = "https://raw.githubusercontent.com/cochleaai/SlicerCochleaAI/main/"

ACCEPTED_CATEGORIES = {
    "Active Learning", "Analysis", "Auto3dgm", "BigImage", "Cardiac", "Chest Imaging Platform",
    "Conda", "Converters", "DICOM", "DSCI", "Developer Tools", "Diffusion", "Examples", "Exporter",
    "FTV Segmentation", "Filtering", "Filtering.Morphology", "Filtering.Vesselness",
    "Holographic Display", "Image Synthesis", "IGT", "Informatics", "Netstim", "Neuroimaging",
    "Nuclear Medicine", "Orthodontics", "Osteotomy Planning", "Otolaryngology", "Photogrammetry",
    "Pipelines", "Planning", "Printing", "Quantification", "Radiotherapy", "Registration", "Remote",
    "Rendering", "SPHARM", "Segmentation", "Sequences", "Shape Analysis", "Shape Regression",
    "Shape Visualization", "Simulation", "SlicerCMF", "SlicerMorph", "Spectral Imaging",
    "Supervisely", "Surface Models", "SurfaceLearner", "Tomographic Reconstruction", "Tracking",
    "Tractography", "Training", "Ultrasound", "Utilities", "Vascular Modeling Toolkit",
    "Virtual Reality", "VisSimTools", "Web System Tools", "Wizards"}
SCHEMA_URL = re.compile(r"^https://raw\.githubusercontent\.com/Slicer/Slicer/main/Schemas/"
                        r"slicer-extension-catalog-entry-schema-v1\.0\.[0-2]\.json#?$")
#: The schema's properties and their JSON types.
SCHEMA_TYPES = {"$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
                "build_dependencies": list, "dicom_support_rule": str, "build_subdirectory": str,
                "enabled": bool, "tier": int}
REQUIRED = ("$schema", "category", "scm_url")
LICENCE_NAMES = ("LICENSE", "LICENCE", "License.txt", "license.txt", "LICENSE.txt", "COPYING", "COPYING.txt")
REPOSITORY_PREFIXES = ("Slicer", "Slicer-", "Slicer_", "SlicerExtension-", "SlicerExtension_")
#: Extensions of the index this one may depend on (PyTorch.json is in the index).
INDEXED_DEPENDENCIES = {"PyTorch"}
MAX_REPOSITORY_MB = 100


@pytest.fixture(scope="module")
def entry():
    return json.loads(ENTRY.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cmake():
    return (ROOT / "CMakeLists.txt").read_text(encoding="utf-8")


def _cmake_string(cmake: str, variable: str) -> str:
    match = re.search(rf'set\s*\(\s*{variable}\s+"([^"]*)"\s*\)', cmake)
    assert match, f"CMakeLists.txt sets no quoted {variable}"
    return match.group(1)


def test_json_format_and_line_endings():
    data = ENTRY.read_bytes()
    json.loads(data.decode("utf-8"))
    assert b"\r" not in data, "the catalog entry must use LF line endings only"


def test_follows_the_catalog_schema(entry):
    assert all(key in entry for key in REQUIRED), f"missing {[k for k in REQUIRED if k not in entry]}"
    assert set(entry) <= set(SCHEMA_TYPES), f"keys the schema forbids: {set(entry) - set(SCHEMA_TYPES)}"
    for key, value in entry.items():
        kind = SCHEMA_TYPES[key]
        assert isinstance(value, kind) and not (kind is int and isinstance(value, bool)), key
    assert SCHEMA_URL.match(entry["$schema"]), entry["$schema"]
    assert entry.get("scm_type", "git") in ("git", "local")
    assert 1 <= entry.get("tier", 1) <= 5
    assert all(isinstance(d, str) for d in entry.get("build_dependencies", []))


def test_category_is_accepted_and_shared_by_the_build_and_the_modules(entry, cmake):
    assert entry["category"] in ACCEPTED_CATEGORIES
    assert entry["category"] == "Otolaryngology"          # where the index puts ear extensions
    assert _cmake_string(cmake, "EXTENSION_CATEGORY") == entry["category"]
    from ast import literal_eval

    module_categories = re.search(r"^CATEGORIES = (\[.*\])$",
                                  (ROOT / "cochleaai" / "slicer" / "gui" / "module.py").read_text(encoding="utf-8"),
                                  re.M)
    assert module_categories and literal_eval(module_categories.group(1)) == [entry["category"]]


def test_extension_and_repository_names(entry):
    assert not NAME.lower().startswith("slicer")
    url = entry["scm_url"]
    assert "://" in url and urllib.parse.urlsplit(url).scheme in ("git", "https")
    repository = Path(urllib.parse.urlsplit(url.strip().strip("/")).path).stem
    assert repository.startswith(REPOSITORY_PREFIXES), repository


def test_cmake_names_the_extension_and_its_images(cmake):
    project = re.search(r"project\s*\(\s*([^\s\)]+)", cmake, re.I)
    assert project and project.group(1).strip("\"'") == NAME
    icon = _cmake_string(cmake, "EXTENSION_ICONURL")
    screenshots = _cmake_string(cmake, "EXTENSION_SCREENSHOTURLS").split()
    assert screenshots
    for url in [icon, *screenshots]:
        assert url.startswith("http") and url.lower().endswith((".png", ".jpg", ".jpeg", ".gif")), url
        assert url.startswith(RAW_PREFIX), f"{url} is not a file of this repository"
        path = ROOT / url[len(RAW_PREFIX):]
        assert path.is_file(), f"{url} names a file the repository lacks"
        head = path.read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n" or head[:3] == b"\xff\xd8\xff", f"{path} is no PNG or JPEG"
        if "placeholder" in path.name.lower():      # said so where the screenshots live
            notes = (path.parent / "README.md").read_text(encoding="utf-8")
            assert path.name in notes and "placeholder" in notes.lower()
    width, height = struct.unpack(">II", (ROOT / icon[len(RAW_PREFIX):]).read_bytes()[16:24])
    assert (width, height) == (128, 128)


def test_contributors_are_first_last_organisation(cmake):
    person = re.compile(r"^[A-Z][\w'.-]*( [A-Z][\w'.-]*)+ \([^()]+\)$")
    # split at the commas between people, not inside an organisation's parentheses
    people = [p.strip() for p in re.split(r",(?![^()]*\))", _cmake_string(cmake, "EXTENSION_CONTRIBUTORS"))]
    assert people and all(person.match(p) for p in people), people
    text = (ROOT / "cochleaai" / "slicer" / "gui" / "module.py").read_text(encoding="utf-8")
    block = re.search(r"^CONTRIBUTORS = \[(.*?)\]$", text, re.M | re.S)
    from ast import literal_eval

    modules = literal_eval(f"[{block.group(1)}]")
    assert modules and all(person.match(p) for p in modules), modules


def test_licence_file_matches_pyproject():
    found = [n for n in LICENCE_NAMES if (ROOT / n).is_file()]
    assert found, "no licence file in the repository root"
    text = (ROOT / found[0]).read_text(encoding="utf-8")
    assert "BSD 3-Clause" in text and "Redistribution and use in source and binary forms" in text
    assert 'license = "BSD-3-Clause"' in (ROOT / "pyproject.toml").read_text(encoding="utf-8")


def test_build_dependencies_are_in_the_index(entry, cmake):
    dependencies = entry.get("build_dependencies", [])
    assert set(dependencies) <= INDEXED_DEPENDENCIES
    depends = re.search(r"set\s*\(\s*EXTENSION_DEPENDS\s+([^)#]*)\)", cmake).group(1).split()
    assert sorted(depends) == sorted(dependencies) == ["PyTorch"]


def test_no_legacy_description_file():
    """The index takes only .json entries now, and the build writes its own description."""
    assert not list(ROOT.glob("*.s4ext"))


def test_repository_size():
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = [ROOT / name for name in listed.stdout.decode("utf-8").split("\0") if name]
    size_mb = sum(f.stat().st_size for f in files if f.is_file()) / 2**20
    assert size_mb <= MAX_REPOSITORY_MB, f"{size_mb:.1f} MB"
