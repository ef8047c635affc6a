"""What the trainer adds to a bare engine step: healing, bookkeeping, events (and recording).

The reference is the bare step the trainer is built on, run in the same process: the engine's
``loss_and_grads`` (forward, softmax, backward), ``global_norm`` and ``update`` (clip + Adam), the
state carried, on the same batch shapes. The trainer runs the same steps as ``Trainer.run()`` with
evaluation, samples and autosaves off, so what differs is only what the trainer does around the
step: the divergence detector, the in-memory copy kept for a rollback every
``charlstm_core.training.heal.KEEP_EVERY`` steps, the stream cursor, the history and the events.
With ``--record`` it runs the trainer inside a training session (charlstm_core.training.session,
as every front end does): the run store's recorder fed with every event, and the session's own
work around each one (stop checks, the mean speed, its events).
The two alternate in repeats; the table gives the median over repeats of each one's mean chars/s
(after a first, warm-up step) and the ratio trainer / bare step.

    .venv/bin/python benchmarks/bench_trainer_overhead.py     # L=1 H=512 B=32 T=50 (defaults)
    .venv/bin/python benchmarks/bench_trainer_overhead.py --layers 2 --seq-len 100 --record

Target: trainer / bare >= 0.97 (what the trainer does around a step costs at most 3%).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
from charlstm_core.config import ModelConfig, TrainConfig  # noqa: E402
from charlstm_core.engine import model  # noqa: E402
from charlstm_core.engine.cpu import CpuEngine  # noqa: E402
from charlstm_core.events import StepEvent  # noqa: E402
from charlstm_core.files.text import corpus_from_text  # noqa: E402
from charlstm_core.training.trainer import Trainer  # noqa: E402

WORDS = "the of and to in is was he for it with as his on be at by had not are but from or".split()


def make_text(n: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    out, size = [], 0
    while size < n:
        line = " ".join(rng.choice(WORDS, size=rng.integers(4, 12))).capitalize() + ".\n"
        out.append(line)
        size += len(line)
    return "".join(out)[:n]


def bare_steps(corpus, mc: ModelConfig, tc: TrainConfig, steps: int) -> float:
    """Seconds per step of the bare engine loop on the trainer's batch shapes."""
    rng = np.random.default_rng(tc.seed)
    engine = CpuEngine(mc)
    params = model.init_params(mc, rng)
    adam = engine.adam(params)
    state = engine.zero_state(tc.batch_size)
    ids = corpus.ids.astype(np.int64)
    seg = (len(ids) - 1) // tc.batch_size
    starts = np.arange(tc.batch_size) * seg
    times = []
    for j in range(steps + 1):  # the first step warms up and is not counted
        pos = (starts + (j * tc.seq_len) % (seg - tc.seq_len))[:, None] + np.arange(tc.seq_len)
        x, y = ids[pos], ids[pos + 1]
        t0 = time.perf_counter()
        loss, grads, state = engine.loss_and_grads(params, x, y, state, rng)
        engine.update(adam, params, grads, tc.lr, tc.clip, engine.global_norm(grads))
        times.append(time.perf_counter() - t0)
    return sum(times[1:]) / steps


def trainer_steps(corpus, mc: ModelConfig, tc: TrainConfig, steps: int, record: bool) -> float:
    """Seconds per step inside ``Trainer.run()`` (with ``record``: inside a recorded training
    session's ``run()``): the time from the first step event to the last over the steps between
    them (a mean, so the periodic rollback copies count)."""
    if record:
        from charlstm_core.training.session import Session, SessionRequest

        folder = tempfile.mkdtemp(prefix="bench-trainer-")
        request = SessionRequest(
            text=corpus, model_config=mc, train_config=tc,
            runs_db=os.path.join(folder, "runs.sqlite"),
        )  # fmt: skip
        events = Session(request).run()
    else:
        events = Trainer(corpus, mc, tc).run()
    stamps = [time.perf_counter() for event in events if isinstance(event, StepEvent)]
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=50)
    p.add_argument("--steps", type=int, default=120, help="steps per repeat (>= 101 for a keep)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--record", action="store_true", help="feed the run store's recorder too")
    args = p.parse_args(argv)

    corpus = corpus_from_text(make_text(400_000), name="words.txt")
    mc = ModelConfig(vocab_size=corpus.vocab.size, hidden_size=args.hidden,
                     num_layers=args.layers)  # fmt: skip
    tc = TrainConfig(batch_size=args.batch_size, seq_len=args.seq_len, steps=args.steps,
                     eval_every=0, sample_every=0, checkpoint_every=0,
                     val_fraction=0.0)  # fmt: skip
    chars = args.batch_size * args.seq_len
    bare, inside = [], []
    for _ in range(args.repeats):
        bare.append(chars / bare_steps(corpus, mc, tc, args.steps))
        inside.append(chars / trainer_steps(corpus, mc, tc, args.steps, args.record))
    b, t = statistics.median(bare), statistics.median(inside)
    what = "session + recorder" if args.record else "trainer"
    print(f"L={args.layers} H={args.hidden} B={args.batch_size} T={args.seq_len}, "
          f"{args.steps} steps x {args.repeats} repeats, "
          "mean chars/s over the steps after the first")  # fmt: skip
    print(f"  bare engine step : {b:10,.0f}   ({', '.join(f'{v:,.0f}' for v in bare)})")
    print(f"  {what:<17}: {t:10,.0f}   ({', '.join(f'{v:,.0f}' for v in inside)})")
    print(f"  ratio {what} / bare = {t / b:.3f}  (target >= 0.97)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
