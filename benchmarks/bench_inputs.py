"""Inputs refused or bounded before work is done (issue 19): each case in a fresh child process,
so that its peak RSS (ru_maxrss) is its own, beside its reference in the same run.

- ``sparse``: refusing a 2 GiB sparse file (NUL bytes from its first byte) as a training text;
  reference: reading the whole file and looking for a NUL, as the loader did before (target
  < 1 s and < 100 MB).
- ``html``: ``inspect --html`` of a 100,000-character passage: writing the page against the
  analysis it shows (``render`` / ``analyse``; it was quadratic: 80 s against 3.8 s).
- ``vocab``: where the time and memory of a text of 70,000 distinct characters go (5 steps at
  hidden 32, batch 32 x 50, as in the issue) against the same length of text with 100 distinct
  characters, and at the bound set since (``files.vocab.MAX_VOCAB``); then how long refusing
  it takes now.

    flock -x /work/cpu.lock .venv/bin/python benchmarks/bench_inputs.py [sparse html vocab]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

SPARSE_BYTES = 2 << 30
HTML_CHARS = 100_000
VOCAB, VOCAB_REF, VOCAB_LEN = 70_000, 100, 210_000

_CHILD_HEAD = """
import json, resource, sys, time
def done(**figures):
    figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(figures))
"""

# load_corpus(argv[1]): how long it takes to load or refuse, and the first argv[2] characters of
# the refusal (the sparse text's subject, and the refusal of a too-wide vocabulary)
LOAD_CORPUS = """
from charlstm_core.errors import CorpusError
from charlstm_core.files.text import load_corpus
t = time.perf_counter()
try:
    load_corpus(sys.argv[1])
    said = "loaded"
except CorpusError as e:
    said = str(e)[: int(sys.argv[2])]
done(seconds=time.perf_counter() - t, said=said)
"""

SPARSE_REFERENCE = """
t = time.perf_counter()
with open(sys.argv[1], "rb") as f:
    data = f.read()
nul = data.find(b"\\0")
done(seconds=time.perf_counter() - t, said=f"NUL at {nul}")
"""

HTML = """
import numpy as np
from charlstm_core.config import ModelConfig
from charlstm_core.engine.model import init_params
from charlstm_core.files.modelfile import ModelFile
from charlstm_core.files.text import corpus_from_text
from charlstm_core.insight.html import render
from charlstm_core.insight.inspect import analyse
rng = np.random.default_rng(0)
words = "the quick brown fox jumps over a lazy dog while cats sleep in warm sun".split()
text = " ".join(rng.choice(words, int(sys.argv[1]) // 4))[: int(sys.argv[1])]
corpus = corpus_from_text(text)
cfg = ModelConfig(vocab_size=corpus.vocab.size, hidden_size=128)
model = ModelFile(cfg, init_params(cfg, rng), corpus.vocab)
t = time.perf_counter()
a = analyse(model, text, 5)
t_analyse = time.perf_counter() - t
t = time.perf_counter()
page = render(a, "page")
done(analyse_s=t_analyse, render_s=time.perf_counter() - t, page_mb=len(page) / 1e6)
"""

VOCAB_RUN = """
import numpy as np
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.events import EvalEvent, StepEvent
from charlstm_core.files.text import Corpus
from charlstm_core.files.vocab import encode_new, text_chunks
from charlstm_core.training.trainer import Trainer
V, N = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
cps = np.arange(0x4E00, 0x4E00 + V + 0x800) if V > 1000 else np.arange(0x21, 0x21 + V)
cps = cps[(cps < 0xD800) | (cps >= 0xE000)][:V]  # no surrogates
text = "".join(map(chr, np.concatenate([cps, rng.choice(cps, N - V)])))
t = time.perf_counter()
vocab, ids = encode_new(len(text), text_chunks(text))  # as load_corpus did, with no limit
corpus = Corpus(ids, vocab, "wide.txt", None, "utf-8", len(text.encode()), "0" * 64)
t_load = time.perf_counter() - t
mc = ModelConfig(vocab_size=vocab.size, hidden_size=32)
tc = TrainConfig(steps=5, sample_every=0)
trainer = Trainer(corpus, mc, tc)
marks = [("start", time.perf_counter())]
for event in trainer.run():
    if isinstance(event, (StepEvent, EvalEvent)):
        marks.append((type(event).__name__, time.perf_counter()))
steps = [b - a for (_, a), (k, b) in zip(marks, marks[1:]) if k == "StepEvent"]
evals = [b - a for (_, a), (k, b) in zip(marks, marks[1:]) if k == "EvalEvent"]
B, T, H = tc.batch_size, tc.seq_len, mc.hidden_size
logits_mb = B * T * vocab.size * 4 / 1e6
decoder = vocab.size * H  # multiply-adds per character: decoder H x V, layer 0 a gather
lstm = 4 * H * H
done(V=vocab.size, load_s=t_load, first_step_s=steps[0], later_steps_s=sum(steps[1:]),
     validation_s=sum(evals), logits_mb=logits_mb, decoder_share=decoder / (decoder + lstm),
     params=int(sum(p.size for p in trainer.params.values())))
"""


def child(code: str, *args: object) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", _CHILD_HEAD + code, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def sparse(tmp: str) -> None:
    path = os.path.join(tmp, "sparse.txt")
    with open(path, "wb") as f:
        f.truncate(SPARSE_BYTES)
    subject, reference = child(LOAD_CORPUS, path, 70), child(SPARSE_REFERENCE, path)
    print(f"sparse {SPARSE_BYTES / 2**30:.0f} GiB text refused: {subject['seconds'] * 1e3:.1f} ms, "
          f"{subject['peak_mb']:.0f} MB peak ({subject['said']!r})")  # fmt: skip
    print(f"  reference, the whole file read first: {reference['seconds']:.2f} s, "
          f"{reference['peak_mb']:.0f} MB peak")  # fmt: skip
    print(
        f"  ratio: {subject['seconds'] / reference['seconds']:.4f}x the time, "
        f"{subject['peak_mb'] / reference['peak_mb']:.4f}x the memory (target < 1 s, < 100 MB)"
    )


def html() -> None:
    r = child(HTML, HTML_CHARS)
    print(f"inspect page of {HTML_CHARS:,} characters: render {r['render_s']:.2f} s against "
          f"analyse {r['analyse_s']:.2f} s = {r['render_s'] / r['analyse_s']:.2f}x "
          f"({r['page_mb']:.1f} MB page, {r['peak_mb']:.0f} MB peak)")  # fmt: skip


def vocab(tmp: str) -> None:
    try:
        from charlstm_core.files.vocab import MAX_VOCAB  # the bound
    except ImportError:  # before it was set
        MAX_VOCAB = 1 << 15
    for v in (VOCAB, MAX_VOCAB, VOCAB_REF):
        r = child(VOCAB_RUN, v, VOCAB_LEN)
        print(f"V = {r['V']:,}, {VOCAB_LEN:,} characters, H = 32, 5 steps of 32 x 50: "
              f"encode {r['load_s']:.2f} s, first step {r['first_step_s']:.2f} s, next 4 "
              f"{r['later_steps_s']:.2f} s, validation {r['validation_s']:.2f} s; "
              f"{r['peak_mb']:.0f} MB peak; {r['params']:,} parameters; logits of a step "
              f"{r['logits_mb']:.0f} MB; decoder {r['decoder_share']:.1%} of the products"
              )  # fmt: skip
    path = os.path.join(tmp, "wide.txt")
    with open(path, "w", encoding="utf-8") as f:
        cps = [c for c in range(0x4E00, 0x4E00 + VOCAB + 0x800) if not 0xD800 <= c < 0xE000]
        f.write("".join(chr(cps[i % VOCAB]) for i in range(VOCAB_LEN)))
    r = child(LOAD_CORPUS, path, 60)
    print(f"  refusing that text now: {r['seconds']:.2f} s, {r['peak_mb']:.0f} MB peak "
          f"({r['said']!r})")  # fmt: skip


def main(argv: list[str]) -> None:
    cases = argv or ["sparse", "html", "vocab"]
    print(f"load: {os.getloadavg()[0]:.2f} (1 min)")
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            {"sparse": lambda: sparse(tmp), "html": html, "vocab": lambda: vocab(tmp)}[case]()


if __name__ == "__main__":
    main(sys.argv[1:])
