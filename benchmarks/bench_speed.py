"""Training and sampling speed of the NumPy engine, side by side with torch.nn.LSTM (issue 2).

One training step = forward, softmax cross-entropy, backward, global-norm clip at 5, Adam update,
float32, one-hot input, the recurrent state carried between steps (truncated BPTT), 2 BLAS threads:
the CPU engine's ``loss_and_grads``, ``global_norm`` and ``update``, as the trainer calls them.
PyTorch runs ``nn.LSTM(V, H, L, batch_first=True)`` + ``nn.Linear(H, V)`` + ``cross_entropy`` +
``clip_grad_norm_`` + ``Adam`` with ``torch.set_num_threads(2)``; its one-hot input is built by
indexing an eye matrix. The two engines alternate in the same process (several repeats of a few
steps each, after warm-up steps), and the table reports the median and the minimum time per step as
chars/s (B*T / seconds). The torch column is skipped when torch is not importable.

    .venv/bin/python benchmarks/bench_speed.py                # all three configurations
    .venv/bin/python benchmarks/bench_speed.py --repeats 9 --steps 3
    .venv/bin/python benchmarks/bench_speed.py --no-torch

Targets: numpy/torch >= 1.0 on every configuration; single-stream sampling (B=1, L=2, H=512,
softmax + a draw from the distribution per character) >= 3,000 chars/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
from charlstm_core.config import ModelConfig  # noqa: E402
from charlstm_core.engine import memory, model, parallel  # noqa: E402
from charlstm_core.engine.cpu import CpuEngine  # noqa: E402

V = 65
CONFIGS = [(2, 512, 32, 100), (1, 512, 64, 100), (2, 256, 32, 100)]  # (L, H, B, T)
CLIP = 5.0
LR = 2e-3
THREADS = 2


class NumpyEngine:
    def __init__(self, L: int, H: int, B: int, T: int, seed: int = 0) -> None:
        self.cfg = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, dropout=0.0)
        memory.keep_freed_memory()  # as charlstm_core.training.trainer.Trainer does
        self.engine = CpuEngine(self.cfg)
        rng = np.random.default_rng(seed)
        self.params = model.init_params(self.cfg, rng)
        self.adam = self.engine.adam(self.params)
        self.state = self.engine.zero_state(B)
        self.data = rng.integers(0, V, size=(16, B, T + 1))
        self.i = 0

    def step(self) -> float:
        d = self.data[self.i % len(self.data)]
        self.i += 1
        eng = self.engine
        loss, grads, self.state = eng.loss_and_grads(self.params, d[:, :-1], d[:, 1:], self.state)
        eng.update(self.adam, self.params, grads, LR, CLIP, eng.global_norm(grads))
        return loss


class TorchEngine:
    def __init__(self, L: int, H: int, B: int, T: int, seed: int = 0) -> None:
        import torch

        self.torch = torch
        torch.manual_seed(seed)
        self.lstm = torch.nn.LSTM(V, H, L, batch_first=True)
        self.dec = torch.nn.Linear(H, V)
        self.ps = list(self.lstm.parameters()) + list(self.dec.parameters())
        self.opt = torch.optim.Adam(self.ps, lr=LR)
        self.eye = torch.eye(V)
        self.state = (torch.zeros(L, B, H), torch.zeros(L, B, H))
        g = np.random.default_rng(seed)
        self.data = torch.from_numpy(g.integers(0, V, size=(16, B, T + 1)))
        self.i = 0

    def step(self) -> float:
        torch = self.torch
        d = self.data[self.i % len(self.data)]
        self.i += 1
        x, y = d[:, :-1], d[:, 1:]
        out, (h, c) = self.lstm(self.eye[x], self.state)
        self.state = (h.detach(), c.detach())
        logits = self.dec(out)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.ps, CLIP)
        self.opt.step()
        return float(loss.detach())


def _time_steps(engine, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        engine.step()
    return (time.perf_counter() - t0) / n


def bench_training(L, H, B, T, repeats, steps, warmup, use_torch):
    engines = {"numpy": NumpyEngine(L, H, B, T)}
    if use_torch:
        engines["torch"] = TorchEngine(L, H, B, T)
    for e in engines.values():
        for _ in range(warmup):
            e.step()
    times: dict[str, list[float]] = {k: [] for k in engines}
    for r in range(repeats):
        order = list(engines) if r % 2 == 0 else list(reversed(engines))  # alternate who goes first
        for k in order:
            times[k].append(_time_steps(engines[k], steps))
    return {k: (B * T / statistics.median(v), B * T / min(v)) for k, v in times.items()}


def bench_sampling(n_chars: int, repeats: int) -> tuple[float, float]:
    """Single-stream generation at L=2, H=512: the engine's step, softmax (T = 0.8), one draw."""
    cfg = ModelConfig(vocab_size=V, hidden_size=512, num_layers=2, dropout=0.0)
    rng = np.random.default_rng(0)
    engine = CpuEngine(cfg)
    prep = engine.prepare(model.init_params(cfg, rng))
    inv_t = np.float32(1 / 0.8)

    def run(n: int) -> float:
        state = engine.zero_state(1)
        ids = np.zeros(1, np.int64)
        t0 = time.perf_counter()
        for _ in range(n):
            logits, state = engine.step(prep, ids, state)
            z = logits[0] * inv_t
            p = np.exp(z - z.max())
            cdf = np.cumsum(p)
            ids[0] = min(int(np.searchsorted(cdf, rng.random() * cdf[-1])), V - 1)
        return (time.perf_counter() - t0) / n

    run(50)
    ts = [run(n_chars) for _ in range(repeats)]
    return 1 / statistics.median(ts), 1 / min(ts)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds per engine")
    ap.add_argument("--steps", type=int, default=3, help="training steps per round")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per engine first")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    args = ap.parse_args(argv)

    use_torch = not args.no_torch
    if use_torch:
        try:
            import torch

            torch.set_num_threads(THREADS)
        except ImportError:
            use_torch = False
            print("torch is not importable: the PyTorch column is skipped.")

    with parallel.blas_thread_count(THREADS):
        print(
            f"training chars/s, float32, {THREADS} threads, V={V}, "
            f"CpuEngine (core/engine/cpu.py), Adam + clip {CLIP:g}; "
            f"{args.repeats} rounds x {args.steps} steps per engine, interleaved "
            f"(median / min-time)"
        )
        head = f"{'L':>2} {'H':>5} {'B':>4} {'T':>4} | {'numpy med':>10} {'numpy best':>10}"
        if use_torch:
            head += f" | {'torch med':>10} {'torch best':>10} | {'ratio med':>9} {'ratio best':>10}"
        print(head)
        print("-" * len(head))
        for L, H, B, T in CONFIGS:
            res = bench_training(L, H, B, T, args.repeats, args.steps, args.warmup, use_torch)
            nm, nb = res["numpy"]
            line = f"{L:>2} {H:>5} {B:>4} {T:>4} | {nm:>10,.0f} {nb:>10,.0f}"
            if use_torch:
                tm, tb = res["torch"]
                line += f" | {tm:>10,.0f} {tb:>10,.0f} | {nm / tm:>8.2f}x {nb / tb:>9.2f}x"
            print(line, flush=True)
        med, best = bench_sampling(1000, args.repeats)
        print(
            f"\nsingle-stream sampling (B=1, L=2, H=512, engine step + softmax + draw): "
            f"median {med:,.0f} chars/s, best {best:,.0f} chars/s (target 3,000)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
