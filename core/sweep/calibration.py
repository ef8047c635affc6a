"""Minutes turned into steps before a sweep trains (``charlstm sweep --minutes M --as-steps``).

A ``--minutes`` budget trains as many steps as the machine allows while the point runs, so on a
machine shared with other work (or with ``--jobs`` > 1) two points, or two runs of one point, get
different numbers of steps. Calibration times every point first, one after another, at its own
settings and as a run alone on this machine would train (all its cores, whatever ``--jobs``):
``charlstm_core.training.plan.measure_timing`` makes real engine steps, a validation pass and a few
sampled characters, five times (``REPEATS``, in rounds over the points), and the median of each
cost is kept (``ESTIMATE``). A point's seconds per step ``s`` is the step plus its share of the
validations every ``eval_every`` steps and the samples every ``sample_every``
(``plan.run_seconds_per_step``), and

    steps = max(1, floor((60 M - r) / s))

where ``r`` is what a ``--minutes`` run keeps for its end: one validation pass over the run's
validation characters and the save of weights and Adam moments (``charlstm_core.training.budget``).
The
point then trains for exactly those steps: same seed, same steps, so its result no longer depends
on the load or on ``--jobs``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..config import ModelConfig, TrainConfig
from ..files.text import Corpus, train_val_ids
from ..training.budget import SAVE_BYTES_PER_S
from ..training.plan import Timing, measure_timing, param_count, run_seconds_per_step
from .grid import SweepPoint, usable_cores

REPEATS = 5  # timings of each cost, in rounds; ESTIMATE makes one timing of them
# measure_timing's signature: (vocab, hidden, layers, batch, seq_len, *, dropout, threads) -> Timing
Timer = Callable[..., Timing]
Estimator = Callable[[list[Timing]], Timing]  # a point's timings -> the one its steps come from


@dataclass(frozen=True)
class Calibration:
    """A point's measured cost and the steps it gets."""

    point: SweepPoint  # the point with ``steps`` set
    seconds_per_step: float  # a step with its share of validations and samples
    reserve_s: float  # the final validation and save a --minutes run keeps time for

    @property
    def steps(self) -> int:
        return int(self.point.steps or 0)


def steps_in(minutes: float, seconds_per_step: float, reserve_s: float = 0.0) -> int:
    """The whole steps of ``seconds_per_step`` that fit in ``minutes`` after ``reserve_s``;
    at least one (a --minutes run makes at least one step too)."""
    if seconds_per_step <= 0 or not math.isfinite(seconds_per_step):
        raise ValueError(f"seconds per step must be positive, not {seconds_per_step!r}")
    return max(1, math.floor((60.0 * minutes - reserve_s) / seconds_per_step))


def fastest(timings: list[Timing]) -> Timing:
    """Each cost at its smallest over several timings: other work on the machine only ever
    slows a step down, so the fastest figure is the nearest to the machine's own speed."""
    return Timing(
        step_s=min(t.step_s for t in timings),
        eval_char_s=min(t.eval_char_s for t in timings),
        sample_char_s=min(t.sample_char_s for t in timings),
    )


def typical(timings: list[Timing]) -> Timing:
    """Each cost at its median over several timings: the speed a run meets on most of its
    steps, where the fastest is one lucky moment of a machine whose speed wanders."""
    return Timing(
        step_s=float(np.median([t.step_s for t in timings])),
        eval_char_s=float(np.median([t.eval_char_s for t in timings])),
        sample_char_s=float(np.median([t.sample_char_s for t in timings])),
    )


# How a point's timings make its one timing. benchmarks/check_calibration.py, at 1 minute on
# tinyshakespeare with hidden 128, 256 and 512 (two runs on a quiet 2-core VM whose speed wanders
# by up to 45% over tens of seconds): calibrated / real steps 1.24 and 1.24 on average with the
# fastest, 1.11 and 1.14 with the median.
ESTIMATE: Estimator = typical


def end_reserve_s(timing: Timing, val_chars: int, n_params: int) -> float:
    """Seconds a --minutes run keeps for its end: a validation over ``val_chars`` characters
    (none below two) and the save of float32 weights and Adam's two moments."""
    evaluate = timing.eval_char_s * val_chars if val_chars > 1 else 0.0
    return evaluate + 3 * 4 * n_params / SAVE_BYTES_PER_S


def calibrate_point(
    point: SweepPoint,
    base_model: ModelConfig,
    base_train: TrainConfig,
    corpus: Corpus,
    minutes: float,
    *,
    threads: int | None = None,
    timer: Timer | None = None,
    repeats: int = REPEATS,
    timings: dict[tuple, Timing] | None = None,
    estimate: Estimator | None = None,
) -> Calibration:
    """Time ``point`` on this machine (``timer``, default ``measure_timing``, ``repeats`` times,
    at ``threads`` BLAS threads; default: every usable core) and give it the steps that fit in
    ``minutes`` (see the module docstring). ``timings``: the timings of shapes already measured,
    by shape, dropout and threads (used, and added to)."""
    mc, tc = point.configs(base_model, base_train)
    vocab = corpus.vocab.size
    _, val = train_val_ids(
        corpus, corpus.vocab, tc.batch_size, tc.seq_len, tc.val_fraction, tc.val_split,
        max_val=tc.eval_max_chars,
    )  # fmt: skip
    key = _cost_key(mc, tc, vocab, threads)
    timing = None if timings is None else timings.get(key)
    if timing is None:
        timer = timer or measure_timing  # looked up here, so a test can replace it
        timing = (estimate or ESTIMATE)([_time(timer, key) for _ in range(max(1, repeats))])
        if timings is not None:
            timings[key] = timing
    per_step = run_seconds_per_step(
        timing,
        eval_every=tc.eval_every,
        val_chars=len(val),
        sample_every=tc.sample_every,
        sample_length=tc.sample_length,
    )
    reserve = end_reserve_s(timing, len(val), param_count(vocab, mc.hidden_size, mc.num_layers))
    steps = steps_in(minutes, per_step, reserve)
    return Calibration(dataclasses.replace(point, steps=steps), per_step, reserve)


def calibrate(
    points: list[SweepPoint],
    base_model: ModelConfig,
    base_train: TrainConfig,
    corpus: Corpus,
    minutes: float,
    *,
    threads: int | None = None,
    timer: Timer | None = None,
    repeats: int = REPEATS,
    on_point: Callable[[Calibration], None] | None = None,
    stop: threading.Event | None = None,
    estimate: Estimator | None = None,
) -> list[Calibration]:
    """Every point timed, one timing at a time (never two at once: they would slow each other),
    then given its steps in grid order; ``on_point`` sees each calibration. Setting ``stop``
    (from another thread) ends the timing before the next measurement: the result is then [].

    Points whose step costs the same (the same shape, dropout and threads: say, two learning
    rates) share one timing, so they get the same steps. The distinct costs are timed in rounds
    (A, B, C, A, B, C, ...), not one after another (A, A, A, B, B, B): a spell of load on the
    machine then slows one of each cost's timings rather than all of one cost's, and the median
    of each keeps the points' steps in proportion.
    """
    timer = timer or measure_timing  # looked up here, so a test can replace it
    vocab = corpus.vocab.size
    keys = [_cost_key(*p.configs(base_model, base_train), vocab, threads) for p in points]
    seen: dict[tuple, list[Timing]] = {k: [] for k in keys}
    for _ in range(max(1, repeats)):
        for key in seen:
            if stop is not None and stop.is_set():
                return []
            seen[key].append(_time(timer, key))
    timings = {k: (estimate or ESTIMATE)(v) for k, v in seen.items()}
    out = []
    for point in points:
        c = calibrate_point(
            point, base_model, base_train, corpus, minutes, threads=threads, timings=timings
        )
        if on_point is not None:
            on_point(c)
        out.append(c)
    return out


def device_timer(device: str) -> Timer | None:
    """The timer of a point that trains on ``device`` ("cpu": None, the default timer)."""
    if device == "cpu":
        return None
    return functools.partial(measure_timing, device=device)


def _cost_key(mc: ModelConfig, tc: TrainConfig, vocab: int, threads: int | None) -> tuple:
    """What a step's cost depends on: V, H, L, B, T, dropout and the BLAS threads."""
    return (
        vocab, mc.hidden_size, mc.num_layers, tc.batch_size, tc.seq_len, mc.dropout,
        threads or usable_cores(),
    )  # fmt: skip


def _time(timer: Timer, key: tuple) -> Timing:
    return timer(*key[:5], dropout=key[5], threads=key[6])
