"""Issue 11's "done means", measured: during one run of an app preset, does surprise fall on the
Inspect tab's default passage, and does some unit come to track quotes, brackets or line position?

    python benchmarks/check_quicklook.py                      # Quick look on tinyshakespeare
    python benchmarks/check_quicklook.py --builtin            # on the built-in Python text
    python benchmarks/check_quicklook.py TEXT --preset Balanced

Trains with the preset's settings (``charlstm_core.presets``, the same values the app's form takes)
and, at every evaluation, reads the passage the Inspect tab shows by default (the first 2,000
characters of the validation text) with a snapshot of the weights, as the app does. Prints, per
evaluation: the validation loss, the passage's mean bits per character, and for each structural
detector the unit with the largest |r| (cell values tanh(c)) and its r. "Tracks" is read here as
|r| >= 0.7 over the 2,000 characters, a threshold this script chooses, not the issue.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from charlstm_core.events import EvalEvent
from charlstm_core.files.builtin_text import builtin_corpus
from charlstm_core.files.text import load_corpus
from charlstm_core.insight.inspect import analyse, detectors, rank_units
from charlstm_core.presets import PRESETS, budget_text
from charlstm_core.training.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
PASSAGE = 2000  # the Inspect tab's default passage length (charlstm_gui/views/inspect.py)
STRUCTURE = ("double quotes", "single quotes", "bracket depth", "line position", "indentation")
TRACKS = 0.7


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("text", nargs="?", default=str(DEFAULT_TEXT))
    ap.add_argument("--builtin", action="store_true", help="the app's built-in Python text")
    ap.add_argument("--preset", default="Quick look", choices=sorted(PRESETS))
    ap.add_argument(
        "--steps",
        type=int,
        help="train this many steps instead of the preset's duration (on a busy machine: the "
        "steps its minutes give on a quiet one, as 'charlstm sweep --as-steps' measures them)",
    )
    args = ap.parse_args()
    corpus = builtin_corpus() if args.builtin else load_corpus(args.text, None)
    name = "the built-in Python text" if args.builtin else Path(args.text).name
    preset = PRESETS[args.preset]
    budget = {"steps": args.steps} if args.steps else {}
    mc, tc = preset.configs(corpus.vocab.size, **budget)
    val = corpus.split(tc.val_fraction)[1]
    passage = corpus.vocab.decode(val[:PASSAGE])
    signals = {k: v for k, v in detectors(passage).items() if k in STRUCTURE and v.any()}
    print(f"{args.preset} on {name}: L={mc.num_layers} H={mc.hidden_size} B={tc.batch_size} "
          f"T={tc.seq_len} lr={tc.lr}, {budget_text(*preset.budget).lower()}"
          f"{f' as {args.steps:,} steps' if args.steps else ''}; "
          f"passage: the first {len(passage):,} validation characters")  # fmt: skip
    print("step  val loss  passage bits/char  " + "  ".join(f"{k} (unit, r)" for k in signals))
    trainer = Trainer(corpus, mc, tc)
    first_bits = last_bits = None
    best: dict[str, float] = {}
    for event in trainer.run():
        if not isinstance(event, EvalEvent):
            continue
        a = analyse(trainer.snapshot(), passage)
        ranks = rank_units(a, signals, kind="c", top=1)
        cells = []
        for k in signals:
            u = ranks[k][0]
            best[k] = max(best.get(k, 0.0), abs(u.r))
            cells.append(f"{k} ({u.layer + 1}:{u.unit}, {u.r:+.2f})")
        first_bits = a.mean_bits if first_bits is None else first_bits
        last_bits = a.mean_bits
        print(f"{event.step:>5}  {event.val_loss:8.3f}  {a.mean_bits:17.3f}  " + "  ".join(cells))
    tracked = [k for k in ("double quotes", "single quotes", "bracket depth", "line position")
               if best.get(k, 0.0) >= TRACKS]  # fmt: skip
    print(f"surprise on the passage: {first_bits:.3f} -> {last_bits:.3f} bits/char "
          f"(ratio {last_bits / first_bits:.2f})")  # fmt: skip
    print("best |r| in the run: " + ", ".join(f"{k} {v:.2f}" for k, v in best.items()))
    print(f"units tracking quotes, brackets or line position (|r| >= {TRACKS}): "
          + (", ".join(tracked) if tracked else "none"))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
