"""How many steps ``charlstm sweep --minutes M --as-steps`` gives a point, against how many a real
``--minutes M`` run of the same point makes on this machine.

For each point (the Quick look recipe at hidden 128, 256 and 512 by default) on TEXT: the point
is timed as ``charlstm_core.sweep.calibrate`` times it (``REPEATS`` rounds of
``plan.measure_timing``), those same timings are turned into steps by each estimator (the fastest
of the rounds; their median), and then a real ``--minutes M`` run of the point trains, as
``charlstm sweep --minutes M`` would train it. It prints, per point and estimator, the calibrated
steps, the real steps and their ratio (1.00 is exact; above 1 the calibration gives more steps
than the minutes hold). Run it on a quiet machine (``flock /work/scratch/cpu.lock``): the real
run's steps depend on the load.

    python benchmarks/check_calibration.py ../shared/data/tinyshakespeare.txt
    python benchmarks/check_calibration.py TEXT --hidden 512 --minutes 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from charlstm_core.config import ModelConfig, TrainConfig  # noqa: E402
from charlstm_core.engine import parallel  # noqa: E402
from charlstm_core.files.text import load_corpus  # noqa: E402
from charlstm_core.presets import ONE_MINUTE_RECIPE, QUICK_MONITORING  # noqa: E402
from charlstm_core.sweep import SweepPoint, SweepSpec, calibrate, run_point  # noqa: E402
from charlstm_core.sweep import calibration as cal_mod  # noqa: E402
from charlstm_core.training.plan import Timing, measure_timing  # noqa: E402

ESTIMATORS = {"fastest": cal_mod.fastest, "median": cal_mod.typical}


class Recorded:
    """``measure_timing``, keeping every timing it made (in order)."""

    def __init__(self) -> None:
        self.timings: list[Timing] = []

    def __call__(self, *args, **kwargs) -> Timing:
        t = measure_timing(*args, **kwargs)
        self.timings.append(t)
        return t


class Replay:
    """Gives back recorded timings in order: the same timings for another estimator."""

    def __init__(self, timings: list[Timing]) -> None:
        self.left = list(timings)

    def __call__(self, *args, **kwargs) -> Timing:
        return self.left.pop(0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("text", type=Path)
    ap.add_argument("--hidden", default="128,256,512", help="hidden sizes (default 128,256,512)")
    ap.add_argument("--minutes", type=float, default=1.0, help="the budget (default 1)")
    ap.add_argument("--threads", type=int, default=parallel.usable_cores(), help="BLAS threads")
    args = ap.parse_args()
    parallel.set_blas_threads(args.threads)
    corpus = load_corpus(str(args.text))
    recipe = {k: v for k, v in ONE_MINUTE_RECIPE.items() if k != "hidden_size"}
    model_keys = ("num_layers", "dropout")
    model = ModelConfig(vocab_size=1, **{k: recipe[k] for k in model_keys})
    train = TrainConfig(
        minutes=args.minutes,
        **{k: v for k, v in recipe.items() if k not in model_keys},
        **QUICK_MONITORING,
    )
    print(
        f"check_calibration.py {args.text.name}: {args.minutes:g} minute(s), {args.threads} BLAS "
        f"thread(s), {cal_mod.REPEATS} timing rounds per point; recipe {recipe}, monitoring "
        f"{QUICK_MONITORING}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for hidden in (int(h) for h in args.hidden.split(",")):
            point = SweepPoint(index=0, changes={"hidden_size": hidden}, label=f"hidden={hidden}")
            rec = Recorded()
            steps = {}
            for name, estimator in ESTIMATORS.items():
                timer = rec if not rec.timings else Replay(rec.timings)
                (c,) = calibrate(
                    [point], model, train, corpus, args.minutes, threads=args.threads,
                    timer=timer, estimate=estimator,
                )  # fmt: skip
                steps[name] = (c.steps, c.seconds_per_step)
            spec = SweepSpec(
                text_path=str(args.text), encoding=None, base_model=model, base_train=train,
                out_dir=tmp, runs_db=None, sweep_label="check_calibration",
            )  # fmt: skip
            real = run_point(spec, point, corpus=corpus)
            spread = [t.step_s for t in rec.timings]
            print(
                f"\nhidden={hidden}: step timings {', '.join(f'{s:.4f}' for s in spread)} s "
                f"(max/min {max(spread) / min(spread):.2f}); real --minutes run: {real.steps:,} "
                f"steps in {real.duration_s:.1f} s ({real.status})",
                flush=True,
            )
            for name, (n, per_step) in steps.items():
                ratio = n / max(real.steps, 1)
                rows.append((hidden, name, ratio))
                print(
                    f"  {name:8s} {per_step:.4f} s/step -> {n:,} steps: calibrated / real "
                    f"{ratio:.3f}"
                )
    print("\nsummary, calibrated / real steps (1.00 is exact):")
    for name in ESTIMATORS:
        ratios = [r for _, n, r in rows if n == name]
        print(
            f"  {name:8s} "
            + "  ".join(f"H={h} {r:.3f}" for h, n, r in rows if n == name)
            + f"  mean {np.mean(ratios):.3f}"
        )


if __name__ == "__main__":
    main()
