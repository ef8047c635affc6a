"""Planning a run before it starts: size, memory, time per step and plain advice (CLI and app).

Parameter counts come from ``charlstm_core.engine.model.param_shapes`` and memory from the arrays a
step
keeps. Time is *measured*, not modelled: a few real optimizer steps of the engine (forward,
backward, clip, Adam) at the run's own L, H, B, T and vocabulary size V, one validation pass over a
few windows and a few sampled characters, all on random ids. A run's time per step is the step plus
its share of the validations and samples made every ``eval_every`` / ``sample_every`` steps.
Measured ``under_load`` (the settings check), it is the time under the load there is: the mean
of steps spanning ``LOAD_WINDOW_S``, with what other programs did with the cores meanwhile
(``Timing.load``, charlstm_core.training.load), so that a busy machine is said and its estimate
made again when the load changes. ``benchmarks/bench_estimate.py`` compares it with real runs on
three kinds of text, on a quiet machine and beside another training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import ModelConfig
from ..errors import ConfigError
from ..files.text import Vocab, split_ids
from .load import LoadMeter, MachineLoad
from .threads import ThreadPolicy

if TYPE_CHECKING:
    from ..engine.protocol import Engine

SHORT_WINDOW = 8  # the shortest window a step is timed at (see measure_timing)
FULL_STEP_BUDGET_S = 1.0  # a step up to this long is timed at its full window
MAX_TIMED_FLOP = 1.6e10  # the largest short step timed as is; bigger: timed on fewer streams
EVAL_WINDOW = 64  # validation is timed in windows of at most this many characters
# Under load, each kind of step is timed over at least this long, in at most this many steps,
# and their mean taken: a busy machine's steps vary several-fold from one to the next (the
# other program's phases, the scheduler's time slices), and over 0.3 s windows the estimate
# was 0.5-2.9x a real run's time per step (benchmarks/bench_estimate.py, busy case).
LOAD_WINDOW_S = 1.0
MAX_REPEATS = 60


# --------------------------------------------------------------------------- size and memory


def param_parts(vocab: int, hidden: int, layers: int) -> dict[str, int]:
    """Parameters by role: ``input`` (layer 0's weights for each character, 4H x V),
    ``recurrent`` (every other LSTM weight and bias: grows as H²) and ``decoder`` (H x V + V).

    The input and decoder parts grow with the vocabulary V, the recurrent one does not.
    """
    from ..engine.model import param_shapes

    shapes = param_shapes(ModelConfig(vocab_size=vocab, hidden_size=hidden, num_layers=layers))
    parts = {"input": 0, "recurrent": 0, "decoder": 0}
    for name, shape in shapes.items():
        role = (
            "input"
            if name == "lstm.weight_ih_l0"
            else "decoder"
            if name.startswith("decoder.")
            else "recurrent"
        )
        parts[role] += int(np.prod(shape))
    return parts


def param_count(vocab: int, hidden: int, layers: int) -> int:
    return sum(param_parts(vocab, hidden, layers).values())


def memory_bytes(
    vocab: int, hidden: int, layers: int, batch: int, seq_len: int, itemsize: int = 4
) -> int:
    """Weights, gradients and two Adam moments, plus the activations kept for backprop.

    Per layer and character the cache holds the 4 gates, c, tanh(c) and h (7H numbers); the
    decoder keeps logits and their gradient (2V).
    """
    weights = 4 * param_count(vocab, hidden, layers)
    activations = batch * seq_len * (layers * 7 * hidden + 2 * vocab)
    return int(itemsize * (weights + activations))


# --------------------------------------------------------------------------- time


def flop_per_char(vocab: int, hidden: int, layers: int) -> float:
    """Floating-point operations of one training character: 2 per multiply-add, forward and
    backward ~3x forward. Layer 0's input is a gathered column, so it costs no product."""
    madds = sum(4 * hidden * ((0 if k == 0 else hidden) + hidden) for k in range(layers))
    return 6.0 * (madds + vocab * hidden)


@dataclass(frozen=True)
class Timing:
    """Measured costs on this machine of one model shape (seconds)."""

    step_s: float  # one optimizer step at B x T: forward, backward, clip, Adam
    eval_char_s: float  # one validation character (forward and loss, streams side by side)
    sample_char_s: float  # one generated character (a B=1 forward step and a draw)
    load: MachineLoad | None = None  # what other programs did with the cores meanwhile
    threads: int | None = None  # the BLAS threads it was timed on (None: as BLAS was set)


def _best_of(fn, repeats: int, under_load: bool = False) -> float:
    """The best of ``repeats`` timings of ``fn()`` (what the machine does alone); ``under_load``:
    the mean of at least ``repeats`` spanning ``LOAD_WINDOW_S`` (at most ``MAX_REPEATS``), what
    a run meets beside the other programs there are (the mean: a run's time is the sum of its
    steps, and a busy machine makes a few of them much slower)."""
    times: list[float] = []
    while True:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= repeats and (
            not under_load or sum(times) >= LOAD_WINDOW_S or len(times) >= MAX_REPEATS
        ):
            break
    return statistics.fmean(times) if under_load else min(times)


def measure_timing(
    vocab: int,
    hidden: int,
    layers: int,
    batch: int,
    seq_len: int,
    *,
    dropout: float = 0.0,
    dtype: str = "float32",
    budget_s: float = FULL_STEP_BUDGET_S,
    threads: int | None = None,
    device: str = "cpu",
    under_load: bool = False,
    policy: ThreadPolicy | None = None,
) -> Timing:
    """Time the engine's own step, validation and sampling at these settings (seconds).

    The step is timed at the run's full window T when a step takes up to about ``budget_s``
    (on fewer than B streams, scaled up, when even a short step would exceed MAX_TIMED_FLOP);
    a longer one is timed at SHORT_WINDOW characters and at the longest window that fits the
    budget, and extended along the line through the two (the products and gate work grow with
    T; the Adam update and the fixed costs do not). Validation is timed as the trainer runs it
    (EVAL_STREAMS streams, in windows of T up to EVAL_WINDOW), sampling on a few drawn
    characters. Each figure is the best of a few runs after a warm-up, so a busy moment of the
    machine counts less (a sweep's calibration: what the machine does alone); ``under_load``
    (the settings check) the mean of steps spanning ``LOAD_WINDOW_S``, the time a run meets
    beside the programs running now, and ``Timing.load`` says what they did with the cores.
    ``threads``: the BLAS threads the run will use (None: as set now). ``policy``: the run's
    thread policy instead (charlstm_core.training.threads): its thread count; with ``measure``,
    1 thread is timed too and the faster kept, as the run's first steps will; and its ``nice``
    value, the measurement running as nice (on a thread of its own), since on a busy machine a
    nicer run gets a smaller share of the cores.
    ``device``: where the run trains ("cpu", "gpu", "gpu:N", "auto"; see
    charlstm_core.engine.devices); on
    a GPU its engine's step, validation and sampling are timed (each step synchronised). Raises
    ConfigError when the machine has not the memory for a step (GpuMemoryError on a GPU,
    DeviceUnavailableError when the device cannot be used).
    """
    from ..engine.devices import make_engine

    cfg = ModelConfig(
        vocab_size=vocab, hidden_size=hidden, num_layers=layers, dropout=dropout, dtype=dtype
    )
    engine = make_engine(device, cfg)
    candidates: tuple[int | None, ...] = (threads,)
    nice = 0
    if policy is not None:
        candidates = (policy.threads,)
        if policy.measure and policy.threads and policy.threads > 1:
            candidates = (policy.threads, 1)
        nice = policy.nice
    shape = (vocab, hidden, layers, batch, seq_len, dropout, dtype, budget_s)
    meter = LoadMeter()
    meter.start()
    try:
        timing = _as_nice(nice, lambda: _measure(*shape, engine, under_load, candidates))
        return dataclasses.replace(timing, load=meter.load())
    except MemoryError:
        need = memory_bytes(vocab, hidden, layers, batch, seq_len) / 1e9
        raise ConfigError(
            f"This machine has not the memory for a training step of this model (it needs "
            f"about {need:,.1f} GB). Choose a smaller hidden size, fewer layers or a smaller batch."
        ) from None


def _as_nice(nice: int, work: Callable[[], Timing]) -> Timing:
    """``work()``, on a thread ``nice`` steps nicer than this one when ``nice`` > 0 (a thread
    cannot take a lowered priority back: charlstm_core.engine.parallel.lower_priority)."""
    if nice <= 0:
        return work()
    from ..engine.parallel import lower_priority

    out: list[Any] = []

    def run() -> None:
        lower_priority(nice)
        try:
            out.append(work())
        except BaseException as e:  # noqa: BLE001 - raised again in the caller's thread
            out.append(e)

    worker = threading.Thread(target=run, name="measure-timing", daemon=True)
    worker.start()
    worker.join()
    if isinstance(out[0], BaseException):
        raise out[0]
    return out[0]


def _threads(n: int | None) -> contextlib.AbstractContextManager:
    from ..engine.parallel import blas_thread_count

    return blas_thread_count(n) if n else contextlib.nullcontext()


class _Probe:
    """A fresh model of one shape on an engine, with random ids to time it on: its training
    step at a window of ``t`` characters, a validation pass and a short sample."""

    def __init__(self, cfg: ModelConfig, streams: int, seq_len: int, engine: Engine) -> None:
        from ..engine.model import init_params
        from .trainer import EVAL_STREAMS

        self.rng = rng = np.random.default_rng(0)
        self.cfg = cfg
        self.params = init_params(cfg, rng)
        self.x = rng.integers(0, cfg.vocab_size, (streams, seq_len + 1))
        self.engine = engine = engine.for_config(cfg)
        self.dev_params = {k: engine.to_device(v) for k, v in self.params.items()}
        self.adam = engine.adam(self.dev_params)
        self.state = engine.zero_state(streams)
        self.first = next(iter(self.dev_params))
        self.eval_streams = EVAL_STREAMS
        self.window = min(seq_len, EVAL_WINDOW)  # longer windows cost the same per character
        self.n_eval = EVAL_STREAMS * self.window * max(1, 2 * SHORT_WINDOW // self.window) + 1
        self.n_sample = 24

    def step(self, t: int) -> None:
        e, p, x = self.engine, self.dev_params, self.x
        _, grads, _ = e.loss_and_grads(p, x[:, :t], x[:, 1 : t + 1], self.state, self.rng)
        norm = e.global_norm(grads)
        e.update(self.adam, p, grads, 1e-9, 5.0, norm)  # the weights stay a fresh model's
        e.to_host(p[self.first][:1])  # waits for the update's kernels on a GPU

    def validate(self, ids: np.ndarray) -> None:
        self.engine.mean_loss(self.dev_params, ids, streams=self.eval_streams, seq_len=self.window)

    def sample(self, model: Any) -> None:
        from ..sample import generate

        list(generate(model, length=self.n_sample, seed=0, engine=self.engine))


def _measure(
    vocab: int,
    hidden: int,
    layers: int,
    batch: int,
    seq_len: int,
    dropout: float,
    dtype: str,
    budget_s: float,
    engine: Engine,
    under_load: bool = False,
    candidates: tuple[int | None, ...] = (None,),
) -> Timing:
    """measure_timing's work, on ``engine`` (charlstm_core.engine.protocol; any device), at the
    faster of the BLAS thread counts ``candidates`` (None: as set)."""
    from ..engine.memory import keep_freed_memory
    from ..files.modelfile import ModelFile

    keep_freed_memory()  # as the trainer does: steps reuse the last one's memory
    cfg = ModelConfig(
        vocab_size=vocab, hidden_size=hidden, num_layers=layers, dropout=dropout, dtype=dtype
    )
    short = min(seq_len, SHORT_WINDOW)
    # A huge step (say B=4096 at H=2048) is timed on fewer streams and scaled up: its time is
    # then all products, which grow in proportion to B.
    timed = max(1, min(batch, int(MAX_TIMED_FLOP / (flop_per_char(vocab, hidden, layers) * short))))
    probe = _Probe(cfg, timed, seq_len, engine)
    shorts = {}
    for n in candidates:  # the run's count, and 1 when the run's first steps compare them
        with _threads(n):
            probe.step(short)  # warm-up (allocations, thread pools)
            shorts[n] = _best_of(lambda: probe.step(short), 3, under_load)
    chosen = min(shorts, key=shorts.__getitem__)
    with _threads(chosen):
        t_short = shorts[chosen]
        if seq_len == short:
            step_s = t_short
        else:
            # the longest window whose step fits the budget (a step grows at most linearly in T)
            fits = int(budget_s / max(t_short, 1e-9) * short)
            long = max(min(seq_len, fits), min(seq_len, 2 * SHORT_WINDOW))
            repeats = 3 if t_short * long / short < 0.3 else 2
            t_long = _best_of(lambda: probe.step(long), repeats, under_load)
            per_char = max(t_long - t_short, 0.0) / (long - short)
            step_s = t_long + per_char * (seq_len - long)
        step_s *= batch / timed
        ids = probe.rng.integers(0, vocab, probe.n_eval)
        eval_s = _best_of(lambda: probe.validate(ids), 3, under_load)
        codes = itertools.chain(range(32, 0xD800), range(0xE000, 0x110000))  # no surrogates
        chars = tuple(chr(c) for c in itertools.islice(codes, vocab))
        model = ModelFile(config=cfg, params=probe.params, vocab=Vocab(chars))
        sample_s = _best_of(lambda: probe.sample(model), 3, under_load) / probe.n_sample
    return Timing(
        step_s=step_s,
        eval_char_s=eval_s / (probe.n_eval - 1),
        sample_char_s=sample_s,
        threads=chosen,
    )


def run_seconds_per_step(
    timing: Timing,
    *,
    eval_every: int,
    val_chars: int,
    sample_every: int,
    sample_length: int,
) -> float:
    """Average wall-clock seconds per step of a run: the step plus its share of validations
    (``val_chars`` characters every ``eval_every`` steps) and samples. 0 means never."""
    per_step = timing.step_s
    if eval_every and val_chars > 1:
        per_step += timing.eval_char_s * val_chars / eval_every
    if sample_every:
        per_step += timing.sample_char_s * sample_length / sample_every
    return per_step


@dataclass(frozen=True)
class Estimate:
    """What the settings check shows before a run: size, memory and (once measured) time."""

    vocab: int  # V, the text's distinct characters
    params: int
    parts: dict[str, int]  # param_parts
    memory: int
    seconds_per_step: float | None  # run_seconds_per_step; None until measured
    step_s: float | None  # the optimizer step alone
    load: MachineLoad | None = None  # the load it was measured under (None: not measured)


def estimate(
    vocab: int,
    hidden: int,
    layers: int,
    batch: int,
    seq_len: int,
    timing: Timing | None = None,
    *,
    eval_every: int = 0,
    val_chars: int = 0,
    sample_every: int = 0,
    sample_length: int = 0,
) -> Estimate:
    """Size and memory at once; the time per step when ``timing`` (of these settings) is given."""
    sps = None
    if timing is not None:
        sps = run_seconds_per_step(
            timing,
            eval_every=eval_every,
            val_chars=val_chars,
            sample_every=sample_every,
            sample_length=sample_length,
        )
    return Estimate(
        vocab=vocab,
        params=param_count(vocab, hidden, layers),
        parts=param_parts(vocab, hidden, layers),
        memory=memory_bytes(vocab, hidden, layers, batch, seq_len),
        seconds_per_step=sps,
        step_s=None if timing is None else timing.step_s,
        load=None if timing is None else timing.load,
    )


# --------------------------------------------------------------------------- advice


# Dropout from which a model with more parameters than its text has characters is not expected
# to memorise it: two layers of 512 (3.3 M parameters) at 0.5 on the two 1 MB texts of
# benchmarks/sweep_presets.py, an hour (benchmarks/README.md, "an hour on 1 MB").
HEAVY_DROPOUT = 0.4


def size_advice(parts: dict[str, int], vocab: int, train_chars: int, dropout: float = 0.0) -> str:
    """A plain-language judgement of model size against the amount of training text, with
    advice aimed at the part of the model that holds most parameters (``param_parts``) and
    tempered by ``dropout`` (see HEAVY_DROPOUT)."""
    if train_chars <= 0:
        return ""
    total = max(sum(parts.values()), 1)
    ratio = train_chars / total
    per_char = parts["input"] + parts["decoder"]
    share = round(100 * per_char / total)
    if ratio < 0.5:
        if per_char >= parts["recurrent"]:
            return (
                f"The model has far more parameters than the text has characters, and {share}% "
                f"of them are weights for each of the {vocab:,} distinct characters (input "
                f"{round(100 * parts['input'] / total)}%, output "
                f"{round(100 * parts['decoder'] / total)}%): rare characters get weights that "
                "see few examples. More text helps most; a smaller hidden size shrinks these "
                "weights only in proportion; raise dropout against memorising."
            )
        if dropout >= HEAVY_DROPOUT:
            return (
                "The model has more parameters than the text has characters, but its dropout "
                f"of {dropout:g} holds it back from memorising the text: at 0.5, two layers of "
                "512 trained for an hour on 1 MB texts ended within 0.015 of their best "
                "validation loss. Watch the validation loss, and use a smaller model if it turns "
                "up early."
            )
        return (
            "The model has far more parameters than the text has characters: it will memorise "
            "the text rather than learn to write. Most are the recurrent weights, which grow as "
            "the square of the hidden size: use a smaller hidden size or fewer layers, more "
            "text, or raise dropout."
        )
    if ratio < 2:
        return (
            "Parameters and characters are of the same order: expect overfitting after a few "
            "epochs — watch the validation loss and stop when it turns up."
        )
    if ratio > 200:
        return (
            "The text is large for this model: it will keep improving for a long time; a "
            "bigger hidden size would learn more if you can afford the time."
        )
    return "A good match of model size and text size."


@dataclass(frozen=True)
class UnseenChars:
    """Characters of the validation part that the training part never shows."""

    distinct: int  # how many distinct characters
    occurrences: int  # how many places in the validation part hold one
    examples: tuple[str, ...]  # the most frequent few, most frequent first


def unseen_in_validation(
    ids: np.ndarray, vocab: Vocab, val_fraction: float, how: str = "last", limit: int = 8
) -> UnseenChars:
    """Which validation characters the model can never learn from the training part.

    The model is scored on them with weights no training step has used, so they raise the
    validation loss whatever the model learns; ``how="blocks"`` usually removes most of them.
    """
    train, val = split_ids(ids, val_fraction, how)
    if val.size == 0:
        return UnseenChars(0, 0, ())
    in_train = np.bincount(train, minlength=vocab.size) > 0
    val_counts = np.bincount(val, minlength=vocab.size)
    unseen = np.flatnonzero((val_counts > 0) & ~in_train)
    order = unseen[np.argsort(-val_counts[unseen], kind="stable")]
    return UnseenChars(
        distinct=int(unseen.size),
        occurrences=int(val_counts[unseen].sum()),
        examples=tuple(vocab.chars[int(i)] for i in order[:limit]),
    )


def unseen_message(unseen: UnseenChars, how: str) -> str:
    """One or two sentences about ``unseen``; "" when there are none."""
    if unseen.distinct == 0:
        return ""
    shown = " ".join(repr(c) if not c.isprintable() or c.isspace() else c for c in unseen.examples)
    part = "the last part" if how == "last" else "the validation blocks"
    text = (
        f"{unseen.distinct:,} distinct characters of {part} ({unseen.occurrences:,} places) never "
        f"occur in the training part, e.g. {shown}: the model cannot learn them and they raise "
        "the validation loss."
    )
    if how == "last":
        text += " Taking validation from evenly spaced blocks instead usually avoids this."
    return text
