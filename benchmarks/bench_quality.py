"""Quality benchmark: the command line's default settings for N minutes on a corpus.

Runs ``charlstm train TEXT --minutes N`` exactly as a user would (defaults, last 10% held out)
and prints the validation loss reached, against the target (<= 1.55 nats/char on
tinyshakespeare in 10 minutes) and the plain PyTorch recipe's 1.563 measured on this machine
kind (L=1, H=512, B=32, T=100, Adam 2e-3). Usage:

    python benchmarks/bench_quality.py [TEXT] [--minutes 10]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
TARGET = 1.55
TORCH_RECIPE = 1.563  # quoted in the engine issue: PyTorch, L=1 H=512 B=32 T=100, 10 minutes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("text", nargs="?", default=str(DEFAULT_TEXT))
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--keep", help="keep the trained model at this path")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or str(Path(tmp) / "model.npz")
        log = Path(tmp) / "log.jsonl"
        cmd = [
            sys.executable, "-m", "charlstm_core", "train", args.text,
            "--minutes", str(args.minutes), "--out", out, "--log-jsonl", str(log), "--quiet",
        ]  # fmt: skip
        print("$", " ".join(cmd[1:]), flush=True)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        events = [json.loads(line) for line in log.read_text().splitlines()]
    steps = [e for e in events if e["event"] == "step"]
    evals = [e for e in events if e["event"] == "eval"]
    cps = sorted(e["chars_per_sec"] for e in steps[len(steps) // 10 :])
    print(f"wall time            {wall:8.1f} s")
    print(f"optimizer steps      {steps[-1]['step']:8d}")
    print(f"median chars/s       {cps[len(cps) // 2]:8.0f}")
    print(
        "validation loss by step: " + ", ".join(f"{e['step']}:{e['val_loss']:.3f}" for e in evals)
    )
    final, best = evals[-1]["val_loss"], min(e["val_loss"] for e in evals)
    print(f"final val loss       {final:8.4f} nats/char ({final / 0.6931471805599453:.3f} bits)")
    print(f"best val loss        {best:8.4f} nats/char")
    print(f"target               {TARGET:8.4f}   -> {'met' if final <= TARGET else 'NOT met'}")
    print(
        f"PyTorch plain recipe {TORCH_RECIPE:8.4f}   ratio final/recipe {final / TORCH_RECIPE:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
