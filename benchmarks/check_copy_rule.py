"""Issue 20, point 3, measured: what the memorisation meter calls copied, before and after its rule.

    python benchmarks/check_copy_rule.py MODEL TEXT [MODEL TEXT ...] [--samples 10] [--min 20]

For each model and its training text, writes ``--samples`` texts of 1,000 characters at
temperature 0.8 (the Generate tab's defaults; seeds 1, 2, ...), indexes the model's own training
part of the text (its validation fraction and split) and prints, per model, the mean copied
fraction and the longest copy under two rules: *verbatim* (every span of ``--min``+ characters
found word for word in the training text: the meter before the rule) and *counted*
(``CopyIndex.find``: such spans that also carry ``--min`` ordinary characters' worth of
information, ``charlstm_core.insight.copy_rule``). A model that writes its own text should show
little counted copying; one that memorised a passage should still show it. Not a speed figure:
it prints what the meter would say, with the spans it no longer counts.
"""

from __future__ import annotations

import argparse
import statistics

from charlstm_core.files.modelfile import load_model
from charlstm_core.files.text import load_corpus, split_ids
from charlstm_core.insight.copies import CopyIndex
from charlstm_core.sample import generate

LENGTH, TEMPERATURE = 1000, 0.8  # the Generate tab's defaults


def measure(model_path: str, text_path: str, samples: int, n: int) -> None:
    mf = load_model(model_path)
    corpus = load_corpus(text_path, vocab=mf.vocab)
    cfg = mf.train.config if mf.train is not None else None
    vf = cfg.val_fraction if cfg is not None else 0.0
    how = getattr(cfg, "val_split", "last") if cfg is not None else "last"
    train_ids = split_ids(corpus.ids, vf, how)[0]
    index = CopyIndex.build(train_ids, corpus.vocab, n)
    rows = {"verbatim": ([], []), "counted": ([], [])}
    dropped: list[str] = []
    kept: list[str] = []
    for seed in range(1, samples + 1):
        text = "".join(generate(mf, length=LENGTH, temperature=TEMPERATURE, seed=seed))
        for name, found in (("verbatim", index.verbatim(text)), ("counted", index.find(text))):
            rows[name][0].append(found.fraction)
            rows[name][1].append(found.longest)
        counted = {(a, b) for a, b, _, _ in index.find(text).spans}
        for a, b, _, _ in index.verbatim(text).spans:
            (kept if (a, b) in counted else dropped).append(text[a:b])
    step = mf.train.step if mf.train is not None else 0
    print(
        f"{model_path} (step {step:,}, {mf.config.num_layers}x{mf.config.hidden_size}) on "
        f"{corpus.name}: unigram entropy {index.entropy:.3f} bits/char, a copy must carry "
        f"{index.min_bits:.0f} bits"
    )
    for name, (fractions, longest) in rows.items():
        print(
            f"  {name:<9} copied {statistics.mean(fractions):6.1%} (per sample "
            f"{min(fractions):.0%}-{max(fractions):.0%}), longest {max(longest):4d} characters "
            f"(median of samples {statistics.median(longest):.0f})"
        )
    print(f"  spans no longer counted: {len(dropped)}; still counted: {len(kept)}")
    for label, spans in (("longest no longer counted", dropped), ("longest counted", kept)):
        for s in sorted(spans, key=len, reverse=True)[:3]:
            print(f"    {label}: {len(s)} {s!r}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pairs", nargs="+", metavar="MODEL TEXT")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--min", type=int, default=20, help="shortest copy in characters (N)")
    args = ap.parse_args()
    if len(args.pairs) % 2:
        ap.error("give a TEXT after each MODEL")
    for model_path, text_path in zip(args.pairs[::2], args.pairs[1::2], strict=True):
        measure(model_path, text_path, args.samples, args.min)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
