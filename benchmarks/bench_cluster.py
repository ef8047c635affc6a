"""Benchmark of sweeps on a Dask cluster (issue 21): what the cluster adds to a sweep's wall time.

The same 8-point sweep (learning rate x hidden size, a budget in steps, so both train exactly the
same steps) runs two ways on this machine, in the same run:

- ``--jobs 2``: ``charlstm_core.sweep.run_sweep`` with a pool of 2 processes, 1 BLAS thread each;
- a local Dask cluster of 2 worker processes of one thread each (``LocalCluster``, started before
  the clock starts, as a user's cluster is already running): ``connect``, ``list_workers``,
  ``check_workers``, then ``ClusterSweep.run`` to the last point's model and run brought home,
  1 BLAS thread per point (the host's 2 cores shared by its 2 workers); once with Dask's default
  settings and once with the lean worker settings of ``docs/dask-worker.yaml`` (no profiling of
  the tasks, slower monitors), which docs/cluster.md recommends.

Each wall runs from the call to the last point's result, the pool's start and the workers' first
imports included. The order alternates between repeats (pool first, then cluster first, ...),
each repeat on a fresh cluster; the figure is the median of the walls. Target: the cluster's
overhead, (cluster - pool) / cluster, at most 5% of the cluster's wall. The losses of every way
are compared too (same seed, same steps: they must be equal).

    flock -x /work/cpu.lock .venv/bin/python benchmarks/bench_cluster.py            # ~5 minutes
    flock -x /work/cpu.lock .venv/bin/python benchmarks/bench_cluster.py --short    # a check
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from charlstm_core import sweep  # noqa: E402
from charlstm_core.config import ModelConfig, TrainConfig  # noqa: E402
from charlstm_core.files.builtin_text import builtin_corpus  # noqa: E402

TARGET_OVERHEAD = 0.05


def pool_sweep(spec, points) -> tuple[float, dict[int, float | None]]:
    start = time.perf_counter()
    results = list(sweep.run_sweep(spec, points, jobs=2))
    wall = time.perf_counter() - start
    return wall, {r.index: r.best_val_loss for r in results}


LEAN = Path(__file__).resolve().parents[1] / "docs" / "dask-worker.yaml"


def lean_settings() -> dict:
    """docs/dask-worker.yaml as ``dask.config.set`` takes it: dotted keys, each setting alone
    (a nested dict would replace all of Dask's ``distributed`` settings)."""
    import yaml  # Dask's own dependency

    def flat(d: dict, prefix: str = "") -> dict:
        out = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    return flat(yaml.safe_load(LEAN.read_text(encoding="utf-8")))


def cluster_sweep(address: str, spec, points) -> tuple[float, dict[int, float | None]]:
    from charlstm_core.sweep import cluster

    start = time.perf_counter()
    client = cluster.connect(address)
    try:
        workers = cluster.list_workers(client)
        cluster.check_workers(workers, address, spec.device)
        runner = cluster.ClusterSweep(client, spec, points, workers=workers)
        results = [e.result for e in runner.run() if type(e).__name__ == "PointEnded"]
    finally:
        client.close()
    wall = time.perf_counter() - start
    assert all(r.status == "finished" for r in results), [r.message for r in results]
    return wall, {r.index: r.best_val_loss for r in results}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=400, help="steps per point (default 400)")
    ap.add_argument("--hidden", default="96,128", help="hidden sizes (default 96,128)")
    ap.add_argument("--repeats", type=int, default=2, help="pairs, alternating (default 2)")
    ap.add_argument("--short", action="store_true", help="30 steps, 1 repeat: a quick check")
    args = ap.parse_args()
    if args.short:
        args.steps, args.repeats = 30, 1
    from distributed import LocalCluster

    folder = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    text = folder / "python.txt"
    corpus = builtin_corpus(max_bytes=2_000_000)
    text.write_text(corpus.vocab.decode(corpus.ids), encoding="utf-8", errors="surrogatepass")
    base_model = ModelConfig(vocab_size=1, hidden_size=128, dropout=0.0)
    base_train = TrainConfig(
        seq_len=50, batch_size=32, steps=args.steps, eval_every=200, sample_every=0,
        checkpoint_every=200, eval_max_chars=50_000,
    )  # fmt: skip
    axes = sweep.parse_grid(["lr=2e-3,4e-3,8e-3,1.6e-2", f"hidden_size={args.hidden}"])
    points = sweep.grid_points(axes, base_model, base_train)
    assert len(points) == 8
    print(
        f"8 points: lr x hidden={args.hidden}, L=1 B=32 T=50, {args.steps} steps each, on "
        f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}"
    )
    import dask

    ways = ["pool", "cluster", "lean"]
    walls: dict[str, list[float]] = {w: [] for w in ways}
    losses: dict[str, dict[int, float | None]] = {}
    for rep in range(args.repeats):
        order = ways if rep % 2 == 0 else ways[::-1]
        for how in order:
            spec = sweep.SweepSpec(
                text_path=str(text), encoding=None, base_model=base_model,
                base_train=base_train, out_dir=str(folder / f"{how}{rep}"),
                runs_db=str(folder / "runs.sqlite"), sweep_label=f"bench {how} {rep}",
            )  # fmt: skip
            if how == "pool":
                wall, losses[how] = pool_sweep(spec, points)
            else:
                t0 = time.perf_counter()
                settings = lean_settings() if how == "lean" else {}
                with dask.config.set(settings), LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=None,
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                ) as lc:  # fmt: skip
                    up = time.perf_counter() - t0
                    wall, losses[how] = cluster_sweep(lc.scheduler_address, spec, points)
                print(f"  (cluster started in {up:.1f} s, not counted)")
            walls[how].append(wall)
            print(f"repeat {rep + 1}, {how:7s}: {wall:7.2f} s")
    pool = statistics.median(walls["pool"])
    same = losses["pool"] == losses["cluster"] == losses["lean"]
    print(f"--jobs 2 (median): {pool:.2f} s")
    for how, what in (("cluster", "Dask's default settings"), ("lean", "docs/dask-worker.yaml")):
        clus = statistics.median(walls[how])
        overhead = (clus - pool) / clus
        print(
            f"Dask cluster of 2 one-thread workers, {what}: {clus:.2f} s; overhead "
            f"{overhead:+.1%} of its wall (target <= {TARGET_OVERHEAD:.0%}; ratio "
            f"{overhead / TARGET_OVERHEAD:.2f}); cluster / pool wall {clus / pool:.3f}"
        )
    print(f"same losses every way: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
