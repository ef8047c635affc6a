"""The ``charlstm`` command line: train, resume, Ctrl-C, sample, eval, info and its error lines.

Everything runs in-process through ``charlstm_core.cli.parser.main`` on tiny generated texts, plus
one
subprocess check of ``python -m charlstm_core``.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from charlstm_core.cli import console
from charlstm_core.cli import parser as cli
from charlstm_core.engine.cpu import CpuEngine
from charlstm_core.events import StepEvent, TrainSummary
from charlstm_core.files.modelfile import ModelFile, load_model, save_model
from charlstm_core.insight.inspect import DETECTORS
from charlstm_core.training import trainer as trainer_mod
from charlstm_core.training.policy import text_batches_per_epoch
from charlstm_core.training.trainer import Trainer
from helpers import TINY, make_text
from helpers import run_cli as run

ROOT = Path(__file__).resolve().parents[1]


def info_steps(capsys, model: Path) -> int:
    code, out, _ = run(capsys, "info", model)
    assert code == 0
    return int(re.search(r"^steps:\s+(\d+)", out, re.M).group(1))


def same_params(a: Path, b: Path) -> bool:
    pa, pb = load_model(a).params, load_model(b).params
    return pa.keys() == pb.keys() and all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_train_writes_model_and_log(text, capsys):
    code, _, err = run(capsys, "train", text, *TINY, "--steps", 20, "--log-jsonl", "log.jsonl")
    assert code == 0, err
    model = text.with_suffix(".npz")  # default --out: the text's stem in the current folder
    assert model.exists() and str(model) in err
    assert info_steps(capsys, model) == 20
    records = [json.loads(line) for line in Path("log.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["event"] == "step"]
    evals = [r for r in records if r["event"] == "eval"]
    assert [r["step"] for r in steps] == list(range(1, 21))
    assert {"step", "loss", "chars_per_sec", "elapsed_s"} <= steps[0].keys()
    assert [r["step"] for r in evals] == [10, 20] and all("val_loss" in r for r in evals)
    assert records[-1]["event"] == "summary"


def test_info_lists_architecture_and_training(text, capsys):
    run(capsys, "train", text, *TINY, "--steps", 10, "--out", "m.npz", "-q")
    code, out, _ = run(capsys, "info", "m.npz")
    assert code == 0
    for needle in ("1 LSTM layer", "16 units", "parameters:", "best val loss:", "words.txt"):
        assert needle in out
    weights_only = load_model("m.npz")
    save_model("w.npz", ModelFile(weights_only.config, weights_only.params, weights_only.vocab))
    code, out, _ = run(capsys, "info", "w.npz")
    assert code == 0 and "weights only" in out
    code, _, err = run(capsys, "train", "--resume", "w.npz", text, "--steps", 5)
    assert code == 1 and "weights only" in err


def test_resume_equals_uninterrupted_run(text, capsys):
    base = ["train", text, *TINY, "--schedule", "constant", "-q"]
    assert run(capsys, *base, "--steps", 20, "--out", "a.npz")[0] == 0
    code, _, err = run(capsys, "train", "--resume", "a.npz", text, "--steps", 30, "-q")
    assert code == 0, err
    assert info_steps(capsys, Path("a.npz")) == 30
    assert run(capsys, *base, "--steps", 30, "--out", "b.npz")[0] == 0
    assert same_params(Path("a.npz"), Path("b.npz"))
    # Finished and no duration given: a usage error that says what to add.
    code, _, err = run(capsys, "train", "--resume", "a.npz", text)
    assert code == 2 and "--steps" in err


def test_resume_steps_and_epochs_are_totals_as_in_the_app(text, capsys):
    """--steps and --epochs with --resume name the model's total
    (charlstm_core.training.policy.plan_resume)."""
    assert run(capsys, "train", text, *TINY, "--steps", 20, "--out", "a.npz", "-q")[0] == 0
    code, _, err = run(capsys, "train", "--resume", "a.npz", text, "--steps", 20)
    assert code == 2 and "nothing left to train" in err and "totals" in err
    assert len(err.strip().splitlines()) == 1 and info_steps(capsys, Path("a.npz")) == 20
    code, _, err = run(capsys, "train", "--resume", "a.npz", text, "--steps", 25)
    assert code == 0 and "for 5 more steps" in err and "(to step 25)" in err
    tc = load_model("a.npz").train.config.replace(steps=None, epochs=1.0)
    one_pass = text_batches_per_epoch(len(text.read_text(encoding="utf-8")), tc)
    assert run(capsys, "train", "--resume", "a.npz", text, "--epochs", 1, "-q")[0] == 0
    assert info_steps(capsys, Path("a.npz")) == one_pass > 25


def test_resume_rejects_architecture_and_warns_on_other_text(text, tmp_path, capsys):
    run(capsys, "train", text, *TINY, "--steps", 5, "--out", "m.npz", "-q")
    code, _, err = run(capsys, "train", "--resume", "m.npz", text, "--hidden", 32)
    assert code == 2 and "--hidden" in err
    other = tmp_path / "other.txt"
    other.write_text(make_text(seed=1), encoding="utf-8")
    code, _, err = run(capsys, "train", "--resume", "m.npz", other, "--steps", 7, "-q")
    assert code == 0 and "warning" in err and "start over" in err
    alien = tmp_path / "alien.txt"
    alien.write_text(make_text() + "XYZ", encoding="utf-8")
    code, _, err = run(capsys, "train", "--resume", "m.npz", alien, "--steps", 7)
    assert code == 1 and "'X'" in err


def test_keyboard_interrupt_saves_checkpoint_and_resumes_exactly(text, capsys, monkeypatch):
    call = console.Progress.__call__

    def interrupting(self, event):
        call(self, event)
        if isinstance(event, StepEvent) and event.step == 7:
            raise KeyboardInterrupt

    monkeypatch.setattr(console.Progress, "__call__", interrupting)
    code, _, err = run(capsys, "train", text, *TINY, "--steps", 20, "--out", "a.npz")
    assert code == 130
    assert "a.npz" in err and "--resume" in err
    assert load_model("a.npz").train.step == 7
    monkeypatch.setattr(console.Progress, "__call__", call)
    # No duration given: finish the planned 20 steps, bit-identical to an uninterrupted run
    # (cosine schedule, so this also checks that the planned length is kept).
    assert run(capsys, "train", "--resume", "a.npz", text, "-q")[0] == 0
    assert run(capsys, "train", text, *TINY, "--steps", 20, "--out", "b.npz", "-q")[0] == 0
    assert info_steps(capsys, Path("a.npz")) == 20
    assert same_params(Path("a.npz"), Path("b.npz"))


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT cannot be sent to oneself on Windows")
def test_ctrl_c_stops_after_the_step_and_saves(text, capsys, monkeypatch):
    class Interrupted(Trainer):
        def run(self):
            inner = super().run()
            try:
                while True:
                    event = next(inner)
                    yield event
                    if isinstance(event, StepEvent) and event.step == 5:
                        os.kill(os.getpid(), signal.SIGINT)
            except StopIteration as stop:
                return stop.value

    monkeypatch.setattr(trainer_mod, "Trainer", Interrupted)  # the session builds it
    before = signal.getsignal(signal.SIGINT)
    code, _, err = run(capsys, "train", text, *TINY, "--steps", 20, "--out", "m.npz")
    assert code == 130 and "interrupted at step 5" in err
    assert load_model("m.npz").train.step == 5
    assert signal.getsignal(signal.SIGINT) is before


def test_divergence_saves_last_good_weights(text, capsys, monkeypatch):
    real = CpuEngine.loss_and_grads
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        loss, grads, state = real(*args, **kwargs)
        return (float("nan") if len(calls) == 4 else loss), grads, state

    monkeypatch.setattr(CpuEngine, "loss_and_grads", failing)
    stop = ("--on-divergence", "stop")  # the default heals (tests/test_heal.py)
    code, _, err = run(capsys, "train", text, *TINY, *stop, "--steps", 20, "--out", "m.npz")
    assert code == 1 and "diverged at step 4" in err and "m.npz" in err
    # the weights that produced the NaN are not good: the last kept state (the start) is saved
    assert len(err.strip().splitlines()[-1]) > 0 and load_model("m.npz").train.step == 0


def test_progress_line_on_a_terminal(text, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, _, err = run(capsys, "train", text, *TINY, "--steps", 10, "--out", "m.npz")
    assert code == 0
    assert "\rstep 10/10" in err and "chars/s" in err and "ETA" in err


def test_sample_is_deterministic_and_honours_length(text, capsys):
    run(capsys, "train", text, *TINY, "--steps", 10, "--out", "m.npz", "-q")
    code, first, _ = run(capsys, "sample", "m.npz", "--length", 50, "--seed", 3)
    assert code == 0 and len(first) == 50
    assert run(capsys, "sample", "m.npz", "--length", 50, "--seed", 3)[1] == first
    code, out, _ = run(capsys, "sample", "m.npz", "--prime", "the ", "--length", 7, "--seed", 1)
    assert code == 0 and out.startswith("the ") and len(out) == 4 + 7
    code, out, _ = run(capsys, "sample", "m.npz", "--temperature", 0, "--length", 20)
    assert (
        code == 0 and out == run(capsys, "sample", "m.npz", "--temperature", 0, "--length", 20)[1]
    )
    code, _, err = run(capsys, "sample", "m.npz", "--prime", "QZ")
    assert code == 1 and "'Q'" in err and "'Z'" in err
    assert run(capsys, "sample", "m.npz", "--top-p", 0)[0] == 2


def test_eval_prints_nats_and_bits(text, capsys):
    run(capsys, "train", text, *TINY, "--steps", 10, "--out", "m.npz", "-q")
    code, out, _ = run(capsys, "eval", "m.npz", text)
    assert code == 0
    nats = float(re.search(r"nats/char:\s+([\d.]+)", out).group(1))
    bits = float(re.search(r"bits/char:\s+([\d.]+)", out).group(1))
    # both printed to 6 decimals (±5e-7 each): bits and nats / ln 2 differ by at most 1.3e-6
    assert 0 < nats < 10 and bits == pytest.approx(nats / math.log(2), abs=2e-6)
    code, out, _ = run(capsys, "eval", "m.npz", text, "--streams", 4)
    assert code == 0 and "4 stream" in out


def _bad_files(tmp: Path) -> dict[str, Path]:
    files = {
        "undecodable": (b"caf\xe9 au lait\n" * 50),
        "empty": b"",
        "binary": b"abc\x00def" * 50,
    }
    paths = {}
    for name, data in files.items():
        paths[name] = tmp / f"{name}.txt"
        paths[name].write_bytes(data)
    paths["corrupt"] = tmp / "corrupt.npz"
    paths["corrupt"].write_bytes(b"PK\x03\x04" + b"garbage" * 20)
    paths["pickled"] = tmp / "pickled.npz"
    np.savez(paths["pickled"], meta=np.array([{"evil": 1}], dtype=object))
    return paths


def test_errors_are_one_line_with_the_right_status(text, tmp_path, capsys):
    bad = _bad_files(tmp_path)
    run(capsys, "train", text, *TINY, "--steps", 5, "--out", "m.npz", "-q")
    cases = [
        (["train", tmp_path / "missing.txt", "--steps", 5], 1, "no file"),
        (["train", bad["undecodable"], "--steps", 5], 1, "--encoding"),
        (["train", bad["empty"], "--steps", 5], 1, "empty"),
        (["train", bad["binary"], "--steps", 5], 1, "binary"),
        (["train", text, *TINY, "--steps", 5, "--hidden", 5], 2, "hidden size"),
        (["train", text, "--hidden", "many"], 2, "invalid int"),
        (["train", text, "--steps", 5, "--epochs", 1], 2, "not allowed"),
        (["train", text, "--out", text], 2, "training text itself"),
        (["info", bad["corrupt"]], 1, "corrupt.npz"),
        (["info", bad["pickled"]], 1, "pickled"),
        (["sample", tmp_path / "nope.npz"], 1, "no model file"),
        (["eval", "m.npz", bad["binary"]], 1, "binary"),
        (["frobnicate"], 2, "invalid choice"),
        ([], 2, "COMMAND"),
    ]
    for argv, status, needle in cases:
        code, _, err = run(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == status, (argv, err)
        assert len(lines) == 1 and lines[0].startswith("charlstm: error: "), (argv, err)
        assert needle in lines[0], (argv, err)


def test_undecodable_text_trains_with_encoding(text, tmp_path, capsys):
    latin = tmp_path / "latin.txt"
    latin.write_bytes(make_text().encode("latin-1").replace(b"cat", b"caf\xe9"))
    code, _, err = run(capsys, "train", latin, *TINY, "--steps", 3, "--encoding", "latin-1", "-q")
    assert code == 0, err


def test_unexpected_error_is_one_line_with_debug_hint(text, capsys, monkeypatch):
    def boom(args):
        raise RuntimeError("kaput")

    monkeypatch.setitem(cli._COMMANDS, "info", boom)
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
    code, _, err = run(capsys, "info", "x.npz")
    assert code == 1 and "kaput" in err and cli.DEBUG_ENV in err and len(err.splitlines()) == 1


def test_python_dash_m_core(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != cli.DEBUG_ENV}
    out = subprocess.run(
        [sys.executable, "-m", "charlstm_core", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0 and out.stdout.startswith("charlstm ")
    out = subprocess.run(
        [sys.executable, "-m", "charlstm_core", "info", str(tmp_path / "none.npz")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr


# ---------------------------------------------------------------------------------------------
# inspect, cells, sample --copies

HOSTILE = '<script>alert("x")</script> & (a [b] c) "quoted" it\'s\n'


@pytest.fixture
def hostile_model(tmp_path, monkeypatch, capsys) -> tuple[Path, Path]:
    """A tiny model trained on a text full of HTML, quotes and brackets, and that text."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "hostile.txt"
    path.write_text((HOSTILE + make_text(600)) * 3, encoding="utf-8")
    code, _, _ = run(capsys, "train", path, *TINY, "--steps", 5, "--out", "h.npz", "-q")
    assert code == 0
    return tmp_path / "h.npz", path


def test_inspect_prints_the_same_bits_as_eval(hostile_model, capsys):
    model, text = hostile_model
    code, out, _ = run(capsys, "inspect", model, text, "--spans", 3)
    assert code == 0
    bits = float(re.search(r"^bits/char:\s+([\d.]+)", out, re.M).group(1))
    _, ev, _ = run(capsys, "eval", model, text)
    # inspect prints 4 decimals (±5e-5), eval 6 (±5e-7); both read the text as one stream from
    # a zero state (it is under 8 warm-ups long), in float32 orders that differ by ~1e-6 bits
    eval_bits = float(re.search(r"bits/char:\s+([\d.]+)", ev).group(1))
    assert bits == pytest.approx(eval_bits, rel=0, abs=1e-4)
    assert "most surprising" in out and len(re.findall(r"^ +[\d,]+ +[\d.]+ ", out, re.M)) == 3
    code, _, err = run(capsys, "inspect", model, text, "--chars", 100)
    assert code == 0 and "first 100 of" in err


def test_inspect_html_escapes_the_text_and_colours_by_unit(hostile_model, capsys, tmp_path):
    model, text = hostile_model
    code, _, err = run(capsys, "inspect", model, text, "--html", "page.html")
    assert code == 0 and "wrote page.html" in err
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert ">&lt;</span>" in page and "<script" not in page.lower()  # one span a character
    assert "bits/char" in page and "http" not in page  # self-contained
    code, _, _ = run(capsys, "inspect", model, text, "--html", "u.html", "--unit", "1:3")
    assert code == 0 and "Layer 1 unit 3" in (tmp_path / "u.html").read_text(encoding="utf-8")


def test_inspect_errors_are_one_line_and_never_overwrite_inputs(hostile_model, capsys, tmp_path):
    model, text = hostile_model
    model_bytes, text_bytes = model.read_bytes(), text.read_bytes()
    other = tmp_path / "other.txt"
    other.write_text("ZZZ unknown Q\n", encoding="utf-8")
    cases = [
        (["inspect", model, text, "--html", model], 2, "inputs"),
        (["inspect", model, text, "--html", text], 2, "inputs"),
        (["inspect", model, text, "--html", tmp_path], 2, "folder"),
        (["inspect", model, text, "--html", tmp_path / "no" / "p.html"], 2, "does not exist"),
        (["inspect", model, text, "--unit", "7:0"], 2, "outside the model"),
        (["inspect", model, text, "--unit", "0:3"], 2, "Layers count from 1"),
        (["inspect", model, text, "--unit", "x"], 2, "LAYER:UNIT"),
        (["inspect", model, text, "--chars", 1], 2, "--chars"),
        (["inspect", model, other], 1, "not in the model's vocabulary"),
        (["inspect", model, tmp_path / "missing.txt"], 1, "missing.txt"),
        (["inspect", tmp_path / "none.npz", text], 1, "none.npz"),
        (["cells", model, other], 1, "not in the model's vocabulary"),
        (["cells", model, text, "--top", 0], 2, "--top"),
        (["sample", model, "--copies", tmp_path / "missing.txt"], 1, "missing.txt"),
        (["sample", model, "--copies", text, "--copies-min", 2], 2, "--copies-min: The shortest"),
    ]
    for argv, status, needle in cases:
        code, _, err = run(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == status, (argv, err)
        assert len(lines) == 1 and lines[0].startswith("charlstm: error: "), (argv, err)
        assert needle in lines[0], (argv, err)
    assert model.read_bytes() == model_bytes and text.read_bytes() == text_bytes


def test_cells_lists_units_per_detector(hostile_model, capsys):
    model, text = hostile_model
    code, out, _ = run(capsys, "cells", model, text, "--top", 2, "--kind", "h")
    assert code == 0
    rows = {line.split("  ")[0].strip(): line for line in out.splitlines()[1:]}
    assert set(rows) == set(DETECTORS)
    # one layer: its units are 1:UNIT, as inspect --unit takes them (layers count from 1)
    assert len(re.findall(r"(?<!\d)1:\d+ [+-]\d\.\d\d", rows["double quotes"])) == 2
    assert not re.search(r"(?<!\d)0:\d+ ", out)
    assert "constant in this text" in rows["digit"]


def test_sample_reports_copies_on_stderr(hostile_model, capsys, tmp_path):
    model, text = hostile_model
    code, out, err = run(capsys, "sample", model, "--length", 200, "--seed", 1, "--copies", text)
    assert code == 0 and len(out) == 200
    assert re.fullmatch(r"charlstm: (\d+% copied verbatim|nothing copied) .*\n", err)
    assert re.search(r"spans of 20\+ characters carrying \d+\+ bits", err)  # the rule, said
    # a "training text" that is the generated text itself: all of it is a copy
    (tmp_path / "same.txt").write_text(out, encoding="utf-8")
    code, again, err = run(
        capsys, "sample", model, "--length", 200, "--seed", 1, "--copies", tmp_path / "same.txt"
    )
    assert again == out and "100% copied verbatim" in err and "longest 200 characters" in err


def test_small_usage_and_data_errors(text, tmp_path, capsys):
    run(capsys, "train", text, *TINY, "--steps", 3, "--out", "m.npz", "-q")
    code, _, err = run(capsys, "sample", "m.npz", "--seed", -1)
    assert code == 2 and "--seed" in err and len(err.splitlines()) == 1
    one = tmp_path / "one.txt"
    one.write_text("a", encoding="utf-8")
    code, _, err = run(capsys, "eval", "m.npz", one)
    assert code == 1 and "at least 2 characters" in err and len(err.splitlines()) == 1


def test_numpy_warnings_are_one_line(text, capsys, monkeypatch):
    import warnings

    def noisy(args):
        warnings.warn("overflow encountered in exp", RuntimeWarning, stacklevel=1)
        warnings.warn("overflow encountered in exp", RuntimeWarning, stacklevel=1)
        return 0

    monkeypatch.setitem(cli._COMMANDS, "info", noisy)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        code, _, err = run(capsys, "info", "x.npz")
    assert code == 0
    assert err == "charlstm: warning: RuntimeWarning: overflow encountered in exp\n"


def test_one_minute_is_singular(text, capsys, monkeypatch):
    def run_nothing(self):  # the first line is what counts here, not the training
        return TrainSummary(self.step, "completed", None, 0.0, None)
        yield

    monkeypatch.setattr(Trainer, "run", run_nothing)
    code, _, err = run(capsys, "train", text, *TINY, "--minutes", 1, "--out", "m.npz")
    assert "for 1 minute on CPU;" in err, err
    assert console.count(2.5, "minute") == "2.5 minutes"
    assert console.count(1000, "step") == "1,000 steps"


def test_sample_ends_with_a_newline_on_a_terminal(text, capsys, monkeypatch):
    run(capsys, "train", text, *TINY, "--steps", 3, "--out", "m.npz", "-q")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, out, _ = run(capsys, "sample", "m.npz", "--length", 5, "--seed", 1, "--prime", "the")
    assert code == 0 and out.endswith("\n") and len(out.rstrip("\n")) >= 3 + 4


def test_eval_progress_only_on_a_terminal(text, capsys, monkeypatch):
    run(capsys, "train", text, *TINY, "--steps", 3, "--out", "m.npz", "-q")
    code, out, err = run(capsys, "eval", "m.npz", text)
    assert code == 0 and err == "" and "characters scored" in out
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    code, out, err = run(capsys, "eval", "m.npz", text, "--streams", 3, "--warmup", 10)
    assert code == 0 and "eval: 100%" in err and "3 streams, each warmed up on 10" in out
