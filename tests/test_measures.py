"""A run's figures, each defined once (charlstm_core.training.measures): one duration and one
chars/s shown alike by every view of the command line, a time left that ends where the run ends,
a time budget's step total shown as "about N" (issue 20, points 1 and 2).

The trainer's clock is replaced by a fake one that advances only when work is done (a step 0.5 s,
a whole validation 5 s, a save 2 s, a sample 1 s), so the figures are exact and no test reads a
wall time.
"""

from __future__ import annotations

import re
import sys

import pytest
from charlstm_core.config import ModelConfig
from charlstm_core.engine.cpu import CpuEngine
from charlstm_core.events import StepEvent
from charlstm_core.files.text import corpus_from_text
from charlstm_core.runs import RunStore
from charlstm_core.training import measures
from charlstm_core.training import trainer as trainer_mod
from charlstm_core.training.trainer import Trainer
from helpers import TINY, drain, make_text, run_cli
from helpers import small_train_config as tc

MC = ModelConfig(vocab_size=1, hidden_size=16)
STEP_S, EVAL_S, SAVE_S, SAMPLE_S = 0.5, 5.0, 2.0, 1.0
# sums of a few hundred binary fractions and float64 clock readings near 1000 s: far below a
# microsecond apart, while every figure compared differs by at least a step (0.5 s) when wrong
EXACT = 1e-6


@pytest.fixture
def clock(monkeypatch):
    """The run's clock, advanced by the work the trainer does (see the module)."""
    now = {"t": 1000.0}
    monkeypatch.setattr(measures, "now", lambda: now["t"])
    real_step, real_validate = CpuEngine.loss_and_grads, Trainer._validate
    real_save, real_sample = trainer_mod.save_model, Trainer._sample

    def step(*args, **kwargs):
        now["t"] += STEP_S
        return real_step(*args, **kwargs)

    def validate(self, ids=None):  # EVAL_S for the whole validation text, a slice in proportion
        share = 1.0 if ids is None else (len(ids) - 1) / (len(self._val_ids) - 1)
        now["t"] += EVAL_S * share
        return real_validate(self, ids)

    def save(*args, **kwargs):
        now["t"] += SAVE_S
        return real_save(*args, **kwargs)

    def sample(self):
        now["t"] += SAMPLE_S
        return real_sample(self)

    monkeypatch.setattr(CpuEngine, "loss_and_grads", step)
    monkeypatch.setattr(Trainer, "_validate", validate)
    monkeypatch.setattr(trainer_mod, "save_model", save)
    monkeypatch.setattr(Trainer, "_sample", sample)
    return now


def run_with_clock(clock, cfg, path):
    trainer = Trainer(corpus_from_text(make_text()), MC, cfg, checkpoint_path=str(path))
    start = clock["t"]
    events, summary = drain(trainer.run())
    return [e for e in events if isinstance(e, StepEvent)], summary, clock["t"] - start


# ------------------------------------------------------------------ the pure rules


def test_one_formatter_for_durations():
    assert measures.duration_text(58.4) == "0:00:58"
    assert measures.duration_text(62) == "0:01:02"
    assert measures.duration_text(3725.5) == "1:02:06"  # whole seconds, rounded
    assert measures.duration_text(None) == "—" and measures.duration_text(float("nan")) == "—"
    assert measures.duration_text(-1, unknown="?") == "?"


def test_a_step_total_that_is_an_estimate_reads_about_n():
    assert measures.about(2704) == 2700 and measures.about(497) == 500
    # re-estimated step by step, the total reads the same (it jumped 503, 497, 501, 499)
    assert {measures.about(n) for n in (503, 497, 501, 499)} == {500}
    assert measures.about(478) == 480 and measures.about(42) == 42
    assert measures.count_text(2704, estimate=True) == "about 2,700"
    assert measures.count_text(2704, estimate=False) == "2,704"


def test_chars_per_sec_is_the_characters_over_the_duration():
    assert measures.chars_per_sec(6400, 2.0) == 3200.0
    assert measures.chars_per_sec(0, 2.0) is None and measures.chars_per_sec(10, 0.0) is None


def test_due_counts_the_periodic_work_still_to_come():
    assert measures.due(1, 60, 20) == 3  # 20, 40, 60
    assert measures.due(20, 60, 20) == 3  # the event of step 20 comes before its validation
    assert measures.due(21, 60, 20) == 2
    assert measures.due(5, 60, 0) == 0 and measures.due(61, 60, 20) == 0


def test_a_time_budget_ends_with_its_budget_or_its_final_work():
    assert measures.eta_seconds(work_s=None, finish_s=3.0, budget_left_s=40.0) == 40.0
    assert measures.eta_seconds(work_s=None, finish_s=3.0, budget_left_s=1.0) == 3.0
    last = measures.eta_seconds(work_s=None, finish_s=3.0, budget_left_s=3.4, last_step=True)
    assert last == 3.0  # the last step: what is left is the final validation and save
    assert measures.eta_seconds(work_s=10.0, finish_s=2.0) == 12.0
    assert measures.eta_seconds(work_s=None, finish_s=2.0) is None


# ------------------------------------------------------------------ the trainer's figures


def test_the_time_left_of_a_run_of_steps_ends_where_the_run_ends(clock, tmp_path):
    cfg = tc(steps=60, eval_every=20, sample_every=25, checkpoint_every=30)
    steps, summary, spent = run_with_clock(clock, cfg, tmp_path / "m.npz")
    end = summary.duration_s
    assert end == pytest.approx(spent, abs=EXACT)  # the duration ends with the final save
    for ev in steps:
        assert ev.eta_s is not None and not ev.total_is_estimate
        missing = end - (ev.duration_s + ev.eta_s)
        if ev.step > 30:  # a whole validation, a sample and a save have been timed by now
            assert missing == pytest.approx(0.0, abs=EXACT), ev.step
        else:  # before: at most the samples (untimed) and saves (estimated) still to come
            assert -EXACT <= missing <= 2 * SAMPLE_S + 2 * SAVE_S + EVAL_S * 0.01, ev.step
    # the last step's event comes before its validation (at 60, also the final one) and save
    assert steps[-1].eta_s == pytest.approx(EVAL_S + SAVE_S, abs=EXACT)


def test_the_time_left_of_a_time_budget_ends_where_the_run_ends(clock, tmp_path):
    """Issue 20: the ETA of a 1-minute run was 7 s short all along. Now duration + time left
    is the run's end within one step at every step, and exactly at its last."""
    cfg = tc(steps=None, minutes=1.0, eval_every=20, checkpoint_every=40)
    steps, summary, spent = run_with_clock(clock, cfg, tmp_path / "m.npz")
    end = summary.duration_s
    assert end == pytest.approx(spent, abs=EXACT)
    assert 60.0 - STEP_S - EXACT <= end <= 60.0 + EXACT  # the budget, final work included
    for ev in steps[:-1]:
        assert abs(ev.duration_s + ev.eta_s - end) <= STEP_S + EXACT, ev.step
        assert ev.total_is_estimate  # "about N" until the run ends
    last = steps[-1]
    assert not last.total_is_estimate and last.total_steps == last.step == summary.steps
    assert last.duration_s + last.eta_s == pytest.approx(end, abs=EXACT)


def test_chars_per_sec_of_every_event_is_over_the_run_so_far(clock, tmp_path):
    cfg = tc(steps=30, eval_every=10)
    steps, summary, _ = run_with_clock(clock, cfg, tmp_path / "m.npz")
    per_step = cfg.batch_size * cfg.seq_len
    for ev in steps:
        assert ev.chars_per_sec == pytest.approx(ev.step * per_step / ev.duration_s, rel=EXACT)
    assert summary.chars_per_sec == pytest.approx(30 * per_step / summary.duration_s, rel=EXACT)


# ------------------------------------------------------------------ every view, one figure


def test_every_command_line_view_shows_one_duration_and_one_speed(
    text, capsys, monkeypatch, tmp_path
):
    """The train command's progress and last lines, `charlstm runs` and `runs show` show the
    same duration and chars/s for one run (they showed 0:00:39, 0:00:53, 0:01:02 and 0:00:28).
    The run's clock advances 0.37 s a reading, so its duration is far from the real wall time
    between the run's start and end that `runs` used to show."""
    now = {"t": 1000.0}

    def fake_now() -> float:
        now["t"] += 0.37
        return now["t"]

    monkeypatch.setattr(measures, "now", fake_now)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "200")  # the whole progress line
    code, _, err = run_cli(capsys, "train", text, *TINY, "--steps", 30, "--out", "m.npz")
    assert code == 0
    progress = err.split("\r")
    final_line = [p for p in progress if p.startswith("step 30/30")][-1]
    took = re.search(r"(\d+:\d\d:\d\d) elapsed \| ETA (\S+)", final_line)
    cps = re.search(r"\| ([\d,]+) chars/s \|", final_line).group(1)
    assert took.group(2) == "0:00:00" and "(100%)" in final_line
    duration = took.group(1)
    assert duration != "0:00:00" and f"trained to step 30 in {duration}, " in err
    with RunStore.open() as store:
        (run,) = store.list_runs()
    assert measures.duration_text(run.duration_s) == duration
    assert f"{run.chars_per_sec:,.0f}" == cps
    code, out, _ = run_cli(capsys, "runs")
    assert code == 0 and duration in out and cps in out
    code, out, _ = run_cli(capsys, "runs", "show", run.id)
    assert code == 0
    assert re.search(rf"duration:\s+{duration} \(wall-clock time from the run's first step", out)
    assert re.search(rf"chars/s:\s+{cps} ", out)
