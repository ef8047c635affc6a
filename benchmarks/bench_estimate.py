"""How close the settings check's time per step (charlstm_core.training.plan) comes to real runs,
on three
texts.

For each text the estimate is made exactly as the app makes it (``measure_timing`` at the run's
L, H, B, T and the text's vocabulary size, plus its validations and samples), then a real run
of the trainer with the same settings is timed from its first step to its last event. The figure
is estimate / measured (1.00 is perfect; the target is within 0.75..1.25).

The three texts:
  english  tinyshakespeare (../shared/data, or $CHARLSTM_SHAKESPEARE): 65 distinct characters.
  german   German-like text made here from a fixed word list with umlauts and ß, written as
           Latin-1 and read back as latin-1 (about 70 distinct characters).
  cjk      Chinese-like text made here: ideographs drawn from 6,000 (U+4E00...) with Zipf
           frequencies, with CJK punctuation and line breaks (thousands of distinct characters;
           the script prints V).

    python benchmarks/bench_estimate.py            # the real figures: 200 steps per text
    python benchmarks/bench_estimate.py --short    # a quick check that it works (a minute)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from charlstm_core.config import ModelConfig, TrainConfig  # noqa: E402
from charlstm_core.files.text import load_corpus  # noqa: E402
from charlstm_core.training.plan import estimate, measure_timing  # noqa: E402
from charlstm_core.training.trainer import Trainer  # noqa: E402

SHAKESPEARE = os.environ.get(
    "CHARLSTM_SHAKESPEARE", str(ROOT.parent / "shared" / "data" / "tinyshakespeare.txt")
)
GERMAN_WORDS = (
    "der die das und ist nicht ein eine zu mit auf für über über Mädchen Bäume schön Straße "
    "groß Größe Fuß müssen können würde hätte Ärger Öl Übung Käse Brötchen fröhlich Weißbier "
    "heißen Grüße Mühle Tür Hände Häuser Vögel Bücher Füße lächeln während gewöhnlich Stück"
).split()


def german_text(n_chars: int, seed: int = 1) -> str:
    rng = np.random.default_rng(seed)
    out, size = [], 0
    while size < n_chars:
        sentence = " ".join(rng.choice(GERMAN_WORDS, rng.integers(4, 14)))
        sentence = sentence[0].upper() + sentence[1:] + rng.choice([".", "!", "?", ","]) + " "
        if rng.random() < 0.1:
            sentence += "\n"
        out.append(sentence)
        size += len(sentence)
    return "".join(out)[:n_chars]


def cjk_text(n_chars: int, n_distinct: int = 6000, seed: int = 2) -> str:
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, n_distinct + 1)
    p = 1.0 / ranks
    p /= p.sum()
    ideographs = np.array([chr(0x4E00 + i) for i in range(n_distinct)])
    body = ideographs[rng.choice(n_distinct, size=n_chars, p=p)]
    marks = rng.random(n_chars)
    body[marks < 0.06] = "，"
    body[(marks >= 0.06) & (marks < 0.09)] = "。"
    body[(marks >= 0.09) & (marks < 0.095)] = "\n"
    return "".join(body.tolist())


def texts(folder: Path, short: bool) -> list[tuple[str, str, str]]:
    """(label, path, encoding) of the three texts."""
    n = 120_000 if short else 1_000_000
    german = folder / "german.txt"
    german.write_bytes(german_text(n).encode("latin-1"))
    cjk = folder / "cjk.txt"
    cjk.write_text(cjk_text(n // 3 if short else 400_000), encoding="utf-8")
    english = folder / "english.txt"
    english.write_bytes(Path(SHAKESPEARE).read_bytes()[: n if short else None])
    return [
        ("english", str(english), "utf-8"),
        ("german", str(german), "latin-1"),
        ("cjk", str(cjk), "utf-8"),
    ]


def run_one(path: str, encoding: str, mc: ModelConfig, tc: TrainConfig) -> tuple[float, float]:
    """(estimated, measured) seconds per step of a run of ``tc.steps`` steps."""
    corpus = load_corpus(path, encoding=encoding)
    v = corpus.vocab.size
    timing = measure_timing(
        v, mc.hidden_size, mc.num_layers, tc.batch_size, tc.seq_len, dropout=mc.dropout
    )
    n_val = int(corpus.n_chars * tc.val_fraction)
    est = estimate(
        v,
        mc.hidden_size,
        mc.num_layers,
        tc.batch_size,
        tc.seq_len,
        timing,
        eval_every=tc.eval_every,
        val_chars=min(n_val, tc.eval_max_chars),
        sample_every=tc.sample_every,
        sample_length=tc.sample_length,
    )
    trainer = Trainer(corpus, mc, tc)
    t0 = time.perf_counter()
    for _ in trainer.run():
        pass
    measured = (time.perf_counter() - t0) / tc.steps
    return est.seconds_per_step or float("nan"), measured


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", action="store_true", help="a quick check, not the figures")
    args = ap.parse_args()
    # the app's "Quick look" preset as it was when these figures were taken (1,000 steps of H=128,
    # T=64); the short mode validates and samples more often so that
    # their share is still part of what is compared
    mc = ModelConfig(vocab_size=1, hidden_size=128, num_layers=1, dropout=0.0)
    if args.short:
        tc = TrainConfig(
            seq_len=64,
            batch_size=32,
            steps=24,
            eval_every=12,
            sample_every=12,
            sample_length=50,
            checkpoint_every=0,
        )
    else:
        tc = TrainConfig(
            seq_len=64,
            batch_size=32,
            steps=200,
            eval_every=100,
            sample_every=200,
            sample_length=200,
            checkpoint_every=0,
        )
    print(
        f"H={mc.hidden_size} L={mc.num_layers} B={tc.batch_size} T={tc.seq_len}, {tc.steps} "
        f"steps, validation every {tc.eval_every}, {tc.sample_length}-character samples every "
        f"{tc.sample_every}{'  (SHORT MODE: not the figures)' if args.short else ''}"
    )
    print(f"{'text':8} {'V':>6} {'estimate s/step':>16} {'measured s/step':>16} {'ratio':>7}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for label, path, enc in texts(Path(tmp), args.short):
            est, real = run_one(path, enc, mc, tc)
            v = load_corpus(path, encoding=enc).vocab.size
            ratio = est / real
            worst = max(worst, abs(ratio - 1))
            print(f"{label:8} {v:>6,} {est:>16.4f} {real:>16.4f} {ratio:>7.2f}")
    print(f"largest error {worst:.0%} (target: at most 25%)")


if __name__ == "__main__":
    main()
