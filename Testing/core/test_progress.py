"""Progress reporting and cancellation, the contract every long job relies on."""
import pytest

from cochleaai.progress import Cancelled, Progress, tqdm_progress


def test_stages_map_onto_the_parent_range():
    seen = []
    p = Progress(lambda f, m: seen.append((round(f, 6), m)))
    p(0.0, "start")
    child = p.stage(0.5, 1.0)
    child(0.5, "half of the second half")
    grandchild = child.stage(0.0, 0.5)
    grandchild(1.0, "end of the first quarter of the second half")
    p(2.0, "clamped")
    assert seen == [(0.0, "start"), (0.75, "half of the second half"),
                    (0.75, "end of the first quarter of the second half"), (1.0, "clamped")]


def test_cancel_raises_at_the_next_report_in_every_stage():
    p = Progress(lambda f, m: None)
    child = p.stage(0.2, 0.4)
    p(0.1)
    p.cancel()
    assert p.cancelled and child.cancelled
    with pytest.raises(Cancelled):
        child(0.5)
    with pytest.raises(Cancelled):
        p(0.6)


def test_wrap_accepts_callables_none_and_progress():
    assert isinstance(Progress.wrap(None), Progress)
    existing = Progress()
    assert Progress.wrap(existing) is existing
    calls = []
    Progress.wrap(lambda f, m: calls.append(f))(0.3, "x")
    assert calls == [0.3]


def test_a_callback_may_cancel_by_raising():
    def stop_at_half(fraction, message):
        if fraction >= 0.5:
            raise Cancelled("user")

    p = Progress.wrap(stop_at_half)
    p(0.4)
    with pytest.raises(Cancelled):
        p(0.5)


def test_tqdm_adapter_draws_to_stderr(capsys):
    with tqdm_progress("job") as p:
        p(0.5, "working")
    err = capsys.readouterr().err
    assert "job" in err and "100%" in err
