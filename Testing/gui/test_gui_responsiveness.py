"""Slicer stays responsive while a job runs in the background, and jobs do not disturb each
other: the compiled shape kernel releases the GIL and is entered by one thread at a time,
and torch's thread count comes back whatever order blocks end in (the GUI loop during a
segmentation, which runs in a worker process, is measured in test_worker_jobs.py)."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from cochleaai.shape import _closest
from cochleaai.threads import set_torch_threads, torch_threads

torch = pytest.importorskip("torch")


# ------------------------------------------------------------------ the compiled kernel
def test_kernel_releases_the_gil():
    options = _closest._closest_points.targetoptions
    assert options.get("nogil") is True and options.get("parallel") is True


def test_kernel_calls_are_serialised(monkeypatch):
    inside, overlaps = [0], []

    def slow_kernel(*args):
        inside[0] += 1
        overlaps.append(inside[0])
        time.sleep(0.05)
        inside[0] -= 1

    monkeypatch.setattr(_closest, "_closest_points", slow_kernel)
    workers = [threading.Thread(target=_closest.closest_points, args=(k,)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert overlaps == [1, 1, 1, 1]


def test_two_threads_get_the_same_distances():
    from cochleaai.shape import ShapeFunction, default_params

    rng = np.random.default_rng(0)
    points = rng.uniform(-6.0, 6.0, size=(3000, 3))
    theta = default_params()
    expected = ShapeFunction()(points, theta)
    results = [None, None]

    def work(k):
        results[k] = ShapeFunction()(points, theta)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for result in results:
        np.testing.assert_allclose(result, expected, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ torch threads
@pytest.fixture
def restore_torch_threads():
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_nested_blocks_restore_in_turn(restore_torch_threads):
    torch.set_num_threads(2)
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        with torch_threads(3):
            assert torch.get_num_threads() == 3
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(ZeroDivisionError):
        with torch_threads(1):
            1 / 0
    assert torch.get_num_threads() == 2


def test_overlapping_blocks_in_two_threads_restore_the_first_count(restore_torch_threads):
    torch.set_num_threads(2)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()

    def first():                    # enters first, leaves first
        with torch_threads(1):
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def second():                   # enters while the first runs, leaves last
        a_in.wait(10)
        with torch_threads(3):
            b_in.set()
            a_out.wait(10)
            assert torch.get_num_threads() == 3     # the block still running decides

    workers = [threading.Thread(target=first), threading.Thread(target=second)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert torch.get_num_threads() == 2


def test_a_count_set_inside_a_block_is_kept(restore_torch_threads):
    torch.set_num_threads(2)
    with torch_threads(1):
        set_torch_threads(3)
    assert torch.get_num_threads() == 3
