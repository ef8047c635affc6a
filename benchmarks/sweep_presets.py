"""Sweeps for the app's presets at 1, 10 and 60 minutes on two texts, in calibrated steps.

For each budget (1 minute: "Quick look"; 10 minutes: "Balanced"; 60 minutes: "Best quality")
this runs a small grid of recipes on tinyshakespeare (../shared/data beside the repository, or
$CHARLSTM_SHAKESPEARE) and on a Python text, the budget turned into each point's own steps exactly
as ``charlstm sweep --minutes M --as-steps`` does (``charlstm_core.sweep.calibration``): every
point timed first, one at a time, under the CPU lock (``--lock``, /work/scratch/cpu.lock by
default), then trained for its steps without the lock, one point at a time on 2 BLAS threads
(``--jobs 2``: two at a time, one thread each). So the ranking does not depend on what else the
machine ran meanwhile. ``--budgets`` and ``--texts`` choose what runs (default: 1 and 10 minutes,
both texts).

The Python text is the app's built-in text (``charlstm_core.files.builtin_text``: this interpreter's
standard-library sources, deterministic) cut to the size of tinyshakespeare, so that the two
texts cost the same to validate and a recipe's step count is the same on both.

It prints, per budget, a ranked table per text and the recipe chosen for the preset: the best
mean rank over the two texts (ties: the lower mean validation loss), with each point's loss on
each text. Before the sweeps it checks the calibration once: for one point, the steps calibrated
for 1 minute against the steps a real ``--minutes 1`` run makes, both under the lock.

Every finished point is kept in OUT/results.json and recorded in OUT/runs.sqlite; run again with
the same OUT to finish what an interrupted run left (a point killed part-way continues from its
last checkpoint, every 1,000 steps, bit for bit), or with ``--report`` to print the tables only.

    python benchmarks/sweep_presets.py /work/scratch/presets/run1              # the figures
    python benchmarks/sweep_presets.py /tmp/presets-short --short             # does it work
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from charlstm_core.cli.table import sweep_table  # noqa: E402
from charlstm_core.config import ModelConfig, TrainConfig  # noqa: E402
from charlstm_core.engine import parallel  # noqa: E402
from charlstm_core.files.builtin_text import builtin_corpus  # noqa: E402
from charlstm_core.files.text import load_corpus  # noqa: E402
from charlstm_core.presets import (  # noqa: E402
    HOUR_MONITORING,
    QUICK_MONITORING,
    TEN_MINUTE_MONITORING,
)
from charlstm_core.sweep import (  # noqa: E402
    Axis,
    Calibration,
    PointResult,
    SweepPoint,
    SweepSpec,
    calibrate,
    fastest,
    run_point,
    run_sweep,
)

SHAKESPEARE = Path(
    os.environ.get(
        "CHARLSTM_SHAKESPEARE", str(ROOT.parent / "shared" / "data" / "tinyshakespeare.txt")
    )
)
LOCK = "/work/scratch/cpu.lock"
THREADS = 2  # BLAS threads: the reference machine's two cores, one point at a time
TEXTS = ("python", "shakespeare")  # in the order they run
# Every table here was made with the fastest of the five timings, the calibration's estimate
# until check_calibration.py showed that the median over-gives less (charlstm_core.sweep
# .calibration.ESTIMATE); kept, so that all the budgets' steps mean the same.
ESTIMATE = fastest

# Validation and samples as the preset that the sweep chooses for makes them (the calibrated steps
# pay for them): charlstm_core.presets defines them
QUICK_EVAL = QUICK_MONITORING
BALANCED_EVAL = TEN_MINUTE_MONITORING
HOUR_EVAL = HOUR_MONITORING


@dataclass(frozen=True)
class Budget:
    minutes: float
    preset: str
    model: dict[str, Any]  # base ModelConfig fields
    train: dict[str, Any]  # base TrainConfig fields
    points: tuple[dict[str, Any], ...]  # each point's changes (all over the same fields)


BUDGETS = (
    Budget(
        1.0,
        "Quick look",
        dict(num_layers=1, dropout=0.0),
        # warm-up 50: these runs make ~300-1,000 steps, the default 100 would be a third of some
        dict(seq_len=50, batch_size=32, warmup_steps=50, **QUICK_EVAL),
        tuple(dict(hidden_size=h, lr=lr) for h in (128, 256, 512) for lr in (4e-3, 8e-3)),
    ),
    Budget(
        10.0,
        "Balanced",
        {},
        dict(seq_len=50, batch_size=32, warmup_steps=100, **BALANCED_EVAL),
        (
            dict(num_layers=1, hidden_size=512, lr=8e-3, dropout=0.2),  # the command line's
            dict(num_layers=2, hidden_size=384, lr=5e-3, dropout=0.1),
            dict(num_layers=1, hidden_size=384, lr=8e-3, dropout=0.2),
        ),
    ),
    Budget(
        60.0,
        "Best quality",
        {},
        dict(seq_len=50, batch_size=32, warmup_steps=100, **HOUR_EVAL),
        (
            dict(num_layers=1, hidden_size=512, lr=8e-3, dropout=0.2),  # the 10-minute winner
            dict(num_layers=2, hidden_size=384, lr=5e-3, dropout=0.1),  # its 10-minute tie
            # both of those over-fit a 1 MB text within the hour (best val a quarter of the way
            # in): char-rnn's recipe for tinyshakespeare, a bigger model held back by dropout 0.5
            dict(num_layers=2, hidden_size=512, lr=5e-3, dropout=0.5),
        ),
    ),
)
LABELS = {"hidden_size": "hidden", "num_layers": "layers", "lr": "lr", "dropout": "dropout"}


def show(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def label_of(changes: dict[str, Any]) -> str:
    return " ".join(f"{LABELS.get(k, k)}={show(v)}" for k, v in changes.items())


def axes_of(points: tuple[dict[str, Any], ...]) -> list[Axis]:
    fields = list(points[0])
    return [Axis(f, tuple(dict.fromkeys(p[f] for p in points)), LABELS.get(f, f)) for f in fields]


# ------------------------------------------------------------------------------------ texts


def write_texts(folder: Path, short: bool) -> dict[str, Path]:
    """tinyshakespeare and the Python text of the same size (``short``: 200,000 bytes each)."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = SHAKESPEARE.read_bytes()
    if short:
        raw = raw[:200_000]
    shakespeare = folder / "tinyshakespeare.txt"
    if not shakespeare.exists():
        shakespeare.write_bytes(raw)
    python = folder / "python.txt"
    if not python.exists():
        corpus = builtin_corpus(max_bytes=len(raw))
        text = "".join(np.asarray(corpus.vocab.chars, dtype=object)[corpus.ids].tolist())
        tmp = python.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, python)
    return {"python": python, "shakespeare": shakespeare}


# ------------------------------------------------------------------------------------ the lock


@contextlib.contextmanager
def cpu_lock(path: str | None) -> Iterator[None]:
    """The machine's CPU lock (the one ``flock PATH command`` takes), held for the duration."""
    if not path:
        yield
        return
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for the CPU lock {path}")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def say(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


# ------------------------------------------------------------------------------------ results


class Results:
    """OUT/results.json: every finished point and every calibration, written as each comes.

    Two runs of this script may share OUT (say, one per text, one thread each): each row is
    added to the file as it is on disk, under a lock, so that neither loses the other's."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, Any]] = self._read()

    def _read(self) -> list[dict[str, Any]]:
        return json.loads(self.path.read_text()) if self.path.exists() else []

    def add(self, row: dict[str, Any]) -> None:
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.rows = [*self._read(), row]
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.rows, indent=1))
            os.replace(tmp, self.path)

    def find(self, **keys: Any) -> list[dict[str, Any]]:
        self.rows = self._read()
        return [r for r in self.rows if all(r.get(k) == v for k, v in keys.items())]


def configs(budget: Budget) -> tuple[ModelConfig, TrainConfig]:
    model = ModelConfig(vocab_size=1, **budget.model)
    train = TrainConfig(minutes=budget.minutes, **budget.train)
    return model, train


def scaled(changes: dict[str, Any], short: bool) -> dict[str, Any]:
    """``--short``: hidden sizes / 8, so that the check is quick."""
    if short and "hidden_size" in changes:
        return {**changes, "hidden_size": changes["hidden_size"] // 8}
    return changes


def minutes_of(budget: Budget, short: bool) -> float:
    return budget.minutes / 20 if short else budget.minutes


# ------------------------------------------------------------------------------------ stages


def check_calibration(args, texts, results: Results) -> None:
    """One point (1 minute, tinyshakespeare, the largest hidden size at 8e-3): calibrated
    steps against a real --minutes run's, both under the lock."""
    if results.find(stage="check"):
        return
    budget = BUDGETS[0]
    minutes = minutes_of(budget, args.short)
    changes = scaled(dict(hidden_size=512, lr=8e-3), args.short)
    point = SweepPoint(index=0, changes=changes, label=label_of(changes))
    model, train = configs(budget)
    train = train.replace(minutes=minutes)
    corpus = load_corpus(str(texts["shakespeare"]))
    spec = SweepSpec(
        text_path=str(texts["shakespeare"]),
        encoding=None,
        base_model=model,
        base_train=train,
        out_dir=str(args.out / "check"),
        runs_db=str(args.out / "runs.sqlite"),
        sweep_label="presets: calibration check",
    )
    Path(spec.out_dir).mkdir(parents=True, exist_ok=True)
    with cpu_lock(args.lock):
        say(f"calibration check, {point.label}, {minutes:g} minute(s); {load()}")
        (cal,) = calibrate(
            [point], model, train, corpus, minutes, threads=THREADS, estimate=ESTIMATE
        )
        real = run_point(spec, point, corpus=corpus)
        after = load()
    row = dict(
        stage="check", point=point.label, minutes=minutes, calibrated_steps=cal.steps,
        seconds_per_step=cal.seconds_per_step, reserve_s=cal.reserve_s, real_steps=real.steps,
        real_elapsed_s=real.duration_s, real_status=real.status, load_after=after,
    )  # fmt: skip
    results.add(row)


def run_stage(args, budget: Budget, text: str, path: Path, results: Results) -> None:
    minutes = minutes_of(budget, args.short)
    model, train = configs(budget)
    done = {r["label"] for r in results.find(stage="sweep", minutes=minutes, text=text)}
    points = []
    for i, changes in enumerate(budget.points):
        changes = scaled(changes, args.short)
        label = label_of(changes)
        if label not in done and (not args.point or label in args.point):
            points.append(SweepPoint(index=i, changes=changes, label=label))
    if not points:
        return
    corpus = load_corpus(str(path))
    if args.steps_of and args.steps_of != text:
        cals = steps_of(args.steps_of, minutes, points, results)
    else:
        cals = calibrated(args, text, minutes, model, train, corpus, points, results)
    spec = SweepSpec(
        text_path=str(path),
        encoding=None,
        base_model=model,
        base_train=train,
        out_dir=str(args.out / f"{minutes:g}min-{text}"),
        runs_db=str(args.out / "runs.sqlite"),
        sweep_label=f"presets: {minutes:g} min {text}",
        resume=True,  # a point killed part-way continues from its last checkpoint
    )
    by_index = {c.point.index: c for c in cals}
    for r in run_sweep(spec, [c.point for c in cals], corpus=corpus, jobs=args.jobs):
        c = by_index[r.index]
        say(
            f"  {r.label}: {r.status}, {r.steps:,} steps in {r.duration_s:.0f} s, best val "
            f"{'-' if r.best_val_loss is None else f'{r.best_val_loss:.4f}'}; {load()}"
        )
        results.add(
            dict(
                stage="sweep", minutes=minutes, text=text, label=r.label, index=r.index,
                changes=r.changes, status=r.status, steps=r.steps, calibrated_steps=c.steps,
                seconds_per_step=c.seconds_per_step, best_val_loss=r.best_val_loss,
                final_val_loss=r.final_val_loss, chars_per_sec=r.chars_per_sec,
                duration_s=r.duration_s, run_id=r.run_id, message=r.message,
            )
        )  # fmt: skip


def given(point: SweepPoint, steps: int, seconds_per_step: float) -> Calibration:
    """``point`` with steps calibrated earlier (``reserve_s``, not kept, only reports a check)."""
    return Calibration(dataclasses.replace(point, steps=steps), seconds_per_step, 0.0)


def calibrated(args, text, minutes, model, train, corpus, points, results: Results):
    """Each point's steps for ``minutes`` on ``text``: timed now under the lock and kept in
    OUT/results.json, or the steps it was given before (a point that an earlier run left
    unfinished trains the same steps again, so that it continues from its checkpoint)."""
    before = {r["label"]: r for r in results.find(stage="calibration", minutes=minutes, text=text)}
    cals = [
        given(p, row["steps"], row["seconds_per_step"])
        for p in points
        if (row := before.get(p.label))
    ]
    for c in cals:
        say(f"  {c.point.label}: {c.point.steps:,} steps, as calibrated before")
    new = [p for p in points if p.label not in before]
    if new:
        with cpu_lock(args.lock):
            say(f"{text}, {minutes:g} minute(s): timing {len(new)} point(s); {load()}")
            timed = calibrate(
                new, model, train, corpus, minutes, threads=THREADS, estimate=ESTIMATE,
                on_point=lambda c: say(
                    f"  {c.point.label}: {c.seconds_per_step:.4f} s/step, {c.steps:,} steps"
                ),
            )  # fmt: skip
        for c in timed:
            results.add(
                dict(
                    stage="calibration", minutes=minutes, text=text, label=c.point.label,
                    steps=c.steps, seconds_per_step=c.seconds_per_step, reserve_s=c.reserve_s,
                )
            )  # fmt: skip
        cals += timed
    return sorted(cals, key=lambda c: c.point.index)


def steps_of(other: str, minutes: float, points: list[SweepPoint], results: Results):
    """``--steps-of OTHER``: each point given the steps its recipe was calibrated to on the text
    OTHER at this budget, not timed again. The two texts are the same size and a step costs the
    same on both (to the vocabulary's share of the products, under 2% here), while two
    calibrations an hour apart can differ by a third on this VM (0.150 and 0.109 s a step for
    the same H=512 point): the texts then train the same steps."""
    rows = {r["label"]: r for r in results.find(stage="sweep", minutes=minutes, text=other)}
    for r in results.find(stage="calibration", minutes=minutes, text=other):
        rows.setdefault(r["label"], {**r, "calibrated_steps": r["steps"]})
    missing = [p.label for p in points if p.label not in rows]
    if missing:
        sys.exit(f"--steps-of {other}: no {minutes:g}-minute result on it for {', '.join(missing)}")
    out = [
        given(p, rows[p.label]["calibrated_steps"], rows[p.label]["seconds_per_step"])
        for p in points
    ]
    for c in out:
        say(f"  {c.point.label}: {c.steps:,} steps, as on {other}")
    return out


# ------------------------------------------------------------------------------------ report


def as_result(row: dict[str, Any]) -> PointResult:
    return PointResult(
        index=row["index"], label=row["label"], changes=row["changes"], status=row["status"],
        run_id=row["run_id"], steps=row["steps"], best_val_loss=row["best_val_loss"],
        final_val_loss=row["final_val_loss"], chars_per_sec=row["chars_per_sec"],
        duration_s=row.get("duration_s", row.get("elapsed_s", 0.0)), model_path=None,
        message=row["message"],
    )  # fmt: skip


def rank_of(rows: list[dict[str, Any]]) -> dict[str, int]:
    ok = sorted(
        (r for r in rows if r["best_val_loss"] is not None and r["status"] == "finished"),
        key=lambda r: (r["best_val_loss"], r["index"]),
    )
    return {r["label"]: i for i, r in enumerate(ok, 1)}


def report(args, results: Results) -> None:
    for row in results.find(stage="check"):
        ratio = row["calibrated_steps"] / max(row["real_steps"], 1)
        print(
            f"\ncalibration check ({row['point']}, tinyshakespeare, {row['minutes']:g} minute(s), "
            f"both under the CPU lock): calibrated {row['calibrated_steps']:,} steps "
            f"({row['seconds_per_step']:.4f} s/step, {row['reserve_s']:.1f} s kept for the end); "
            f"a real --minutes run made {row['real_steps']:,} steps in {row['real_elapsed_s']:.1f}"
            f" s: ratio {ratio:.3f}; {row['load_after']} after"
        )
    for budget in BUDGETS:
        minutes = minutes_of(budget, args.short)
        per_text = {t: results.find(stage="sweep", minutes=minutes, text=t) for t in TEXTS}
        if not any(per_text.values()):
            print(f"\n== {minutes:g} minute(s) ({budget.preset}): not run")
            continue
        axes = axes_of(tuple(scaled(p, args.short) for p in budget.points))
        for text, rows in per_text.items():
            print(f"\n== {minutes:g} minute(s), {text}: ranked")
            if not rows:
                print("not run")
                continue
            results_ = [as_result(r) for r in rows]
            print(sweep_table(results_, axes))
            calib = {r["label"]: r["calibrated_steps"] for r in rows}
            short_of = [r.label for r in results_ if r.steps != calib[r.label]]
            if short_of:
                print(f"(fewer steps than calibrated: {', '.join(short_of)})")
        ranks = {t: rank_of(rows) for t, rows in per_text.items()}
        loss = {t: {r["label"]: r["best_val_loss"] for r in rows} for t, rows in per_text.items()}
        steps = {t: {r["label"]: r["steps"] for r in rows} for t, rows in per_text.items()}
        labels = [label_of(scaled(p, args.short)) for p in budget.points]
        complete = [lb for lb in labels if all(lb in ranks[t] for t in TEXTS)]
        print(f"\n== {minutes:g} minute(s): both texts ({budget.preset})")
        head = ["recipe"]
        for t in TEXTS:
            head += [f"{t} val", "rank", "steps"]
        lines = [[*head, "mean rank", "mean val"]]
        for lb in labels:
            line = [lb]
            for t in TEXTS:
                v = loss[t].get(lb)
                line += [
                    "-" if v is None else f"{v:.4f}",
                    str(ranks[t].get(lb, "-")),
                    f"{steps[t][lb]:,}" if lb in steps[t] else "-",
                ]
            if lb in complete:
                line += [
                    f"{np.mean([ranks[t][lb] for t in TEXTS]):.1f}",
                    f"{np.mean([loss[t][lb] for t in TEXTS]):.4f}",
                ]
            else:
                line += ["-", "-"]
            lines.append(line)
        widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
        for row in lines:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if complete:
            best = min(
                complete,
                key=lambda lb: (
                    np.mean([ranks[t][lb] for t in TEXTS]),
                    np.mean([loss[t][lb] for t in TEXTS]),
                ),
            )
            print(f"chosen for {budget.preset}: {best} (best mean rank, then mean val loss)")
        else:
            print("no recipe finished on both texts: nothing chosen")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder for the texts, models, runs DB and results")
    ap.add_argument("--short", action="store_true", help="budgets / 20, hidden / 8: a quick check")
    ap.add_argument(
        "--budgets", default="1,10", help="which budgets to run, in minutes (default: 1,10)"
    )
    ap.add_argument(
        "--texts", default=",".join(TEXTS), help=f"which texts (default: {','.join(TEXTS)})"
    )
    ap.add_argument(
        "--jobs", type=int, default=1,
        help="points trained at once, the cores shared between them (their steps are still "
        f"timed alone on {THREADS} threads, so the results do not change)",
    )  # fmt: skip
    ap.add_argument(
        "--steps-of", metavar="TEXT", choices=TEXTS,
        help="give the other text's points the steps calibrated for TEXT at the same budget "
        "(not timed again)",
    )  # fmt: skip
    ap.add_argument(
        "--point", action="append", metavar="LABEL",
        help="run only this point (its label as the tables print it; repeat for several)",
    )  # fmt: skip
    ap.add_argument(
        "--threads", type=int, default=THREADS,
        help=f"BLAS threads of a point trained alone (default {THREADS}; 1 when two runs of "
        "this script share the cores); the steps are timed on "
        f"{THREADS} whatever this says",
    )  # fmt: skip
    ap.add_argument("--lock", default=LOCK if os.path.exists(LOCK) else None, help="CPU lock")
    ap.add_argument("--no-check", action="store_true", help="skip the calibration check")
    ap.add_argument("--report", action="store_true", help="print the tables of what ran, only")
    args = ap.parse_args()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    results = Results(args.out / "results.json")
    if not args.report:
        parallel.set_blas_threads(args.threads)
        texts = write_texts(args.out / "texts", args.short)
        wanted = {float(b) for b in args.budgets.split(",")}
        unknown = set(args.texts.split(",")) - set(TEXTS)
        if unknown:
            ap.error(
                f"--texts: no text {', '.join(sorted(unknown))} (the texts: {', '.join(TEXTS)})"
            )
        if not args.no_check:
            check_calibration(args, texts, results)
        for budget in BUDGETS:
            if budget.minutes in wanted:
                for text in args.texts.split(","):
                    run_stage(args, budget, text, texts[text], results)
    print(
        f"\nsweep_presets.py {'--short ' if args.short else ''}{args.out}: "
        f"points timed under the CPU lock on {THREADS} BLAS threads, trained "
        f"{'one at a time' if args.jobs == 1 else f'{args.jobs} at a time'}"
    )
    report(args, results)


if __name__ == "__main__":
    main()
