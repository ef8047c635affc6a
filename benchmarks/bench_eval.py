"""``charlstm eval`` speed and memory against issue 9's targets, printed as ratios.

Targets: a 2,000,000-character text at L=1, H=512 evaluates in at most 120 s on 2 cores; memory
stays bounded whatever ``--streams`` is (it used 5.3 GB with --streams 4096 on 100 MB before).

    python benchmarks/bench_eval.py              # the real figures (2 M characters; minutes)
    python benchmarks/bench_eval.py --short      # a 100,000-character run, time scaled to 2 M

Prints, each beside its target: seconds for the text with the default streams (scaled to 2 M
characters in --short mode), peak traced memory of that run and of a --streams 4096 run, and how
far the default (streams warmed up on 256 characters) is from the exact sequential loss on a
slice of the text. A random model measures speed and memory; give --model and --text for a
trained model's approximation figure (random weights forget little and say little about it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from charlstm_core.config import ModelConfig  # noqa: E402
from charlstm_core.engine.model import init_params  # noqa: E402
from charlstm_core.files.modelfile import ModelFile, load_model  # noqa: E402
from charlstm_core.files.text import Vocab, load_corpus  # noqa: E402
from charlstm_core.sample import default_streams, evaluate  # noqa: E402

TARGET_S = 120.0  # seconds for 2 M characters at L=1, H=512 on 2 cores
TARGET_CHARS = 2_000_000
MEMORY_BUDGET = 512 << 20  # bytes: "bounded" means far below the 5.3 GB seen, for any --streams


def _random_model(hidden: int, layers: int) -> ModelFile:
    vocab = Vocab.from_text("".join(chr(c) for c in range(32, 127)) + "\n")
    cfg = ModelConfig(vocab_size=vocab.size, hidden_size=hidden, num_layers=layers)
    return ModelFile(cfg, init_params(cfg, np.random.default_rng(0)), vocab)


def _measure(fn) -> tuple[object, float, int]:
    """(result, seconds, peak traced bytes) of ``fn()``."""
    tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, seconds, peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--short", action="store_true", help="100,000 characters, time scaled to 2 M")
    p.add_argument("--chars", type=int, help="characters of text (default 2 M, or 100 k --short)")
    p.add_argument("--model", help="a trained model file (default: random L=1, H=512)")
    p.add_argument("--text", help="a text the model can read (default: random characters)")
    p.add_argument(
        "--exact-chars",
        type=int,
        default=20_000,
        help="characters compared with the exact sequential loss (default 20,000)",
    )
    args = p.parse_args()
    n = args.chars or (100_000 if args.short else TARGET_CHARS)
    model = load_model(args.model) if args.model else _random_model(512, 1)
    if args.text:
        ids = load_corpus(args.text, vocab=model.vocab).ids[:n]
    else:
        ids = np.random.default_rng(1).integers(0, model.vocab.size, n).astype(np.uint8)
    n = len(ids)
    cfg = model.config
    print(f"model L={cfg.num_layers}, H={cfg.hidden_size}, V={cfg.vocab_size}; text {n:,} chars")

    # the streams a 2 M text gets by default, also in --short mode (BLAS speed depends on them)
    streams = default_streams(max(n, TARGET_CHARS))
    res, secs, peak = _measure(lambda: evaluate(model, ids, streams=streams))
    # characters read: the text plus each later stream's warm-up; a 2 M text reads the same
    # warm-ups, so the time scales by characters read
    warm = res.warmup * (res.streams - 1)
    scaled = secs * (TARGET_CHARS + warm) / (n + warm)
    print(f"default eval ({res.streams} streams, warm-up {res.warmup}): {secs:.1f} s for "
          f"{n:,} chars -> {scaled:.1f} s per 2 M chars; target {TARGET_S:.0f} s; "
          f"ratio {scaled / TARGET_S:.2f} (<= 1 meets it)")  # fmt: skip
    print(f"peak memory, default streams: {peak / 2**20:.0f} MiB; budget "
          f"{MEMORY_BUDGET / 2**20:.0f} MiB; ratio {peak / MEMORY_BUDGET:.2f}")  # fmt: skip
    part = ids[: min(n, 200_000)]
    _, secs2, peak2 = _measure(lambda: evaluate(model, part, streams=4096, warmup=8))
    print(f"peak memory, --streams 4096 --warmup 8 ({len(part):,} chars, {secs2:.1f} s): "
          f"{peak2 / 2**20:.0f} MiB; budget {MEMORY_BUDGET / 2**20:.0f} MiB; "
          f"ratio {peak2 / MEMORY_BUDGET:.2f}")  # fmt: skip
    m = min(n, args.exact_chars)
    exact, secs3, _ = _measure(lambda: evaluate(model, ids[:m], streams=1))
    fast = evaluate(model, ids[:m], streams=max(1, m // 2048))
    diff = abs(fast.nats - exact.nats) / exact.nats
    print(f"approximation on {m:,} chars: {fast.streams} streams {fast.nats:.6f} vs exact "
          f"{exact.nats:.6f} nats/char ({secs3:.1f} s): relative difference {diff:.2e}; "
          f"target 1e-3; ratio {diff / 1e-3:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
