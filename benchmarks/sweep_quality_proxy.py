"""Compare many 10-minute training recipes quickly: the engine's recipe re-run in PyTorch.

A 10-minute quality run (``bench_quality.py``) takes 10 minutes of this machine, alone. To choose
the defaults among many recipes, this script re-runs the engine's exact recipe in PyTorch — on a GPU
when there is one — giving each recipe the number of optimizer steps THIS engine makes in 10 minutes
on the machine where ``--measure`` ran (step and validation times measured there, validations every
200 steps counted in the time, as ``charlstm train --minutes`` counts them).

The recipe is core's: one-hot input, ``nn.LSTM`` (PyTorch's gate layout, forget-gate bias 1 in
``bias_ih``), inverted dropout between layers and before the decoder, U(-1/√H, 1/√H) initialisation,
Adam, global-norm clip 5, ``charlstm_core.engine.optim.learning_rate`` (warm-up then cosine), B
contiguous
streams with the state carried and reset each epoch, validation on the last 10% in 32 zero-state
streams. Several recipes run at once on threads, each with its own CUDA stream.

Use it to rank recipes, not for the figure itself: run the same way, it agreed with the engine
within about 0.01 nats/char over 1,610 steps (README, Quality), but each budget rests on one short
timing of the step. Choose with it, then confirm with ``bench_quality.py``.

    python benchmarks/sweep_quality_proxy.py --measure steptime.jsonl     # on the target machine
    python benchmarks/sweep_quality_proxy.py --times steptime.jsonl --threads 12 --out results/
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from charlstm_core.config import ModelConfig, TrainConfig  # noqa: E402
from charlstm_core.engine.optim import learning_rate  # noqa: E402

DEFAULT_TEXT = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
EVAL_EVERY = 200
BASE = (1, 512, 32, 100)  # (L, H, B, T): the defaults before this sweep
ARCHS = [BASE, (1, 512, 16, 100), (1, 512, 32, 50), (1, 384, 32, 100), (1, 384, 16, 100),
         (1, 512, 16, 50), (1, 512, 64, 100), (1, 640, 32, 100), (1, 384, 64, 100),
         (2, 256, 32, 100), (2, 384, 32, 100), (1, 256, 32, 100)]  # fmt: skip
LARGE = [(1, 768, 32, 100), (1, 768, 16, 100), (2, 512, 32, 100), (1, 512, 32, 200)]


def measure(text: str, archs: list[tuple[int, int, int, int]], out: str) -> None:
    """Time this engine's training step (best of 7 after 2) and one validation, per arch."""
    from charlstm_core.events import StepEvent
    from charlstm_core.files.text import load_corpus
    from charlstm_core.training.trainer import Trainer

    corpus = load_corpus(text, None)
    with open(out, "w") as f:
        for L, H, B, T in archs:
            mc = ModelConfig(vocab_size=corpus.vocab.size, hidden_size=H, num_layers=L)
            tc = TrainConfig(batch_size=B, seq_len=T, steps=10**6, eval_every=0,
                             sample_every=0, checkpoint_every=0)  # fmt: skip
            tr = Trainer(corpus, mc, tc)
            times, t = [], time.perf_counter()
            for ev in tr.run():
                if isinstance(ev, StepEvent):
                    now = time.perf_counter()
                    times.append(now - t)
                    t = now
                    if len(times) >= 9:
                        break
            t0 = time.perf_counter()
            tr._validate()
            row = {"arch": [L, H, B, T], "step_s": min(times[2:]),
                   "eval_s": time.perf_counter() - t0}  # fmt: skip
            f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


class Sweep:
    def __init__(self, text: str, times: str, out_dir: str, minutes: float) -> None:
        import torch

        self.torch = torch
        self.dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 maths, as the engine's
        torch.backends.cudnn.allow_tf32 = False
        s = Path(text).read_text(encoding="utf-8")
        chars = sorted(set(s))
        self.V = len(chars)
        lut = {c: i for i, c in enumerate(chars)}
        ids = torch.tensor([lut[c] for c in s], dtype=torch.int64)
        n_val = int(len(ids) * 0.1)
        self.train = ids[: len(ids) - n_val].to(self.dev)
        self.val = ids[len(ids) - n_val :].to(self.dev)
        self.times = {}
        for line in open(times):
            r = json.loads(line)
            self.times[tuple(r["arch"])] = (r["step_s"], r["eval_s"])
        self.minutes = minutes
        os.makedirs(out_dir, exist_ok=True)
        self.results = os.path.join(out_dir, "results.jsonl")
        self.lock = threading.Lock()

    def budget(self, arch) -> int:
        """Steps the engine makes in ``minutes``, validations every EVAL_EVERY steps included."""
        step_s, eval_s = self.times[arch]
        return max(10, int((self.minutes * 60 - eval_s) / (step_s + eval_s / EVAL_EVERY)))

    def recipe(self, arch, **kw) -> dict:
        L, H, B, T = arch
        c = dict(L=L, H=H, B=B, T=T, lr=3e-3, dropout=0.1, min_lr=0.1, beta2=0.999, warmup=100,
                 seed=1234)  # fmt: skip
        c.update(kw)
        c["steps"] = self.budget(arch)
        c["id"] = "L{L} H{H} B{B} T{T} lr {lr:g} dropout {dropout:g} min_lr {min_lr:g} " \
                  "beta2 {beta2:g} seed {seed}".format(**c)  # fmt: skip
        return c

    def _net(self, c):
        torch, nn = self.torch, self.torch.nn
        H, L, p, V = c["H"], c["L"], c["dropout"], self.V
        gen = torch.Generator().manual_seed(c["seed"])

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(V, H, L, batch_first=True, dropout=p if L > 1 else 0.0)
                self.drop = nn.Dropout(p)
                self.dec = nn.Linear(H, V)
                bound = 1 / math.sqrt(H)
                with torch.no_grad():
                    for w in self.parameters():
                        w.copy_(torch.empty(w.shape).uniform_(-bound, bound, generator=gen))
                    for k in range(L):
                        getattr(self.lstm, f"bias_ih_l{k}")[H : 2 * H] = 1.0

            def forward(self, x, state):
                y, state = self.lstm(nn.functional.one_hot(x, V).float(), state)
                return self.dec(self.drop(y)), state

        return Net().to(self.dev)

    def _validate(self, net, c) -> float:
        torch, F = self.torch, self.torch.nn.functional
        H, L, T = c["H"], c["L"], c["T"]
        net.eval()
        with torch.no_grad():
            S = 32
            seg = (len(self.val) - 1) // S
            x_all = self.val[: S * seg].view(S, seg)
            y_all = self.val[1 : S * seg + 1].view(S, seg)
            zeros = torch.zeros(L, S, H, device=self.dev)
            state = (zeros, zeros.clone())
            total = torch.zeros((), dtype=torch.float64, device=self.dev)
            for s in range(0, seg, T):
                logits, state = net(x_all[:, s : s + T], state)
                total += F.cross_entropy(
                    logits.reshape(-1, self.V), y_all[:, s : s + T].reshape(-1), reduction="sum"
                ).double()
        net.train()
        return float(total) / (S * seg)

    def run(self, c) -> dict:
        torch, F = self.torch, self.torch.nn.functional
        L, H, B, T, total = c["L"], c["H"], c["B"], c["T"], c["steps"]
        tc = TrainConfig(
            lr=c["lr"], warmup_steps=c["warmup"], min_lr_ratio=c["min_lr"], steps=total
        )
        net = self._net(c)
        opt = torch.optim.Adam(net.parameters(), lr=c["lr"], betas=(0.9, c["beta2"]), eps=1e-8)
        seg = (len(self.train) - 1) // B
        per_epoch = seg // T
        starts = torch.arange(B, device=self.dev) * seg
        cols = torch.arange(T + 1, device=self.dev)
        zeros = torch.zeros(L, B, H, device=self.dev)
        state, hist, batch, t0 = (zeros, zeros.clone()), [], 0, time.time()
        for step in range(total):
            w = self.train[(starts + batch * T)[:, None] + cols]
            for g in opt.param_groups:
                g["lr"] = learning_rate(tc, step, total)
            logits, state = net(w[:, :-1], state)
            state = (state[0].detach(), state[1].detach())
            loss = F.cross_entropy(logits.reshape(-1, self.V), w[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            batch += 1
            if batch >= per_epoch:
                batch = 0
                state = (torch.zeros_like(state[0]), torch.zeros_like(state[1]))
            if (step + 1) % EVAL_EVERY == 0 or step + 1 == total:
                hist.append((step + 1, round(self._validate(net, c), 4)))
                if not math.isfinite(hist[-1][1]):
                    break
        vals = [v for _, v in hist]
        return {**c, "final": vals[-1], "best": min(vals), "hist": hist,
                "seconds": round(time.time() - t0, 1)}  # fmt: skip

    def sweep(self, recipes: list[dict], threads: int, deadline: float) -> None:
        queue = list(recipes)

        def worker(stream):
            while True:
                with self.lock:
                    if not queue or time.time() > deadline:
                        return
                    c = queue.pop(0)
                try:
                    if stream is not None:
                        with self.torch.cuda.stream(stream):
                            r = self.run(c)
                    else:
                        r = self.run(c)
                except Exception as e:  # a failed recipe is reported, the sweep goes on
                    r = {**c, "error": repr(e)}
                with self.lock:
                    with open(self.results, "a") as f:
                        f.write(json.dumps(r) + "\n")
                    print(r["id"], r.get("final", r.get("error")), flush=True)

        cuda = self.dev.type == "cuda"
        ts = [threading.Thread(target=worker, args=(self.torch.cuda.Stream() if cuda else None,))
              for _ in range(threads)]  # fmt: skip
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    def stage1(self) -> list[dict]:
        """Seeds of the old defaults, then learning rate x dropout per architecture."""
        out = [self.recipe(BASE, seed=s) for s in (1234, 1, 2)]
        for arch in ARCHS:
            for lr, p in itertools.product((2e-3, 3e-3, 5e-3), (0.0, 0.1, 0.2)):
                if arch != BASE or (lr, p) != (3e-3, 0.1):
                    out.append(self.recipe(arch, lr=lr, dropout=p))
        for arch in LARGE:
            out += [self.recipe(arch, lr=lr) for lr in (3e-3, 5e-3)]
        return [c for c in out if (c["L"], c["H"], c["B"], c["T"]) in self.times]

    def stage2(self, top: int = 6) -> list[dict]:
        """Around the best recipes so far: decay to 0, beta2 0.99, 1.6x the rate, another seed."""
        done = [json.loads(line) for line in open(self.results)]
        ok = sorted((r for r in done if math.isfinite(r.get("final", math.nan))),
                    key=lambda r: r["final"])  # fmt: skip
        out, seen = [], set()
        for r in ok:
            key = (r["L"], r["H"], r["B"], r["T"], r["lr"], r["dropout"])
            if key in seen:
                continue
            seen.add(key)
            arch, base = key[:4], dict(lr=r["lr"], dropout=r["dropout"])
            out += [
                self.recipe(arch, **base, min_lr=0.0),
                self.recipe(arch, **base, beta2=0.99),
                self.recipe(arch, **base, min_lr=0.0, beta2=0.99),
                self.recipe(arch, lr=r["lr"] * 1.6, dropout=r["dropout"]),
                self.recipe(arch, **base, seed=7),
            ]
            if len(seen) >= top:
                break
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", default=str(DEFAULT_TEXT))
    ap.add_argument("--measure", metavar="FILE", help="time this engine here and write FILE")
    ap.add_argument("--times", metavar="FILE", help="step times written by --measure")
    ap.add_argument("--out", default=os.environ.get("OUT", "sweep_out"))
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--stage1-seconds", type=float, default=330.0)
    ap.add_argument("--seconds", type=float, default=490.0, help="stop starting recipes after")
    args = ap.parse_args()
    if args.measure:
        measure(args.text, ARCHS + LARGE, args.measure)
        return 0
    if not args.times:
        ap.error("give --times FILE (from --measure) or --measure FILE")
    start = time.time()
    sw = Sweep(args.text, args.times, args.out, args.minutes)
    print("device", sw.dev, "budgets", {str(a): sw.budget(a) for a in sw.times}, flush=True)
    sw.sweep(sw.stage1(), args.threads, start + args.stage1_seconds)
    sw.sweep(sw.stage2(), args.threads, start + args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
