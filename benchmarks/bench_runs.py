"""Benchmark of the run store (issue 12): what recording costs training, and loading 1,000 runs.

Targets: recording adds < 1% to training time; opening the store and loading 1,000 runs with
their curves (what the app's Runs panel does) takes < 0.5 s. Each figure is printed beside its
target, as a ratio (below 1.00 meets it).

1. Recording overhead, measured two ways on the same training (L=1, H=256, B=32, T=50 by
   default): the time spent inside the recorder's calls (it runs in the training thread, so this
   is what it adds) as a share of the training time; and the wall time of the same run with and
   without recording, alternated, best of ``--repeats`` (noisier: the difference is small).
2. Loading: a store of 1,000 finished runs of ``--points`` training points and one validation
   point per 50 steps each is written once, then opened cold (new connection) and read whole:
   ``RunStore.open`` + ``list_runs`` + ``curves``, best of 3.

    .venv/bin/python benchmarks/bench_runs.py            # the real figures (a few minutes)
    .venv/bin/python benchmarks/bench_runs.py --short    # a quick check that it works
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from charlstm_core.config import ModelConfig, TrainConfig  # noqa: E402
from charlstm_core.files.text import corpus_from_text  # noqa: E402
from charlstm_core.runs import KIND_TRAIN, KIND_VAL, RunRecorder, RunStore  # noqa: E402
from charlstm_core.training.trainer import Trainer  # noqa: E402

TARGET_OVERHEAD = 0.01
TARGET_LOAD_S = 0.5


def _text(n: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    words = "the of and to in is was that for it with as his on be at by had not are but".split()
    return " ".join(rng.choice(words, size=n // 4))[:n]


def _train(steps: int, hidden: int, db: str | None) -> tuple[float, float, float]:
    """(training wall seconds, seconds inside the recorder, of which in ``finish``)."""
    corpus = corpus_from_text(_text(400_000), name="bench.txt")
    tc = TrainConfig(steps=steps, eval_every=max(1, steps // 4), sample_every=0, seq_len=50)
    trainer = Trainer(corpus, ModelConfig(vocab_size=1, hidden_size=hidden), tc)
    inside = 0.0
    recorder = RunRecorder.for_trainer(db, trainer) if db is not None else None
    events = trainer.run()
    t0 = time.perf_counter()
    while True:
        try:
            event = next(events)
        except StopIteration:
            break
        if recorder is not None:  # what the CLI and the app do with each event
            t = time.perf_counter()
            recorder(event)
            inside += time.perf_counter() - t
    wall = time.perf_counter() - t0
    finish = 0.0
    if recorder is not None:  # once per run: last batch, merge the chunks, close (checkpoint)
        t = time.perf_counter()
        recorder.finish(status="finished")
        finish = time.perf_counter() - t
    return wall, inside + finish, finish


def bench_overhead(steps: int, hidden: int, repeats: int, folder: str) -> dict:
    db = os.path.join(folder, "overhead.sqlite")
    with_rec, without, shares, finishes = [], [], [], []
    for _ in range(repeats):
        wall, _, _ = _train(steps, hidden, None)
        without.append(wall)
        wall, inside, finish = _train(steps, hidden, db)
        with_rec.append(wall)
        shares.append(inside / wall)
        finishes.append(finish)
    share = statistics.median(shares)
    ab = min(with_rec) / min(without) - 1.0
    return {"steps": steps, "hidden": hidden, "recorder_share": share, "ab_overhead": ab,
            "best_with_s": min(with_rec), "best_without_s": min(without),
            "finish_s": statistics.median(finishes)}  # fmt: skip


def _fill(db: str, n_runs: int, points: int) -> None:
    """A store of ``n_runs`` finished runs with curves, written as a recorder would leave it."""
    rng = np.random.default_rng(0)
    settings = json.dumps({"model": {"hidden_size": 512, "num_layers": 2},
                           "train": {"batch_size": 32, "seq_len": 50, "lr": 8e-3}})  # fmt: skip
    with RunStore.open(db) as store:
        for i in range(n_runs):
            run_id = store._create_run(
                {
                    "name": f"run {i}",
                    "text_name": "bench.txt",
                    "text_sha256": "0" * 64,
                    "settings": settings,
                    "started": time.time(),
                    "status": "running",
                    "source": "cli",
                }  # fmt: skip
            )
            step = np.arange(1, points + 1, dtype=np.int64)
            loss = 3.0 * np.exp(-step / points) + 0.1 * rng.random(points)
            vstep = step[49::50]
            chunks = [
                (KIND_TRAIN, 0, (step, step * 1600, step * 0.3, loss)),
                (KIND_VAL, 0, (vstep, vstep * 1600, vstep * 0.3, loss[49::50])),
            ]
            store._append(run_id, chunks, {"status": "finished", "ended": time.time(),
                                           "steps": points, "best_val_loss": 1.5})  # fmt: skip


def bench_load(n_runs: int, points: int, folder: str) -> dict:
    db = os.path.join(folder, "load.sqlite")
    t = time.perf_counter()
    _fill(db, n_runs, points)
    fill_s = time.perf_counter() - t
    times = []
    for _ in range(3):
        t = time.perf_counter()
        with RunStore.open(db) as store:
            listed = store.list_runs()
            curves = store.curves([r.id for r in listed])
        times.append(time.perf_counter() - t)
    n_points = sum(len(c.train) + len(c.val) for c in curves.values())
    return {"runs": len(listed), "points": n_points, "best_s": min(times), "fill_s": fill_s,
            "size_mb": os.path.getsize(db) / 1e6}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--short", action="store_true", help="small sizes: checks that it runs")
    p.add_argument("--steps", type=int, help="training steps per run (default 300; short 40)")
    p.add_argument("--hidden", type=int, help="hidden size (default 256; short 64)")
    p.add_argument("--repeats", type=int, help="runs with and without recording (default 3)")
    p.add_argument("--points", type=int, help="training points per stored run (default 5000)")
    args = p.parse_args()
    steps = args.steps or (40 if args.short else 300)
    hidden = args.hidden or (64 if args.short else 256)
    repeats = args.repeats or (1 if args.short else 3)
    points = args.points or (500 if args.short else 5000)
    with tempfile.TemporaryDirectory() as folder:
        o = bench_overhead(steps, hidden, repeats, folder)
        ld = bench_load(1000, points, folder)
    print(f"recording overhead ({o['steps']} steps, H={o['hidden']}, B=32, T=50)")
    print(
        f"  time inside the recorder / training time: {o['recorder_share']:.3%}  "
        f"target < {TARGET_OVERHEAD:.0%}  ratio {o['recorder_share'] / TARGET_OVERHEAD:.2f}  "
        f"(of which {o['finish_s'] * 1e3:.0f} ms once, ending the run)"
    )
    print(
        f"  wall with / without recording - 1:        {o['ab_overhead']:+.3%}  "
        f"target < {TARGET_OVERHEAD:.0%}  ratio {o['ab_overhead'] / TARGET_OVERHEAD:.2f}  "
        f"({o['best_with_s']:.2f} s vs {o['best_without_s']:.2f} s, best of {repeats})"
    )
    print(
        f"loading {ld['runs']:,} runs with {ld['points']:,} curve points "
        f"({ld['size_mb']:.0f} MB; written in {ld['fill_s']:.1f} s)"
    )
    print(f"  open + list + curves: {ld['best_s']:.3f} s  target < {TARGET_LOAD_S} s  "
          f"ratio {ld['best_s'] / TARGET_LOAD_S:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
