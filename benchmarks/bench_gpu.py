"""GPU training speed (CuPy engine) against PyTorch's nn.LSTM (cuDNN) on the same GPU (issue 13).

One training step, both engines, float32, dropout off: one-hot input, L-layer LSTM, linear
decoder, softmax cross-entropy, backward, global-norm clip at 5, Adam; the recurrent state
carried between steps; the loss read back to the host every step (the trainer needs it to
check for divergence, so both pay that synchronisation). PyTorch runs ``nn.LSTM(V, H, L,
batch_first=True)`` + ``nn.Linear(H, V)`` + ``cross_entropy`` + ``clip_grad_norm_`` + ``Adam``
with cuDNN; its one-hot input is rows of an eye matrix. The engines alternate in one process
(warm-up steps first, then rounds of a few steps each) and the table reports median chars/s
(B*T / seconds per step) and the ratio CharLSTM / PyTorch, plus the ratio to the CPU engine's
figure on the 2-core reference machine (``--cpu-chars-per-s``, README's speed table).

    python benchmarks/bench_gpu.py                      # (L=2, H=512, T=100) at B=32 and B=256
    python benchmarks/bench_gpu.py --batch 32 --repeats 9
    python benchmarks/bench_gpu.py --check-kernels      # compile the fused kernels, no GPU needed

Targets: CharLSTM/PyTorch >= 0.5 at both batch sizes (stretch 1.0); x CPU >= 30 at B=32.
Without a usable GPU it stops with the reason (exit 2). Not yet run on a GPU in this project:
no figure from it has been measured.
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
from charlstm_core.engine import model  # noqa: E402
from charlstm_core.engine.devices import list_devices, make_engine, resolve_device  # noqa: E402
from charlstm_core.engine.kernels import KERNELS  # noqa: E402

V, L, H, T = 65, 2, 512, 100
CLIP, LR = 5.0, 2e-3
CPU_REFERENCE = 4200.0  # chars/s of the CPU engine at (L=2, H=512, B=32, T=100), 2-core machine


class CharLSTMStep:
    """The GPU engine's training step, as the trainer runs it."""

    def __init__(self, B: int, seed: int = 0) -> None:
        self.cfg = ModelConfig(vocab_size=V, hidden_size=H, num_layers=L, dropout=0.0)
        self.eng = make_engine(resolve_device("gpu"), self.cfg)
        rng = np.random.default_rng(seed)
        self.params = {
            k: self.eng.to_device(v) for k, v in model.init_params(self.cfg, rng).items()
        }
        self.adam = self.eng.adam(self.params)
        self.state = self.eng.zero_state(B)
        self.data = rng.integers(0, V, (B, T + 1))

    def step(self) -> float:
        d = self.data
        loss, grads, self.state = self.eng.loss_and_grads(
            self.params, d[:, :-1], d[:, 1:], self.state
        )
        norm = self.eng.global_norm(grads)
        self.eng.update(self.adam, self.params, grads, LR, CLIP, norm)
        return loss  # a float: the step has synchronised


class TorchStep:
    """The same step with torch.nn.LSTM on cuDNN."""

    def __init__(self, B: int, seed: int = 0) -> None:
        import torch

        self.torch = torch
        torch.manual_seed(seed)
        dev = torch.device("cuda")
        self.lstm = torch.nn.LSTM(V, H, L, batch_first=True).to(dev)
        self.dec = torch.nn.Linear(H, V).to(dev)
        self.opt = torch.optim.Adam([*self.lstm.parameters(), *self.dec.parameters()], lr=LR)
        self.eye = torch.eye(V, device=dev)
        data = np.random.default_rng(seed).integers(0, V, (B, T + 1))
        self.x = torch.as_tensor(data[:, :-1], device=dev)
        self.y = torch.as_tensor(data[:, 1:], device=dev).reshape(-1)
        self.state = (torch.zeros(L, B, H, device=dev), torch.zeros(L, B, H, device=dev))

    def step(self) -> float:
        torch = self.torch
        out, (h, c) = self.lstm(self.eye[self.x], self.state)
        loss = torch.nn.functional.cross_entropy(self.dec(out).reshape(-1, V), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([*self.lstm.parameters(), *self.dec.parameters()], CLIP)
        self.opt.step()
        self.state = (h.detach(), c.detach())
        return float(loss.item())


def _time(engine, steps: int) -> float:
    t = time.perf_counter()
    for _ in range(steps):
        engine.step()
    return (time.perf_counter() - t) / steps


def check_kernels() -> int:
    """Compile each fused kernel with NVRTC for float and double (no GPU needed, only CuPy's
    NVRTC: pip install 'cupy-cuda12x[ctk]'). CuPy wraps the same body in its own harness."""
    try:
        from cupy_backends.cuda.libs import nvrtc
    except ImportError as e:
        print(f"bench_gpu: CuPy's NVRTC binding cannot be imported ({e}).", file=sys.stderr)
        return 2
    failed = 0
    for dt in ("float", "double"):
        for k in KERNELS:
            sig = [f"const T {n}" for n in k.inputs] + [f"T &{n}" for n in k.outputs]
            args = list(k.inputs) + [f"{n}_p[j]" for n in k.outputs]
            params = [f"const {dt} {n}" for n in k.inputs] + [f"{dt}* {n}_p" for n in k.outputs]
            src = (
                f"template <typename T> __device__ void body({', '.join(sig)}) "
                f"{{ {k.cuda_source()[2]} }}\n"
                f'extern "C" __global__ void {k.name}({", ".join(params)}) {{ '
                f"int j = blockIdx.x * blockDim.x + threadIdx.x; body<{dt}>({', '.join(args)}); }}"
            )
            try:
                prog = nvrtc.createProgram(src, f"{k.name}_{dt}", [], [])
                nvrtc.compileProgram(prog, ["--gpu-architecture=compute_90"])
                print(f"{k.name} ({dt}): compiled, {len(nvrtc.getPTX(prog)):,} bytes of PTX")
            except Exception as e:  # NVRTC missing or a compile error: say which
                failed += 1
                print(f"{k.name} ({dt}): FAILED: {e}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, nargs="+", default=[32, 256], help="batch sizes B")
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds per engine")
    ap.add_argument("--steps", type=int, default=5, help="training steps per round")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps per engine first")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    ap.add_argument("--cpu-chars-per-s", type=float, default=CPU_REFERENCE,
                    help="the CPU engine's figure to compare with (default: %(default)g, the "
                    "2-core reference machine at B=32)")  # fmt: skip
    ap.add_argument("--check-kernels", action="store_true",
                    help="only compile the fused kernels with NVRTC (no GPU needed)")  # fmt: skip
    args = ap.parse_args(argv)
    if args.check_kernels:
        return check_kernels()
    report = list_devices()
    if not report.usable:
        print(f"bench_gpu: no usable GPU: {report.reason}.", file=sys.stderr)
        return 2
    torch_ok = not args.no_torch
    if torch_ok:
        try:
            import torch

            torch_ok = torch.cuda.is_available()
            if not torch_ok:
                print("torch sees no CUDA device: the PyTorch column is skipped.")
        except ImportError:
            torch_ok = False
            print("torch is not importable: the PyTorch column is skipped.")
    print("\n".join(report.lines()))
    print(f"(L={L}, H={H}, T={T}, V={V}), float32, dropout off; median of {args.repeats} rounds "
          f"of {args.steps} steps")  # fmt: skip
    head = f"{'B':>5} {'CharLSTM chars/s':>17} {'PyTorch chars/s':>16} {'ratio':>7} {'x CPU':>7}"
    print(head)
    print("-" * len(head))
    for B in args.batch:
        ours = CharLSTMStep(B)
        ref = TorchStep(B) if torch_ok else None
        for e in (ours, ref):
            if e is not None:
                _time(e, args.warmup)
        t_ours, t_ref = [], []
        for _ in range(args.repeats):
            t_ours.append(_time(ours, args.steps))
            if ref is not None:
                t_ref.append(_time(ref, args.steps))
        cps = B * T / statistics.median(t_ours)
        cps_ref = B * T / statistics.median(t_ref) if t_ref else float("nan")
        print(f"{B:>5} {cps:>17,.0f} {cps_ref:>16,.0f} {cps / cps_ref:>7.2f} "
              f"{cps / args.cpu_chars_per_s:>7.1f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
