"""Sweeps: grid parsing, running points in turn and in processes, ranking, failures, stopping."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from charlstm_core import sweep
from charlstm_core.cli import parser as cli
from charlstm_core.cli.table import sweep_table
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.engine.cpu import CpuEngine
from charlstm_core.errors import ConfigError, RunStoreError
from charlstm_core.events import StepEvent
from charlstm_core.files.modelfile import load_model
from charlstm_core.runs import RunStore
from charlstm_core.training import trainer as trainer_mod
from helpers import make_text

ROOT = Path(__file__).resolve().parents[1]
BASE_MODEL = ModelConfig(vocab_size=1, hidden_size=16)
BASE_TRAIN = TrainConfig(seq_len=16, batch_size=4, steps=20, eval_every=10, sample_every=0)
ALIASES = {"hidden": "hidden_size", "seq-len": "seq_len", "layers": "num_layers"}
TINY = ["--seq-len", "16", "--batch-size", "4", "--eval-every", "10"]


def spec_for(text: Path, out: str = "out", **train) -> sweep.SweepSpec:
    return sweep.SweepSpec(
        text_path=str(text),
        encoding=None,
        base_model=BASE_MODEL,
        base_train=BASE_TRAIN.replace(**train),
        out_dir=str(text.parent / out),
        runs_db=str(text.parent / "runs.sqlite"),
        sweep_label="test sweep",
    )


def four_points() -> tuple[list[sweep.Axis], list[sweep.SweepPoint]]:
    axes = sweep.parse_grid(["lr=2e-3,8e-3", "hidden=16,24"], ALIASES)
    return axes, sweep.grid_points(axes, BASE_MODEL, BASE_TRAIN)


# ---------------------------------------------------------------------------------------------
# Grids


def test_grid_keys_are_fields_or_cli_names_and_values_take_the_field_type():
    axes = sweep.parse_grid(["lr=2e-3, 4e-3", "hidden=256,512", "seq-len=50", "dropout=0"], ALIASES)
    assert [(a.field, a.values) for a in axes] == [
        ("lr", (2e-3, 4e-3)),
        ("hidden_size", (256, 512)),
        ("seq_len", (50,)),
        ("dropout", (0.0,)),
    ]
    assert isinstance(axes[1].values[0], int) and isinstance(axes[3].values[0], float)
    assert sweep.parse_grid(["hidden_size=1e2"])[0].values == (100,)
    assert sweep.parse_grid(["lr_schedule=constant,cosine"])[0].values == ("constant", "cosine")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("colour=1,2", "no setting called 'colour'"),
        ("hidden=12.5", "not a whole number"),
        ("lr=fast", "not a number"),
        ("lr=1e-3,,2e-3", "empty value"),
        ("lr", "e.g. lr=2e-3"),
        ("steps=10,20", "same budget"),
        ("vocab_size=3", "no setting"),
        ("lr=1e-3,1e-3", "listed twice"),
    ],
)
def test_bad_grid_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ConfigError, match=message):
        sweep.parse_grid([spec], ALIASES)


def test_points_are_the_product_and_checked_against_the_ranges():
    axes, points = four_points()
    assert [p.label for p in points] == [
        "lr=0.002 hidden=16",
        "lr=0.002 hidden=24",
        "lr=0.008 hidden=16",
        "lr=0.008 hidden=24",
    ]
    mc, tc = points[3].configs(BASE_MODEL, BASE_TRAIN)
    assert (mc.hidden_size, tc.lr, tc.steps, tc.seq_len) == (24, 8e-3, 20, 16)
    with pytest.raises(ConfigError, match="Grid point hidden=4"):
        sweep.grid_points(sweep.parse_grid(["hidden=4"], ALIASES), BASE_MODEL, BASE_TRAIN)
    with pytest.raises(ConfigError, match="lr_schedule"):
        sweep.grid_points(sweep.parse_grid(["lr_schedule=wavy"]), BASE_MODEL, BASE_TRAIN)
    with pytest.raises(ConfigError, match="at least one"):
        sweep.grid_points([], BASE_MODEL, BASE_TRAIN)


def test_cores_are_shared_between_jobs():
    assert sweep.split_cores(1, cores=8) == 8
    assert sweep.split_cores(2, cores=8) == 4
    assert sweep.split_cores(3, cores=2) == 1


# ---------------------------------------------------------------------------------------------
# Running


def test_a_sweep_of_four_points_records_four_runs_and_ranks_them(text):
    axes, points = four_points()
    spec = spec_for(text)
    results = list(sweep.run_sweep(spec, points))
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert all(r.status == "finished" and r.steps == 20 for r in results)
    ranked = sweep.rank(results)
    losses = [r.best_val_loss for r in ranked]
    assert losses == sorted(losses)
    with RunStore.open(spec.runs_db) as store:
        recorded = store.list_runs(sweep="test sweep")
        assert sorted(r.id for r in recorded) == sorted(r.run_id for r in results)
        by_id = {r.id: r for r in recorded}
        for r in results:
            run = by_id[r.run_id]
            assert run.name == r.label and run.source == "sweep" and run.status == "finished"
            assert run.best_val_loss == pytest.approx(r.best_val_loss)
            assert run.model["hidden_size"] == r.changes["hidden_size"]
            assert run.train["lr"] == r.changes["lr"]
            assert load_model(r.model_path).config.hidden_size == r.changes["hidden_size"]
    table = sweep_table(results, axes).splitlines()
    assert table[0].split()[:3] == ["#", "lr", "hidden"]
    assert table[1].split()[0] == "1" and f"{ranked[0].best_val_loss:.4f}" in table[1]


def test_jobs_2_gives_the_same_results_as_jobs_1(text):
    _, points = four_points()
    serial = list(sweep.run_sweep(spec_for(text, "serial"), points, jobs=1))
    parallel = sorted(
        sweep.run_sweep(spec_for(text, "parallel"), points, jobs=2), key=lambda r: r.index
    )
    assert [r.status for r in parallel] == ["finished"] * 4
    assert [r.best_val_loss for r in parallel] == [r.best_val_loss for r in serial]
    assert [r.final_val_loss for r in parallel] == [r.final_val_loss for r in serial]
    for a, b in zip(serial, parallel, strict=True):
        pa, pb = load_model(a.model_path).params, load_model(b.model_path).params
        assert all(np.array_equal(pa[k], pb[k]) for k in pa)
    with RunStore.open(spec_for(text).runs_db) as store:
        assert len(store.list_runs()) == 8


def test_a_diverged_point_is_reported_and_the_others_go_on(text, monkeypatch):
    real = CpuEngine.loss_and_grads

    def diverging_when_wide(engine, *args, **kwargs):
        loss, grads, state = real(engine, *args, **kwargs)
        return (float("nan") if engine.cfg.hidden_size == 24 else loss), grads, state

    monkeypatch.setattr(CpuEngine, "loss_and_grads", diverging_when_wide)
    axes = sweep.parse_grid(["lr=2e-3,8e-3", "hidden=16,24"], ALIASES)
    stop = BASE_TRAIN.replace(on_divergence="stop")  # no healing: the first NaN ends the point
    points = sweep.grid_points(axes, BASE_MODEL, stop)
    results = list(sweep.run_sweep(spec_for(text, on_divergence="stop"), points))
    status = {r.label: r.status for r in results}
    assert status == {
        "lr=0.002 hidden=16": "finished",
        "lr=0.002 hidden=24": "diverged",
        "lr=0.008 hidden=16": "finished",
        "lr=0.008 hidden=24": "diverged",
    }
    ranked = sweep.rank(results)
    assert [r.status for r in ranked] == ["finished", "finished", "diverged", "diverged"]
    table = sweep_table(results, axes)
    assert "diverged" in table and "Training diverged at step 1" in table
    with RunStore.open(spec_for(text).runs_db) as store:
        assert sorted(r.status for r in store.list_runs()) == ["diverged"] * 2 + ["finished"] * 2


def test_a_failing_point_does_not_stop_the_others(text, monkeypatch):
    real = trainer_mod.Trainer.__init__

    def failing(self, corpus, mc, tc, **kwargs):
        if tc.lr == 2e-3:
            raise RuntimeError("boom")
        real(self, corpus, mc, tc, **kwargs)

    monkeypatch.setattr(trainer_mod.Trainer, "__init__", failing)
    _, points = four_points()
    results = list(sweep.run_sweep(spec_for(text), points))
    assert [r.status for r in results] == ["failed", "failed", "finished", "finished"]
    assert "boom" in results[0].message and results[0].run_id is None


def test_stop_ends_the_current_point_and_skips_the_rest(text):
    _, points = four_points()
    stop = threading.Event()
    spec = spec_for(text, steps=10_000)
    seen = []

    def on_event(point, event):
        seen.append(point.index)
        if isinstance(event, StepEvent) and event.step == 5:
            stop.set()

    results = list(sweep.run_sweep(spec, points, stop=stop, on_event=on_event))
    assert [r.status for r in results] == ["stopped", "skipped", "skipped", "skipped"]
    assert set(seen) == {0} and results[0].steps < 10_000
    assert load_model(results[0].model_path).train.step == results[0].steps
    with RunStore.open(spec.runs_db) as store:
        (run,) = store.list_runs()
        assert run.status == "stopped" and run.steps == results[0].steps


def test_resume_continues_an_interrupted_point_bit_for_bit(text):
    from charlstm_core.files.text import load_corpus
    from charlstm_core.sweep.run import unfinished_checkpoint

    _, points = four_points()
    point = points[3]  # lr=8e-3 hidden=24
    whole_spec = spec_for(text, "whole", steps=30, checkpoint_every=4)
    cut = spec_for(text, "cut", steps=30, checkpoint_every=4)
    for s in (whole_spec, cut):
        os.makedirs(s.out_dir)  # as run_sweep makes it
    whole = sweep.run_point(whole_spec, point)

    class Killed(BaseException):
        """As a process killed after step 17: nothing more runs, no save at the end."""

    def dies_after_step_17(event):
        if isinstance(event, StepEvent) and event.step == 17:
            raise Killed

    with pytest.raises(Killed):
        sweep.run_point(cut, point, on_event=dies_after_step_17)
    path = os.path.join(cut.out_dir, sweep.point_file_name(point))
    assert load_model(path).train.step == 16  # the last checkpoint
    corpus = load_corpus(str(text))
    mc, tc = point.configs(cut.base_model, cut.base_train)
    assert unfinished_checkpoint(path, mc, tc, corpus) is not None
    assert unfinished_checkpoint(path, dataclasses.replace(mc, hidden_size=16), tc, corpus) is None
    assert unfinished_checkpoint(path, mc, tc.replace(lr=2e-3), corpus) is None
    assert unfinished_checkpoint(path + ".none", mc, tc, corpus) is None

    resumed = sweep.run_point(dataclasses.replace(cut, resume=True), point)
    assert resumed.status == "finished" and resumed.steps == 30
    assert resumed.best_val_loss == whole.best_val_loss
    a, b = load_model(whole.model_path), load_model(resumed.model_path)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    with RunStore.open(cut.runs_db) as store:
        run = store.get(resumed.run_id)
        assert run.start_step == 16 and run.steps == 30 and run.status == "finished"
    assert unfinished_checkpoint(path, mc, tc, corpus) is None  # finished: never continued
    again = sweep.run_point(dataclasses.replace(cut, resume=True), point)  # so it trains afresh
    assert again.steps == 30 and again.best_val_loss == whole.best_val_loss


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_sweep_prints_a_ranked_table_and_records_runs(text, capsys):
    argv = ["sweep", text, "--grid", "lr=2e-3,8e-3", "--grid", "hidden=16,24", "--steps", "20"]
    code = cli.main([str(a) for a in [*argv, *TINY, "--out-dir", "sw"]])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["#", "lr", "hidden", "status"] and len(lines) == 5
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "3", "4"]
    bests = [float(line.split()[4]) for line in lines[1:]]
    assert bests == sorted(bests)
    assert "[4/4]" in err and len(list(Path("sw").glob("*.npz"))) == 4
    with RunStore.open() as store:
        assert len(store.list_runs(status="finished")) == 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--grid", "colour=1", "--steps", "5"], "no setting called 'colour'"),
        (["--grid", "hidden=4", "--steps", "5"], "hidden size"),
        (["--grid", "lr=1e-3"], "one of the arguments --steps --epochs --minutes is required"),
        (["--grid", "lr=1e-3", "--steps", "5", "--jobs", "0"], "--jobs must be at least 1"),
    ],
)
def test_cli_sweep_usage_errors(text, capsys, extra, message):
    code = cli.main(["sweep", str(text), *extra])
    _, err = capsys.readouterr()
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
@pytest.mark.parametrize("jobs", [1, 2])
def test_ctrl_c_stops_the_sweep_keeping_what_ran(text, jobs):
    db = text.parent / "runs.sqlite"
    argv = [
        sys.executable,
        "-m",
        "charlstm_core",
        "sweep",
        str(text),
        "--grid",
        "lr=2e-3,4e-3,8e-3",
    ]
    argv += [*TINY, "--hidden", "16", "--steps", "1000000", "--jobs", str(jobs)]
    argv += ["--runs-db", str(db), "--out-dir", str(text.parent / "sw")]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # steady on a busy machine
    proc = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        steps = 0
        while steps < 20 * jobs and time.monotonic() < deadline:
            time.sleep(0.2)
            assert proc.poll() is None, proc.communicate()
            with contextlib.suppress(RunStoreError):
                with RunStore.open(db) as store:
                    steps = sum(r.steps for r in store.list_runs())
        proc.send_signal(signal.SIGINT)  # to the main process only
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "Traceback" not in out + err and "interrupted" in err
    statuses = [line.split()[2] for line in out.splitlines()[1:4]]
    assert sorted(statuses) == sorted(["stopped"] * jobs + ["skipped"] * (3 - jobs))
    with RunStore.open(db) as store:
        runs = store.list_runs()
    assert len(runs) == jobs and all(r.status == "stopped" and r.steps > 0 for r in runs)
    for r in runs:
        assert load_model(r.model_path).train.step == r.steps


def test_a_front_end_can_pass_its_corpus_and_rebuild_results_from_the_store(text):
    from charlstm_core.files.text import corpus_from_text

    _, points = four_points()
    spec = dataclasses.replace(spec_for(text), text_path="")  # an in-memory text: no file
    corpus = corpus_from_text(make_text(), name="in memory")
    results = list(sweep.run_sweep(spec, points[:2], corpus=corpus))
    assert [r.status for r in results] == ["finished", "finished"]
    with RunStore.open(spec.runs_db) as store:
        rebuilt = [
            sweep.result_from_run(p, store.get(r.run_id))
            for p, r in zip(points[:2], results, strict=True)
        ]
    for a, b in zip(results, rebuilt, strict=True):
        assert (a.status, a.steps, a.run_id, a.model_path) == (
            b.status,
            b.steps,
            b.run_id,
            b.model_path,
        )
        assert a.best_val_loss == pytest.approx(b.best_val_loss)
    assert sweep.rank(rebuilt)[0].best_val_loss == min(r.best_val_loss for r in results)
