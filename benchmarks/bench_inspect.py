"""Figures of issue 11 against their targets: passage analysis, unit ranking, memorisation index.

    python benchmarks/bench_inspect.py            # full: L=2, H=512, 2,000 characters; 100 MB index
    python benchmarks/bench_inspect.py --mb 10    # a shorter index run (the 10 s target scaled)

Each line prints the figure, its target and figure / target (≤ 1 meets it). The text is made
here: English-like words from a fixed seed with quotes, brackets and indented lines, so that
common grams recur as in real prose. Peak memory of the build is the tracemalloc peak (NumPy
reports its buffers to it).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
from charlstm_core.config import ModelConfig
from charlstm_core.copies import CopyIndex
from charlstm_core.data import Vocab
from charlstm_core.inspect import analyse, detectors, rank_units
from charlstm_core.model import init_params
from charlstm_core.modelfile import ModelFile
from charlstm_core.parallel import blas_threads, single_threaded_blas

WORDS = (
    "the of and to a in that is was he for it with as his on be at by had not are but from or "
    "have an they which one you were her all she there would their we him been has when who "
    "will more no if out so said what up its about into than them can only other new some "
    "could time these two may then do first any my now such like our over man me even most"
).split()


def make_text(n_chars: int, seed: int = 0) -> str:
    """About ``n_chars`` characters of word salad with line structure, quotes and brackets
    (Zipf-distributed words, 12 a line; vectorised so that 100 MB takes seconds, not minutes)."""
    rng = np.random.default_rng(seed)
    n_lines = n_chars // 35 + 1  # lines average ~50 characters: overshoot, then cut
    vocab = np.array(WORDS, dtype=object)
    words = vocab[rng.zipf(1.3, (n_lines, 12)) % len(WORDS)]
    kind = rng.random(n_lines)
    indent = rng.integers(0, 3, n_lines)
    parts: list[str] = []
    for row, r, ind in zip(words.tolist(), kind.tolist(), indent.tolist(), strict=True):
        line = " ".join(row)
        if r < 0.2:
            line = f'"{line}"'
        elif r < 0.3:
            line = f"({line})"
        parts.append("    " * ind + line.capitalize() + ".\n")
    return "".join(parts)[:n_chars]


def report(name: str, value: float, target: float, unit: str) -> None:
    ratio = value / target
    print(f"{name:<42} {value:10.3f} {unit:<3} target {target:8.3f} {unit:<3} ratio {ratio:6.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100.0, help="training text size for the index")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--chars", type=int, default=2000, help="passage length")
    args = ap.parse_args()

    text = make_text(args.chars, seed=1)
    vocab = Vocab.from_text(make_text(200_000, seed=2) + text)
    cfg = ModelConfig(vocab.size, args.hidden, args.layers, dropout=0.0)
    model = ModelFile(cfg, init_params(cfg, np.random.default_rng(0)), vocab)
    analyse(model, text[:50])  # warm-up: first-call allocations, BLAS threads
    # as the app reads a passage beside a running training: BLAS on one thread
    with single_threaded_blas():
        t0, c0 = time.perf_counter(), time.process_time()
        analyse(model, text)
        ts, cs = time.perf_counter() - t0, time.process_time() - c0
    # alone (the command line, an opened model in the app): every BLAS thread
    t0, c0 = time.perf_counter(), time.process_time()
    a = analyse(model, text)
    t1, c1 = time.perf_counter(), time.process_time()
    rank_units(a, detectors(text), "c")
    rank_units(a, detectors(text), "h")
    t2, c2 = time.perf_counter(), time.process_time()
    what = f"analyse {args.chars:,} chars, L={args.layers} H={args.hidden}"
    report(f"{what}, alone ({blas_threads()} BLAS thr.)", t1 - t0, 1.0, "s")
    print(f"  (CPU time {c1 - c0:.3f} s)")
    report(f"{what}, 1 BLAS thread (beside training)", ts, 1.0, "s")
    print(f"  (CPU time {cs:.3f} s: on a busy machine, what the wall time would be alone)")
    report("detectors + ranking (c and h)", t2 - t1, 1.0, "s")
    print(f"  (CPU time {c2 - c1:.3f} s)")

    n_bytes = int(args.mb * 1e6)
    train = make_text(n_bytes, seed=3)
    tv = Vocab.from_text(train)
    ids = tv.encode(train)
    del train
    tracemalloc.start()
    t0 = time.perf_counter()
    index = CopyIndex.build(ids, tv, n=20)
    t1 = time.perf_counter()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    scale = args.mb / 100.0
    report(f"index build, {args.mb:g} MB", t1 - t0, 10.0 * scale, "s")
    label = f"index build peak memory (+ {ids.nbytes / 1e6:.0f} MB ids)"
    report(label, peak / 1e9, 1.0 * scale, "GB")

    rng = np.random.default_rng(4)
    generated = make_text(10_000, seed=5)
    # plant a few real copies, as a model that memorises would write them
    pieces = []
    for start in rng.integers(0, len(ids) - 200, 5):
        pieces.append(tv.decode(ids[start : start + int(rng.integers(20, 200))]))
    generated = (generated[:5000] + "".join(pieces) + generated[5000:])[:10_000]
    index.find(generated[:100])
    t0 = time.perf_counter()
    copies = index.find(generated)
    t1 = time.perf_counter()
    report("check 10,000 generated chars", t1 - t0, 0.2, "s")
    print(f"  ({copies.summary()}, {len(copies.spans)} spans)")


if __name__ == "__main__":
    main()
