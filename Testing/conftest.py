"""Shared pytest fixtures. Keep each fixture small and documented."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
from parameter_node_stand_in import install as install_parameter_node_wrapper

from cochleaai.segments import COCHLEA, SCALA_TYMPANI, SCALA_VESTIBULI

# slicer-core has no slicer.parameterNodeWrapper (the application's Python package): the tests
# import the stand-in under that name (a real one, where there is one, is found first).
install_parameter_node_wrapper()

#: The real temporal-bone CT development data (layout of cochleaai.realct), beside the
#: project as ../shared/data/real-ct, or where COCHLEAAI_REAL_CT points; None when absent
#: (its tests are then skipped, saying so).
_REAL_CT_CANDIDATES = [os.environ.get("COCHLEAAI_REAL_CT", ""),
                       str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "real-ct")]
REAL_CT = next((Path(p) for p in _REAL_CT_CANDIDATES if p and any(Path(p).rglob("*_DESC.json"))), None)
requires_real_ct = pytest.mark.skipif(REAL_CT is None, reason="the real-CT development data "
                                      "(../shared/data/real-ct or $COCHLEAAI_REAL_CT) is not here")


#: True where torch is not installed: the runs on the numpy and scipy of older Slicer releases
#: (``make test-slicer-versions``), which test what works without torch.
WITHOUT_TORCH = importlib.util.find_spec("torch") is None


_NEEDS_TORCH = "No module named 'torch'"


def _skipped_for_torch(report, path) -> None:
    if WITHOUT_TORCH and report.failed and _NEEDS_TORCH in str(report.longrepr):
        report.outcome = "skipped"
        report.longrepr = (str(path), 0, "Skipped: needs torch, which is not installed here")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """Without torch, a test file that needs it (it imports torch, or a module of ours that
    does) is skipped with that reason instead of failing to collect."""
    outcome = yield
    _skipped_for_torch(outcome.get_result(), collector.path)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Without torch, a test that fails only because torch is missing (in this process or in
    a command it runs: the command line imports the methods) is skipped with that reason."""
    outcome = yield
    _skipped_for_torch(outcome.get_result(), item.path)


def real_specimen(specimen_id: str):
    """One development specimen (cochleaai.realct.Specimen) by its id."""
    from cochleaai import realct

    return next(s for s in realct.find_specimens(REAL_CT) if s.id == specimen_id)


@pytest.fixture
def scene():
    """A real, headless ``vtkMRMLScene`` from ``slicer-core`` (skipped when it is not installed).

    Set up like the Slicer application's scene by :func:`cochleaai.slicer.mrml.new_scene`: the
    application logic with the default colour tables, the Segmentations and Markups module
    logics (which register the markups JSON storage nodes), the segmentation converter rules
    (binary labelmap <-> closed surface, fractional labelmap) and the storage node classes the
    adapters save with. Cleared after the test.
    """
    pytest.importorskip("slicer", reason="slicer-core (MRML without Qt) is not installed")
    from cochleaai.slicer import mrml

    mrml_scene = mrml.new_scene()
    yield mrml_scene
    mrml_scene.Clear(1)


@pytest.fixture
def one_torch_thread():
    """Tiny networks run faster on one thread, and much faster on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _in_a_worker(function, timeout: float = 120.0):
    """``function()`` on another thread (as a background job runs it); its result, or its
    exception raised here."""
    import threading

    outcome = {}

    def work():
        outcome["thread"] = threading.get_ident()
        try:
            outcome["result"] = function()
        except BaseException as error:  # handed to the test's thread
            outcome["error"] = error

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive() and outcome["thread"] != threading.get_ident()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


@pytest.fixture
def in_worker_thread():
    """Call ``in_worker_thread(function)`` to run ``function()`` on a worker thread."""
    return _in_a_worker


@pytest.fixture
def overlapping(ct):
    """Three segments on the test module's ``ct`` grid: a cochlea holding the scala tympani and,
    apart from it, the scala vestibuli (so two of them overlap the third)."""
    cochlea = np.zeros(ct.shape, bool)
    cochlea[1:5, 2:7, 2:9] = True
    tympani = np.zeros(ct.shape, bool)
    tympani[2:4, 3:5, 3:5] = True
    vestibuli = np.zeros(ct.shape, bool)
    vestibuli[2:4, 5:7, 6:8] = True
    return [(COCHLEA, cochlea), (SCALA_TYMPANI, tympani), (SCALA_VESTIBULI, vestibuli)]
