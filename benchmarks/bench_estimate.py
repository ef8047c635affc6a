"""How close the settings check's estimates (charlstm_core.training.plan) and a run's time left
(charlstm_core.training.measures) come to real runs: on a quiet machine and on a busy one.

Three cases, each printed as ratios (estimate / real; 1.00 is perfect):

  quiet   the time per step on three texts, the estimate made exactly as the app makes it
          (``measure_timing`` at the run's L, H, B, T and the text's vocabulary size, plus its
          validations and samples), then a real run of the trainer with the same settings,
          timed from its first step to its last event. Target: within 0.75..1.25.
  busy    the same beside a second process that trains (``charlstm train`` on the English
          text, default settings, as another user's training would): the estimate is measured
          under that load and compared with a real run under it. Prints what the load reading
          said (the cores the other programs used while the estimate was measured, and
          during the real run: the two loads must be alike for the ratio to mean much).
  budget  a time budget (the Quick look preset's settings, ``--minutes``) quiet and busy: the
          Text tab's step total ("about N steps in 1 min") against the steps the run made; the
          run's end against its budget (its final validation and save included); the time left
          shown at 25/50/75% of the run against the time it really had left.

The three texts:
  english  tinyshakespeare (shared/data beside the checkout or one level up, or
           $CHARLSTM_SHAKESPEARE): 65 distinct characters.
  german   German-like text made here from a fixed word list with umlauts and ß, written as
           Latin-1 and read back as latin-1 (about 70 distinct characters).
  cjk      Chinese-like text made here: ideographs drawn from 6,000 (U+4E00...) with Zipf
           frequencies, with CJK punctuation and line breaks (thousands of distinct characters;
           the script prints V).

    python benchmarks/bench_estimate.py            # the real figures: 200 steps per text
    python benchmarks/bench_estimate.py --short    # a quick check that it works (a minute)
    python benchmarks/bench_estimate.py --code /tmp/before   # another checkout's estimates
                                                   # (its core/ imported as charlstm_core)
Run it under ``flock -x /work/cpu.lock`` on the shared machine; the busy case makes its own load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _use_code(checkout: str | None) -> None:
    """Import ``checkout``'s core/ as charlstm_core (before anything imports it)."""
    if checkout is None:
        return
    link_dir = tempfile.mkdtemp(prefix="charlstm-code-")
    os.symlink(Path(checkout).resolve() / "core", Path(link_dir) / "charlstm_core")
    sys.path.insert(0, link_dir)


_ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
_ap.add_argument("--short", action="store_true", help="a quick check, not the figures")
_ap.add_argument("--code", help="another checkout whose estimates to time")
_ap.add_argument("--only", choices=("quiet", "busy", "budget"), action="append")
ARGS = _ap.parse_args() if __name__ == "__main__" else _ap.parse_args([])
_use_code(ARGS.code)

from charlstm_core.config import ModelConfig, TrainConfig  # noqa: E402
from charlstm_core.events import StepEvent  # noqa: E402
from charlstm_core.files.text import load_corpus  # noqa: E402
from charlstm_core.training import plan  # noqa: E402
from charlstm_core.training.trainer import Trainer  # noqa: E402

_BESIDE = [up / "shared" / "data" / "tinyshakespeare.txt" for up in ROOT.parents[:2]]
SHAKESPEARE = os.environ.get(
    "CHARLSTM_SHAKESPEARE", str(next((p for p in _BESIDE if p.exists()), _BESIDE[0]))
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


# ------------------------------------------------------------------------------ the estimate


def timing_of(v: int, mc: ModelConfig, tc: TrainConfig):
    """``measure_timing`` as the settings check calls it (under the load there is, in a version
    that can; an older one takes the best of a few)."""
    args = (v, mc.hidden_size, mc.num_layers, tc.batch_size, tc.seq_len)
    try:
        return plan.measure_timing(*args, dropout=mc.dropout, under_load=True)
    except TypeError:
        return plan.measure_timing(*args, dropout=mc.dropout)


def estimated_step_s(corpus, mc: ModelConfig, tc: TrainConfig) -> tuple[float, str]:
    """(estimated seconds per step, what the load reading said)."""
    v = corpus.vocab.size
    timing = timing_of(v, mc, tc)
    n_val = int(corpus.n_chars * tc.val_fraction)
    est = plan.estimate(
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
    load = getattr(timing, "load", None)
    said = "-" if load is None or load.others is None else f"{load.others:.1f}/{load.cores}"
    return est.seconds_per_step or float("nan"), said


def per_step_case(label: str, folder: Path, mc: ModelConfig, tc: TrainConfig) -> float:
    """Estimated against real seconds per step on the three texts; the largest error."""
    print(f"\n[{label}] time per step (estimate measured just before each real run)")
    print(
        f"{'text':8} {'V':>6} {'others: est.':>12} {'run':>5} {'estimate s/step':>16} "
        f"{'measured s/step':>16} {'ratio':>7}"
    )
    worst = 0.0
    for name, path, enc in texts(folder, ARGS.short):
        corpus = load_corpus(path, encoding=enc)
        est, said = estimated_step_s(corpus, mc, tc)
        trainer = Trainer(corpus, mc, tc)
        meter = run_meter()
        t0 = time.perf_counter()
        for _ in trainer.run():
            pass
        real = (time.perf_counter() - t0) / tc.steps
        during = others(meter)
        ratio = est / real
        worst = max(worst, abs(ratio - 1))
        print(
            f"{name:8} {corpus.vocab.size:>6,} {said:>12} {during:>5} {est:>16.4f} "
            f"{real:>16.4f} {ratio:>7.2f}"
        )
    print(f"[{label}] largest error {worst:.0%} (target: at most 25%)")
    return worst


def run_meter():
    """A load meter started before a real run (None in a version without one)."""
    try:
        from charlstm_core.training.load import LoadMeter
    except ImportError:
        return None
    meter = LoadMeter()
    meter.start()
    return meter


def others(meter) -> str:
    """The cores other programs used since ``meter`` started ("-": unknown)."""
    load = None if meter is None else meter.load()
    return "-" if load is None or load.others is None else f"{load.others:.1f}"


# ------------------------------------------------------------------------------ a time budget


def eta_of(event: StepEvent, tc: TrainConfig) -> float | None:
    """The time left an event shows: its own (this version), else the one an older version's
    views computed from the recent speed (charlstm_core.training.policy.eta_seconds)."""
    if hasattr(event, "eta_s"):
        return event.eta_s
    from charlstm_core.training.policy import eta_seconds

    return eta_seconds(
        event.step, event.total_steps, event.chars_per_sec, tc.batch_size * tc.seq_len
    )


def budget_case(label: str, folder: Path) -> None:
    """The Quick look preset's settings for ``minutes`` on the English text: the step total the
    Text tab shows, the run's end and the time left it showed, against what happened."""
    minutes = 0.1 if ARGS.short else 0.5
    mc = ModelConfig(vocab_size=1, hidden_size=128, num_layers=1, dropout=0.0)
    tc = TrainConfig(
        seq_len=50,
        batch_size=32,
        lr=0.008,
        warmup_steps=50,
        minutes=minutes,
        val_fraction=0.02,
        eval_every=100,
        sample_every=100,
        sample_length=200,
        checkpoint_every=0,
    )
    corpus = load_corpus(texts(folder, ARGS.short)[0][1])
    est_step_s, said = estimated_step_s(corpus, mc, tc)
    est_steps = minutes * 60 / est_step_s
    trainer = Trainer(corpus, mc, tc, checkpoint_path=str(folder / "budget.npz"))
    shown: list[tuple[float, int, float | None]] = []  # (wall, step, time left shown)
    meter = run_meter()
    t0 = time.perf_counter()
    for ev in trainer.run():
        if isinstance(ev, StepEvent):
            shown.append((time.perf_counter(), ev.step, eta_of(ev, tc)))
    end = time.perf_counter()
    steps = shown[-1][1] if shown else 0
    print(
        f"\n[{label}] a {minutes:g}-minute run (Quick look, english); others used {said} "
        f"while estimating, {others(meter)} during the run"
    )
    print(f"  steps: estimated {est_steps:,.0f}, made {steps:,}: ratio {est_steps / steps:.2f}")
    print(
        f"  the run lasted {end - t0:.1f} s of its {minutes * 60:g} s budget (final validation "
        f"and save included): ratio {(end - t0) / (minutes * 60):.3f}"
    )
    cells = []
    for share in (0.25, 0.5, 0.75):
        at, _, eta = shown[min(int(share * len(shown)), len(shown) - 1)]
        left = end - at
        cells.append(f"{share:.0%}: {'?' if eta is None else f'{eta / left:.2f}'}")
    print(f"  time left shown / time really left, at {', '.join(cells)}")


# ------------------------------------------------------------------------------ the busy machine


class OtherTraining:
    """A second process training beside the benchmark (this checkout's command line)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> OtherTraining:
        env = {**os.environ, "CHARLSTM_HOME": str(self.folder / "home")}
        cmd = [sys.executable, "-m", "charlstm_core", "train", SHAKESPEARE, "--minutes", "60",
               "-q", "--no-record", "--out", str(self.folder / "other.npz")]  # fmt: skip
        self.proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=subprocess.DEVNULL)
        time.sleep(8.0)  # it reads its text and starts training
        if self.proc.poll() is not None:
            raise SystemExit(f"the second training ended at once (exit {self.proc.returncode})")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def main() -> None:
    only = set(ARGS.only or ("quiet", "busy", "budget"))
    # the app's "Quick look" preset as it was when these figures were taken (1,000 steps of H=128,
    # T=64); the short mode validates and samples more often so that their share is still part
    # of what is compared
    mc = ModelConfig(vocab_size=1, hidden_size=128, num_layers=1, dropout=0.0)
    counts = (
        dict(steps=24, eval_every=12, sample_every=12, sample_length=50)
        if ARGS.short
        else dict(steps=200, eval_every=100, sample_every=200, sample_length=200)
    )
    tc = TrainConfig(seq_len=64, batch_size=32, checkpoint_every=0, **counts)
    print(
        f"code: {ARGS.code or 'this checkout'}; H={mc.hidden_size} L={mc.num_layers} "
        f"B={tc.batch_size} T={tc.seq_len}, {tc.steps} steps, validation every {tc.eval_every}, "
        f"{tc.sample_length}-character samples every {tc.sample_every}"
        f"{'  (SHORT MODE: not the figures)' if ARGS.short else ''}; load {os.getloadavg()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if "quiet" in only:
            per_step_case("quiet", folder, mc, tc)
        if "budget" in only:
            budget_case("quiet", folder)
        if only & {"busy", "budget"}:
            with OtherTraining(folder):
                if "busy" in only:
                    per_step_case("busy", folder, mc, tc)
                if "budget" in only:
                    budget_case("busy", folder)
    print(f"load at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
