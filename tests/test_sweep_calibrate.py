"""``charlstm sweep --minutes M --as-steps``: each point timed first, then trained for the steps
that fit in M minutes; the timer is a fake here, so nothing depends on this machine's speed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from charlstm_core import sweep
from charlstm_core.cli import parser as cli
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.files.text import corpus_from_text, train_val_ids
from charlstm_core.runs import RunStore
from charlstm_core.sweep import calibration as calibrate_mod
from charlstm_core.training.plan import Timing, param_count, run_seconds_per_step
from helpers import make_text

MODEL = ModelConfig(vocab_size=1, hidden_size=16)
TRAIN = TrainConfig(seq_len=16, batch_size=4, minutes=1.0, eval_every=10, sample_every=5)
ALIASES = {"hidden": "hidden_size"}
TINY = ["--seq-len", "16", "--batch-size", "4", "--eval-every", "10", "--sample-every", "0"]


class FakeTimer:
    """``measure_timing``'s stand-in: a step costs ``per_unit`` x the hidden size; it notes each
    call (the settings and the threads asked for)."""

    def __init__(self, per_unit: float = 1e-3, eval_char_s: float = 0.0, sample_char_s=0.0):
        self.per_unit, self.eval_char_s, self.sample_char_s = per_unit, eval_char_s, sample_char_s
        self.calls: list[tuple] = []

    def __call__(self, vocab, hidden, layers, batch, seq_len, *, dropout, threads) -> Timing:
        self.calls.append((vocab, hidden, layers, batch, seq_len, dropout, threads))
        return Timing(self.per_unit * hidden, self.eval_char_s, self.sample_char_s)


def points(spec: str = "hidden=16,32"):
    return sweep.grid_points(sweep.parse_grid([spec], ALIASES), MODEL, TRAIN)


def corpus():
    return corpus_from_text(make_text(), name="words")


def test_steps_fit_the_minutes_after_the_end_reserve():
    assert sweep.steps_in(1.0, 0.1) == 600
    assert sweep.steps_in(1.0, 0.1, reserve_s=6.0) == 540
    assert sweep.steps_in(2.0, 0.1, reserve_s=6.0) == 1140
    assert sweep.steps_in(0.001, 10.0) == 1  # a --minutes run makes at least one step
    with pytest.raises(ValueError):
        sweep.steps_in(1.0, 0.0)


def test_step_counts_scale_with_the_minutes_and_the_measured_time():
    timer = FakeTimer(per_unit=1e-3)
    cals = sweep.calibrate(points(), MODEL, TRAIN, corpus(), 1.0, timer=timer)
    one = [c.steps for c in cals]
    two = [c.steps for c in sweep.calibrate(points(), MODEL, TRAIN, corpus(), 2.0, timer=timer)]
    # a step of hidden=32 takes twice as long as one of hidden=16: half the steps
    assert one[0] == pytest.approx(2 * one[1], abs=1)
    assert two[0] == pytest.approx(2 * one[0], abs=1) and two[1] == pytest.approx(2 * one[1], abs=1)
    slow = sweep.calibrate(points(), MODEL, TRAIN, corpus(), 1.0, timer=FakeTimer(per_unit=2e-3))
    assert [c.steps for c in slow] == [pytest.approx(n / 2, abs=1) for n in one]
    assert [c.point.steps for c in cals] == one and all(c.point.changes for c in cals)


def test_validation_samples_and_the_final_save_are_paid_for():
    c = corpus()
    timer = FakeTimer(per_unit=1e-3, eval_char_s=1e-4, sample_char_s=1e-3)
    (cal,) = sweep.calibrate(points("hidden=16"), MODEL, TRAIN, c, 1.0, timer=timer)
    _, val = train_val_ids(c, c.vocab, 4, 16, TRAIN.val_fraction, max_val=TRAIN.eval_max_chars)
    timing = Timing(16e-3, 1e-4, 1e-3)
    per_step = run_seconds_per_step(
        timing, eval_every=10, val_chars=len(val), sample_every=5, sample_length=300
    )
    assert cal.seconds_per_step == pytest.approx(per_step) and per_step > 16e-3
    reserve = 1e-4 * len(val) + 12 * param_count(c.vocab.size, 16, 1) / 100e6
    assert cal.reserve_s == pytest.approx(reserve)
    assert cal.steps == math.floor((60 - reserve) / per_step)


def test_each_point_is_timed_at_its_own_settings_the_median_of_the_repeats():
    seen: list[float] = []

    def timer(vocab, hidden, layers, batch, seq_len, *, dropout, threads):
        step = [0.3, 0.1, 0.2, 0.4, 0.5][len(seen) % 5]  # the machine was busy for most
        seen.append(step)
        return Timing(step, 0.0, 0.0)

    train = TRAIN.replace(eval_every=0, sample_every=0)
    (cal,) = sweep.calibrate(points("hidden=16"), MODEL, train, corpus(), 1.0, timer=timer)
    assert len(seen) == calibrate_mod.REPEATS
    assert cal.seconds_per_step == pytest.approx(0.3)  # the median of the five
    (fast,) = sweep.calibrate(
        points("hidden=16"), MODEL, train, corpus(), 1.0, timer=timer, estimate=sweep.fastest
    )
    assert fast.seconds_per_step == pytest.approx(0.1) and fast.steps > cal.steps
    fake = FakeTimer()
    grid = sweep.parse_grid(["hidden=16,24", "dropout=0,0.3"], ALIASES)
    pts = sweep.grid_points(grid, MODEL, TRAIN)
    sweep.calibrate(pts, MODEL, TRAIN, corpus(), 1.0, timer=fake, repeats=1, threads=3)
    assert [(c[1], c[5], c[6]) for c in fake.calls] == [
        (16, 0.0, 3), (16, 0.3, 3), (24, 0.0, 3), (24, 0.3, 3)
    ]  # fmt: skip


def test_points_of_the_same_cost_share_a_timing_and_costs_are_timed_in_rounds():
    fake = FakeTimer()
    grid = sweep.parse_grid(["hidden=16,24", "lr=1e-3,2e-3"], ALIASES)
    pts = sweep.grid_points(grid, MODEL, TRAIN)
    cals = sweep.calibrate(pts, MODEL, TRAIN, corpus(), 1.0, timer=fake, repeats=2)
    assert [c[1] for c in fake.calls] == [16, 24, 16, 24]  # rounds, each cost once a round
    steps = [c.steps for c in cals]
    assert steps[0] == steps[1] and steps[2] == steps[3] and steps[0] > steps[2]


def test_a_calibrated_point_trains_for_its_own_steps():
    (point,) = points("hidden=16")
    point = sweep.SweepPoint(point.index, point.changes, point.label, steps=7)
    mc, tc = point.configs(MODEL, TRAIN)
    assert (tc.steps, tc.minutes, tc.epochs, mc.hidden_size) == (7, None, None, 16)


# ---------------------------------------------------------------------------------------------
# The command line


@pytest.fixture
def fake_timer(monkeypatch) -> FakeTimer:
    timer = FakeTimer(per_unit=1e-3)
    monkeypatch.setattr(calibrate_mod, "measure_timing", timer)
    return timer


def sweep_argv(text: Path, *extra: str) -> list[str]:
    return ["sweep", str(text), "--grid", "hidden=16,24", *TINY, *extra]


def test_cli_as_steps_records_runs_with_the_calibrated_steps(text, capsys, fake_timer):
    # 0.005 minutes = 0.3 s: hidden=16 at 16 ms a step gets 18 steps, hidden=24 gets 12
    # (less a hair for the final save)
    code = cli.main(sweep_argv(text, "--minutes", "0.005", "--as-steps", "--out-dir", "sw"))
    out, err = capsys.readouterr()
    assert code == 0, err
    vocab = corpus_from_text(text.read_text(), name="words").vocab.size
    expected = {
        hidden: math.floor((0.3 - 12 * param_count(vocab, hidden, 1) / 100e6) / (hidden * 1e-3))
        for hidden in (16, 24)
    }  # validation costs nothing on the fake timer: only the save is reserved
    assert expected == {16: 18, 24: 12}
    with RunStore.open() as store:
        runs = store.list_runs(status="finished")
    assert sorted((r.model["hidden_size"], r.steps, r.train["steps"]) for r in runs) == [
        (16, 18, 18),
        (24, 12, 12),
    ]
    assert all(r.train["minutes"] is None for r in runs)
    steps_column = {line.split()[1]: line.split()[5] for line in out.splitlines()[1:]}
    assert steps_column == {"16": "18", "24": "12"}
    # every point was timed before the first one trained
    timing = [i for i, line in enumerate(err.splitlines()) if "a step with its" in line]
    training = [i for i, line in enumerate(err.splitlines()) if line.endswith(": training")]
    assert len(timing) == 2 and max(timing) < min(training)
    assert "18 steps" in err and "12 steps" in err


def test_cli_as_steps_gives_the_same_results_with_jobs_2(text, capsys, fake_timer):
    losses = {}
    for jobs in ("1", "2"):
        argv = sweep_argv(text, "--minutes", "0.005", "--as-steps", "--jobs", jobs, "-q")
        assert cli.main([*argv, "--out-dir", f"sw{jobs}"]) == 0
        out, _ = capsys.readouterr()
        rows = [line.split() for line in out.splitlines()[1:]]
        losses[jobs] = sorted((r[1], r[3], r[5]) for r in rows)  # hidden, best val, steps
    assert losses["1"] == losses["2"]
    # timed as a run alone trains, whatever --jobs: every call asked for the same threads
    assert len({c[6] for c in fake_timer.calls}) == 1


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        (["--steps", "5"], "with --steps the budget is already fixed"),
        (["--epochs", "1"], "with --epochs the budget is already fixed"),
        ([], "one of the arguments --steps --epochs --minutes is required"),
    ],
)
def test_cli_as_steps_needs_minutes(text, capsys, fake_timer, budget, message):
    code = cli.main(sweep_argv(text, *budget, "--as-steps"))
    _, err = capsys.readouterr()
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert fake_timer.calls == []


def test_setting_stop_ends_the_timing_before_the_next_measurement():
    import threading

    stop = threading.Event()
    timer = FakeTimer()

    def stopping_timer(*args, **kwargs):
        stop.set()  # as a Cancel pressed while the first measurement runs
        return timer(*args, **kwargs)

    assert (
        sweep.calibrate(points(), MODEL, TRAIN, corpus(), 1.0, timer=stopping_timer, stop=stop)
        == []
    )
    assert len(timer.calls) == 1
    assert sweep.calibrate(points(), MODEL, TRAIN, corpus(), 1.0, timer=timer, stop=stop) == []
    assert len(timer.calls) == 1  # already set: nothing timed
