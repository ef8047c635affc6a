"""Reproduce the deadlock ``charlstm_gui.gui_gc`` prevents, and show the collector prevents it.

    python benchmarks/stress_gui_gc.py --trials 4 --seconds 60            # with the collector
    python benchmarks/stress_gui_gc.py --trials 4 --seconds 60 --without  # as before the fix

Each trial is a fresh offscreen process: the GUI thread replaces the loss plot's reference lines
over and over (pyqtgraph items in reference cycles, connected to the view's signals) while two
worker threads parse NumPy array headers with ``ast.literal_eval`` (what a model load does, and
where the worker stood when CI hung). A trial that does not finish within its time plus a margin
is counted as hung and killed. Prints hung trials / trials for the mode run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

TRIAL = r"""
import ast, os, sys, threading, time
os.environ["QT_QPA_PLATFORM"] = "offscreen"
from PySide6.QtWidgets import QApplication
import pyqtgraph
app = QApplication([])
if sys.argv[1] == "with":
    from charlstm_gui.gui_gc import GuiThreadCollector
    collector = GuiThreadCollector(interval_ms=100)
from charlstm_gui.controller.history import LossHistory
from charlstm_gui.views.plot import LossPlot
plot = LossPlot(LossHistory())
plot.show()
stop = False
def work():
    header = repr({"descr": "<f4", "fortran_order": False, "shape": (512, 2048)})
    while not stop:
        ast.literal_eval(header)
for _ in range(2):
    threading.Thread(target=work, daemon=True).start()
lines = [(f"line {i}", 1.0 + i, "tip") for i in range(20)]
end = time.monotonic() + float(sys.argv[2])
rounds = 0
while time.monotonic() < end:
    plot.set_references(lines)
    app.processEvents()
    rounds += 1
stop = True
print(rounds, flush=True)
os._exit(0)
"""


def trial(mode: str, seconds: float) -> tuple[bool, str]:
    """(hung, rounds done): one fresh process, killed if it outlives ``seconds`` + 30 s."""
    proc = subprocess.Popen(
        [sys.executable, "-c", TRIAL, mode, str(seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=seconds + 30)
        return False, out.strip()
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return True, "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--without", action="store_true", help="no collector (as before the fix)")
    args = ap.parse_args()
    mode = "without" if args.without else "with"
    hung = 0
    for i in range(args.trials):
        t0 = time.monotonic()
        h, rounds = trial(mode, args.seconds)
        hung += h
        state = "HUNG" if h else f"finished, {rounds} rounds"
        print(f"trial {i + 1} ({mode} the collector): {state} in {time.monotonic() - t0:.0f} s")
    print(f"{mode} the GUI-thread collector: {hung} of {args.trials} trials hung")


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    main()
