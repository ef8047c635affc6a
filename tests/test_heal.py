"""Self-healing training: blow-ups are detected, rolled back exactly, and the run goes on."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from charlstm_core.cli.parser import main
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.engine.cpu import CpuEngine
from charlstm_core.errors import ModelFileError, TrainingDiverged
from charlstm_core.events import EvalEvent, RollbackEvent, StepEvent, format_lr
from charlstm_core.files.modelfile import load_model, save_model
from charlstm_core.files.text import corpus_from_text
from charlstm_core.training import heal
from charlstm_core.training.trainer import Trainer
from helpers import CLOCKED, drain
from helpers import small_train_config as small_config

# A model and settings for which `--lr 1 --clip 0` really blows up (the loss jumps from ln V to
# 18+ nats/char within 4 steps) and heals: found by trying sizes; smaller ones survive lr 1.
BLOWUP_MC = ModelConfig(vocab_size=1, hidden_size=96, num_layers=1, dropout=0.0)
SMALL_MC = ModelConfig(vocab_size=1, hidden_size=16, num_layers=2, dropout=0.1)


def rich_text(n: int = 40000, seed: int = 0) -> str:
    """Made-up words with capitals, punctuation and line breaks: about 60 characters."""
    rng = np.random.default_rng(seed)
    letters = list("abcdefghijklmnopqrstuvwxyz")
    words = ["".join(rng.choice(letters, rng.integers(1, 8))) for _ in range(300)]
    out, size = [], 0
    while size < n:
        w = str(rng.choice(words))
        if rng.random() < 0.1:
            w = w.capitalize()
        if rng.random() < 0.08:
            w += str(rng.choice([",", ".", ";", "!", "?"]))
        if rng.random() < 0.03:
            w += "\n"
        out.append(w)
        size += len(w) + 1
    return " ".join(out)[:n]


def blowup_config(**kw) -> TrainConfig:
    base = dict(
        seq_len=32,
        batch_size=8,
        lr=1.0,
        clip=0.0,
        warmup_steps=5,
        eval_every=10,
        sample_every=0,
        checkpoint_every=0,
        steps=30,
        seed=1234,
    )
    base.update(kw)
    return TrainConfig(**base)


def inject_blowup(monkeypatch, bad_calls):
    """Make the loss of the given calls of loss_and_grads (1-based) 20x too high: a blow-up the
    detector sees while the gradients, and so the training, stay real."""
    real = CpuEngine.loss_and_grads
    calls = {"n": 0}

    def fake(*args, **kwargs):
        calls["n"] += 1
        loss, grads, state = real(*args, **kwargs)
        return (loss * 20 if bad_calls(calls["n"]) else loss), grads, state

    monkeypatch.setattr(CpuEngine, "loss_and_grads", fake)


def assert_same_state(a, b):
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
        assert np.array_equal(a.train.adam_m[k], b.train.adam_m[k]), k
        assert np.array_equal(a.train.adam_v[k], b.train.adam_v[k]), k
    assert np.array_equal(a.train.h, b.train.h) and np.array_equal(a.train.c, b.train.c)
    assert a.train.rng == b.train.rng and a.train.stream == b.train.stream
    assert a.train.step == b.train.step
    for k in a.train.history:
        assert np.array_equal(a.train.history[k], b.train.history[k]), k


def timeless(events):
    """Events without their wall-clock fields, for comparing two runs."""
    out = []
    for e in events:
        d = {k: v for k, v in vars(e).items() if k not in CLOCKED}
        out.append((type(e).__name__, d))
    return out


# ---------------------------------------------------------------------------------------------
# The detector


def test_detector_needs_consecutive_spikes_above_uniform_guess():
    det = heal.DivergenceDetector(math.log(50))
    for _ in range(30):
        assert det.observe(2.0, 1.0) == (False, None)
    assert det.observe(3.5, 1.0)[0] is False  # 1.75x the smoothed loss but below ln 50 = 3.9
    assert det.pending == 0
    assert det.observe(9.0, 1.0) == (False, det.why_suspicious(9.0, 1.0))
    assert det.pending == 1
    assert det.observe(2.0, 1.0) == (False, None) and det.pending == 0  # one bad batch: fine
    for i in range(heal.SUSPICIOUS_STEPS):
        diverged, why = det.observe(9.0, 1.0)
        assert diverged is (i == heal.SUSPICIOUS_STEPS - 1) and "9.00 nats/char" in why
    assert heal.DivergenceDetector(3.0).observe(float("nan"), 1.0)[0] is True
    assert heal.DivergenceDetector(3.0).observe(1.0, float("inf"))[0] is True


def test_gradient_spikes_count_after_a_baseline():
    assert heal.DivergenceDetector(math.log(50)).observe(2.0, 1e3) == (False, None)  # no baseline
    det = heal.DivergenceDetector(math.log(50))
    for _ in range(heal.GRAD_MIN_STEPS):
        det.observe(2.0, 1.0)
    diverged, why = det.observe(2.0, 100.0)
    assert not diverged and "gradient norm" in why


def test_healed_scale_halves_on_a_falling_schedule_and_caps_a_warm_up():
    assert heal.healed_lr_scale(1.0, 8e-3, 8e-3) == 0.5
    # blew up at 0.1 during a warm-up heading to 1.0: the peak ahead becomes 0.05
    assert heal.healed_lr_scale(1.0, 0.1, 1.0) == pytest.approx(0.05)
    assert heal.healed_lr_scale(0.5, 1e-9, 1.0) == 0.5 * heal.MIN_CUT


def test_format_and_describe():
    ev = RollbackEvent(1260, 1200, 8e-3, 4e-3, 0.5, "x", 53.1)
    assert ev.describe() == "rolled back to step 1,200; learning rate 8e-3 → 4e-3"
    assert format_lr(0.32) == "3.2e-1"


# ---------------------------------------------------------------------------------------------
# Healing runs


def test_lr_1_without_clipping_heals_to_a_finite_lower_loss():
    corpus = corpus_from_text(rich_text())
    trainer = Trainer(corpus, BLOWUP_MC, blowup_config())
    events, summary = drain(trainer.run())
    rollbacks = [e for e in events if isinstance(e, RollbackEvent)]
    assert rollbacks and summary.reason == "completed" and summary.steps == 30
    assert summary.rollbacks == len(rollbacks)
    blown = rollbacks[0].loss
    assert blown > 2 * math.log(corpus.vocab.size)  # a real blow-up
    final = [e.loss for e in events if isinstance(e, StepEvent)][-5:]
    assert all(math.isfinite(v) for v in final) and max(final) < blown
    assert math.isfinite(summary.best_val_loss) and summary.best_val_loss < blown
    for r in rollbacks:
        assert r.lr_after == pytest.approx(r.lr_before / 2) and r.to_step < r.from_step
    assert trainer.lr_scale == rollbacks[-1].lr_scale < 1
    steps = [e.lr for e in events[events.index(rollbacks[-1]) :] if isinstance(e, StepEvent)]
    assert max(steps) <= rollbacks[-1].lr_after * (1 + 1e-9)  # the rest of the run stays below


def test_same_seed_same_events():
    corpus = corpus_from_text(rich_text())
    runs = [timeless(drain(Trainer(corpus, BLOWUP_MC, blowup_config(steps=12)).run())[0])]
    runs.append(timeless(drain(Trainer(corpus, BLOWUP_MC, blowup_config(steps=12)).run())[0]))
    assert runs[0] == runs[1]
    assert any(name == "RollbackEvent" for name, _ in runs[0])


def test_rollback_restores_the_kept_state_exactly(monkeypatch):
    corpus = corpus_from_text(rich_text(8000))
    inject_blowup(monkeypatch, lambda n: 13 <= n <= 15)
    trainer = Trainer(corpus, SMALL_MC, small_config(sample_every=4, sample_length=10))
    kept = after = None
    events = []
    for ev in trainer.run():
        events.append(ev)
        if isinstance(ev, EvalEvent) and ev.step == 10 and kept is None:
            kept = trainer.snapshot()  # step 10 is an evaluation step: kept after it
        if isinstance(ev, RollbackEvent):
            after = trainer.snapshot()
            break
    assert ev.from_step == 15 and ev.to_step == 10
    assert_same_state(kept, after)
    assert after.train.samples == kept.train.samples
    assert after.train.best_val_loss == kept.train.best_val_loss
    assert kept.train.lr_scale == 1.0 and after.train.lr_scale == ev.lr_scale < 1
    assert after.train.rollbacks == (ev,)


def test_three_rollbacks_then_stop_with_last_good_weights(monkeypatch):
    corpus = corpus_from_text(rich_text(8000))
    inject_blowup(monkeypatch, lambda n: n >= 13)  # blows up again whatever the rate
    trainer = Trainer(corpus, SMALL_MC, small_config(lr_schedule="constant"))
    events, kept = [], None
    with pytest.raises(TrainingDiverged) as err:
        for ev in trainer.run():
            events.append(ev)
            if isinstance(ev, EvalEvent) and ev.step == 10 and kept is None:
                kept = trainer.snapshot()
    rollbacks = [e for e in events if isinstance(e, RollbackEvent)]
    assert len(rollbacks) == heal.MAX_ROLLBACKS
    assert [r.lr_scale for r in rollbacks] == [0.5, 0.25, 0.125]
    assert_same_state(kept, trainer.snapshot())
    message = str(err.value)
    assert "3 rollbacks" in message and "learning rate" in message
    assert "last good weights, from step 10" in message
    assert "clip" in message


def test_on_divergence_stop_restores_and_raises(monkeypatch):
    corpus = corpus_from_text(rich_text(8000))
    inject_blowup(monkeypatch, lambda n: 13 <= n <= 15)
    trainer = Trainer(corpus, SMALL_MC, small_config(on_divergence="stop"))
    events, kept = [], None
    with pytest.raises(TrainingDiverged) as err:
        for ev in trainer.run():
            events.append(ev)
            if isinstance(ev, EvalEvent) and ev.step == 10:
                kept = trainer.snapshot()
    assert not any(isinstance(e, RollbackEvent) for e in events)
    assert err.value.step == 15 and "step 10" in str(err.value)
    assert_same_state(kept, trainer.snapshot())
    assert trainer.lr_scale == 1.0


def test_a_nan_heals_at_once(monkeypatch):
    corpus = corpus_from_text(rich_text(8000))
    real = CpuEngine.loss_and_grads
    calls = {"n": 0}

    def nan_once(*args, **kwargs):
        calls["n"] += 1
        loss, grads, state = real(*args, **kwargs)
        return (float("nan") if calls["n"] == 4 else loss), grads, state

    monkeypatch.setattr(CpuEngine, "loss_and_grads", nan_once)
    events, summary = drain(Trainer(corpus, SMALL_MC, small_config(steps=8)).run())
    (rollback,) = [e for e in events if isinstance(e, RollbackEvent)]
    assert rollback.from_step == 4 and rollback.to_step == 0 and "NaN" in rollback.reason
    assert summary.steps == 8 and summary.reason == "completed"


def test_resume_after_a_heal_is_bit_identical(tmp_path):
    corpus = corpus_from_text(rich_text())
    cfg = blowup_config(steps=20, eval_every=5, checkpoint_every=8)
    straight = Trainer(corpus, BLOWUP_MC, cfg)
    straight_events, _ = drain(straight.run())
    assert any(isinstance(e, RollbackEvent) for e in straight_events)

    first = Trainer(corpus, BLOWUP_MC, cfg, checkpoint_path=str(tmp_path / "ck.npz"))
    for ev in first.run():
        if isinstance(ev, StepEvent) and ev.step == 9 and first.rollbacks:
            first.request_stop()
    saved = load_model(tmp_path / "ck.npz")
    assert saved.train.step == 9 and saved.train.lr_scale < 1 and saved.train.rollbacks
    resumed = Trainer(corpus, BLOWUP_MC, cfg, resume=saved)
    drain(resumed.run())
    a, b = straight.snapshot(), resumed.snapshot()
    assert_same_state(a, b)
    assert a.train.lr_scale == b.train.lr_scale
    assert a.train.rollbacks == b.train.rollbacks


def test_a_new_learning_rate_on_resume_resets_the_multiplier(tmp_path):
    corpus = corpus_from_text(rich_text())
    trainer = Trainer(corpus, BLOWUP_MC, blowup_config(steps=8))
    drain(trainer.run())
    snap = trainer.snapshot()
    assert snap.train.lr_scale < 1
    same = Trainer(corpus, BLOWUP_MC, blowup_config(steps=9), resume=snap)
    assert same.lr_scale == snap.train.lr_scale
    other = Trainer(corpus, BLOWUP_MC, blowup_config(steps=9, lr=0.01), resume=snap)
    assert other.lr_scale == 1.0


# ---------------------------------------------------------------------------------------------
# The model file


def _rewrite_train_meta(path, change):
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["train/meta"].tobytes().decode("utf-8"))
    change(meta)
    arrays["train/meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8).copy()
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_healing_state_round_trips_and_old_files_still_load(tmp_path, monkeypatch):
    corpus = corpus_from_text(rich_text(8000))
    inject_blowup(monkeypatch, lambda n: 13 <= n <= 15)
    trainer = Trainer(corpus, SMALL_MC, small_config(steps=20))
    drain(trainer.run())
    path = tmp_path / "m.npz"
    save_model(path, trainer.snapshot())
    loaded = load_model(path).train
    assert loaded.lr_scale == trainer.lr_scale < 1
    assert loaded.rollbacks == trainer.rollbacks and len(loaded.rollbacks) == 1
    assert len(loaded.history["grad_norm"]) == 20

    def old(meta):
        del meta["lr_scale"], meta["rollbacks"]

    _rewrite_train_meta(path, old)
    st = load_model(path).train
    assert st.lr_scale == 1.0 and st.rollbacks == ()


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.update(lr_scale=0),
        lambda m: m.update(lr_scale=1.5),
        lambda m: m.update(lr_scale="half"),
        lambda m: m.update(rollbacks={"a": 1}),
        lambda m: m["rollbacks"][0].update(to_step=-1),
        lambda m: m["rollbacks"][0].update(lr_after=None),
        lambda m: m["rollbacks"][0].pop("reason"),
    ],
)
def test_malformed_healing_state_is_refused(tmp_path, monkeypatch, change):
    corpus = corpus_from_text(rich_text(8000))
    inject_blowup(monkeypatch, lambda n: 13 <= n <= 15)
    trainer = Trainer(corpus, SMALL_MC, small_config(steps=16))
    drain(trainer.run())
    path = tmp_path / "m.npz"
    save_model(path, trainer.snapshot())
    _rewrite_train_meta(path, change)
    with pytest.raises(ModelFileError):
        load_model(path)


# ---------------------------------------------------------------------------------------------
# The command line (A10: `--lr 1 --clip 0` blew up to 53 nats/char and exited 0 with that model)

CLI_MODEL = ["--hidden", "96", "--layers", "1", "--dropout", "0"]
CLI_RUN = ["--seq-len", "32", "--batch-size", "8", "--warmup", "5", "--sample-every", "0"]


def test_cli_heals_and_logs_the_rollback(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(rich_text(), encoding="utf-8")
    out, log = tmp_path / "m.npz", tmp_path / "log.jsonl"
    argv = ["train", str(text), "--lr", "1", "--clip", "0", "--steps", "30", "--eval-every", "10"]
    code = main([*argv, *CLI_MODEL, *CLI_RUN, "--out", str(out), "--log-jsonl", str(log)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "rolled back to step 0; learning rate" in err
    records = [json.loads(line) for line in log.read_text().splitlines()]
    rollbacks = [r for r in records if r["event"] == "rollback"]
    assert rollbacks and {"from_step", "to_step", "lr_before", "lr_after"} <= set(rollbacks[0])
    blown = rollbacks[0]["loss"]
    mf = load_model(out)
    assert mf.train.step == 30 and mf.train.lr_scale < 1
    final = mf.train.history["train_loss"][-5:]
    assert np.isfinite(final).all() and final.max() < blown
    assert main(["info", str(out)]) == 0
    assert "healed:" in capsys.readouterr().out


def test_cli_stop_keeps_the_good_file(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text(rich_text(), encoding="utf-8")
    out = tmp_path / "m.npz"
    good = ["train", str(text), "--lr", "0.01", "--steps", "2", "--out", str(out)]
    assert main([*good, *CLI_MODEL, *CLI_RUN]) == 0
    before = load_model(out)
    capsys.readouterr()
    code = main(
        [
            "train",
            "--resume",
            str(out),
            str(text),
            "--lr",
            "1",
            "--clip",
            "0",
            "--steps",
            "30",
            "--on-divergence",
            "stop",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "diverged" in err and "Lower the learning rate" in err and "clipping" in err
    after = load_model(out)
    assert after.train.step == 2
    for k in before.params:
        assert np.array_equal(before.params[k], after.params[k])
