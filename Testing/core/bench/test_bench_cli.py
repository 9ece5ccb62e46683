"""The ``bench`` command: each benchmark takes only the options it declares, and every
registered benchmark runs end to end from the command line on its ``--tiny`` setting.

The runs go through :func:`cochleaai.cli.main` in this process (one import of torch for all).
A benchmark whose ``--data`` is absent here is skipped, saying so; one that only may take
data (``mar``) runs without it.
"""
from __future__ import annotations

import inspect
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

import pytest
from conftest import REAL_CT

from cochleaai import bench
from cochleaai.bench import segment_versions
from cochleaai.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[3]
NAMES = sorted(bench.registry())


def module_of(name):
    return sys.modules[bench.registry()[name][0].__module__]


def data_path(name):
    """The development copy of benchmark ``name``'s ``--data`` (its ``DATA``, from the project
    root, or ``$COCHLEAAI_<DATA SET>``, e.g. ``$COCHLEAAI_REAL_CT``), None when absent."""
    relative = getattr(module_of(name), "DATA", None)
    if relative is None:
        return None
    parts = Path(relative).parts
    data_set = parts[parts.index("data") + 1]            # ../shared/data/<data set>/...
    if data_set == "real-ct":
        return REAL_CT                                   # as the other tests of the real CT find it
    for candidate in (os.environ.get(f"COCHLEAAI_{data_set.upper().replace('-', '_')}"), ROOT / relative):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    return None


@pytest.fixture
def restore_threads():
    """The benchmarks pin torch to one thread, as a command would; give the rest of the
    session back what it had."""
    import torch  # lazy: only the fixture needs it

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_bench_help_lists_every_benchmark(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_run_takes_the_common_options_and_each_declared_one(name):
    """``run`` has a keyword for everything the command may pass it, and no catch-all that
    would swallow an option meant for another benchmark."""
    parameters = inspect.signature(bench.registry()[name][0]).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    expected = set(bench.COMMON) | {bench.dest(flag, kwargs) for flag, kwargs in bench.options(name)}
    assert expected <= set(parameters)
    if any(flag == "--data" for flag, _ in bench.options(name)):
        assert getattr(module_of(name), "DATA", None), f"{name} takes --data: say where its data lies (DATA)"


@pytest.mark.parametrize("name, flag", [("sdf", "--data"), ("phantom", "--all-references"),
                                        ("segment", "--vae-k"), ("simulate", "--mar-segment")])
def test_an_option_of_another_benchmark_is_refused(name, flag, capsys):
    argv = ["bench", name, flag] + ([] if flag in ("--all-references", "--mar-segment") else ["1"])
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--tiny"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and flag in err and f"bench {name}" in err


@pytest.mark.parametrize("name", NAMES)
def test_every_benchmark_runs_tiny_from_the_command_line(name, tmp_path, capsys, monkeypatch, restore_threads):
    monkeypatch.setenv("COCHLEAAI_CACHE", str(tmp_path / "cache"))       # vae-cochlea's phantoms
    argv = ["bench", name, "--tiny", "--quiet", "--json", str(tmp_path / f"{name}.json"),
            "--out-dir", str(tmp_path / "pictures")]
    data = data_path(name)
    if data is not None:
        argv += ["--data", str(data)]
    code = main(argv)
    out, err = capsys.readouterr()
    if code == 2 and "--data" in err and data is None:
        pytest.skip(f"bench {name} needs its data, not here ({getattr(module_of(name), 'DATA', '')})")
    if code == 2 and "needs itk-elastix" in err and importlib.util.find_spec("itk") is None:
        pytest.skip(f"bench {name} runs the atlas peer: itk-elastix (the optional extra 'peers') is not installed")
    assert code == 0, err
    assert f"benchmark: {name}" in out and "figures written to" in out
    record = json.loads((tmp_path / f"{name}.json").read_text())
    assert record["benchmark"] == name and record["figures"]


def test_json_never_writes_over_a_file_that_is_not_earlier_figures(tmp_path, capsys):
    scan = tmp_path / "scan.nii.gz"
    scan.write_bytes(b"\x1f\x8b not figures")
    assert main(["bench", "sdf", "--tiny", "--quiet", "--json", str(scan)]) == 2
    out, err = capsys.readouterr()
    assert "not a benchmark figures file" in err and "benchmark: sdf" not in out     # refused before the run
    assert scan.read_bytes() == b"\x1f\x8b not figures"
    earlier = tmp_path / "sdf.json"
    bench.write_json(earlier, "sdf", {"old": 1})
    assert bench.check_figures_file(earlier) == earlier       # an earlier run's figures: replaced at will


def test_segment_versions_without_the_peer_needs_no_elastix(tmp_path, capsys, monkeypatch, restore_threads):
    data = data_path("segment-versions")
    if data is None:
        pytest.skip("bench segment-versions needs the real-CT development data, not here")
    monkeypatch.setattr(segment_versions, "load_itk", lambda: pytest.fail("asked for itk-elastix"))
    out_json = tmp_path / "versions.json"
    code = main(["bench", "segment-versions", "--tiny", "--no-peers", "--quiet", "--json", str(out_json),
                 "--data", str(data)])
    assert code == 0, capsys.readouterr().err
    figures = json.loads(out_json.read_text())["figures"]
    rows = figures["per_specimen"]
    assert figures["peers"] is False
    assert {r["method"] for r in rows} == {"ours", segment_versions.COCHLEA_ALONE_METHOD, "label through the grid"}
    assert len(rows) == 3 * len(figures["versions"]) and all(0.0 <= r["dice"] <= 1.0 for r in rows)
    assert not any(key.startswith(("atlas", "clinical_0.5_mm/atlas")) for key in figures)


def test_make_bench_runs_every_benchmark_with_options_it_takes():
    """``make bench`` names every registered benchmark, and each of its command lines parses."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    loop = re.search(r"for b in ([^;]+);", text).group(1).split()
    lines = [re.split(r"\|\||; fi", tail)[0].split() for tail in re.findall(r"-m cochleaai bench (.*)", text)]
    lines = [[loop_name if word == "$$b" else re.sub(r"\$\((\w+)\)", r"\1", word) for word in line]
             for line in lines for loop_name in (loop if "$$b" in line else [None])]
    assert {line[0] for line in lines} == set(NAMES)
    parser = build_parser()
    for line in lines:
        args = parser.parse_args(["bench"] + line)           # an unknown option exits here
        assert args.name == line[0]
