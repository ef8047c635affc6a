"""Fault injection: hostile model files, special output paths, non-UTF-8 names, signals and
kill -9 during training and saving, a full disk, two writers. Each test states the guarantee it
checks (README, "Your work is safe")."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from core.config import ModelConfig, TrainConfig
from core.data import corpus_from_text
from core.errors import ModelFileError, ModelFileLocked
from core.modelfile import (
    ModelLock,
    check_not_locked,
    load_model,
    lock_path,
    save_model,
)
from core.trainer import Trainer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("CHARLSTM_DEBUG", None)
    return env


@pytest.fixture(scope="module")
def checkpoint():
    """A small trained checkpoint (ModelFile with training state)."""
    corpus = corpus_from_text(TEXT, name="fox.txt")
    mc = ModelConfig(vocab_size=corpus.vocab.size, hidden_size=8)
    tc = TrainConfig(steps=3, batch_size=4, seq_len=8, eval_every=0, sample_every=0)
    trainer = Trainer(corpus, mc, tc)
    for _ in trainer.run():
        pass
    return trainer.snapshot()


# ---------------------------------------------------------------------------------------------
# Two writers: a ModelLock per file


def test_lock_refuses_a_second_holder_in_this_process(tmp_path):
    path = tmp_path / "m.npz"
    with ModelLock(path) as lock:
        assert lock.held and os.path.exists(lock_path(path))
        with pytest.raises(ModelFileLocked, match="m.npz is in use"):
            ModelLock(path).acquire()
    assert not lock.held
    assert not os.path.exists(lock_path(path))  # the sidecar goes with the lock
    ModelLock(path).acquire().release()  # free again


def test_lock_refuses_another_process_and_its_saves(tmp_path, checkpoint):
    path = tmp_path / "m.npz"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from core.modelfile import ModelLock
            lock = ModelLock({str(path)!r}).acquire()
            print("held", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ModelFileLocked) as info:
            ModelLock(path).acquire()
        assert info.value.pid == holder.pid and str(holder.pid) in str(info.value)
        with pytest.raises(ModelFileLocked):
            save_model(path, checkpoint)
        assert not path.exists()
    finally:
        holder.stdin.close()
        holder.wait(10)
        holder.stdout.close()
    # The holder is gone: the kernel dropped its lock; a save works and clears the stale sidecar.
    save_model(path, checkpoint)
    assert not os.path.exists(lock_path(path))
    load_model(path)


def test_lock_of_a_killed_holder_is_free(tmp_path):
    path = tmp_path / "m.npz"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from core.modelfile import ModelLock; "
         f"ModelLock({str(path)!r}).acquire(); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    with holder:
        assert holder.stdout.readline().strip() == "held"
        holder.kill()
    assert os.path.exists(lock_path(path))  # left behind by kill -9, but not held
    check_not_locked(path)
    with ModelLock(path):
        pass


def test_lock_is_shared_by_a_symlink_and_its_target(tmp_path):
    target = tmp_path / "real.npz"
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    with ModelLock(target), pytest.raises(ModelFileLocked):
        ModelLock(link).acquire()


def test_save_target_errors_are_model_file_errors(tmp_path, checkpoint):
    with pytest.raises(ModelFileError, match="folder"):
        save_model(tmp_path, checkpoint)
    with pytest.raises(ModelFileError, match="does not exist"):
        save_model(tmp_path / "nope" / "m.npz", checkpoint)
    assert not np.any([p.name.endswith(".tmp") for p in tmp_path.iterdir()])


# ---------------------------------------------------------------------------------------------
# Hostile model files: refused with a ModelFileError, never unpickled, bounded in memory


def _peak_load_bytes(path) -> tuple[BaseException | None, int]:
    """(the error load_model raised, its peak traced allocation in bytes)."""
    import tracemalloc

    tracemalloc.start()
    try:
        load_model(path)
        err = None
    except BaseException as e:  # noqa: BLE001 - returned to the test
        err = e
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return err, peak


def _append_zero_entry(path, name: str, n_bytes: int, npy_header: bytes = b"") -> None:
    """Append a deflated entry of ``npy_header`` plus ``n_bytes`` zeros: tiny on disk."""
    import zipfile

    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as z:
        with z.open(name, "w", force_zip64=True) as f:
            f.write(npy_header)
            chunk = bytes(1 << 24)
            left = n_bytes
            while left > 0:
                f.write(chunk[: min(left, len(chunk))])
                left -= len(chunk)


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


BOMB = 160 << 20  # zeros deflate about 1000:1: a 160 KB file that inflates to 160 MB


@pytest.mark.parametrize(
    "name, header",
    [
        ("extra.npy", b""),  # an entry no model has
        ("train/history/x.npy", _npy_header((BOMB // 8,), "<f8")),  # more than any run's history
        ("meta2.npy", b""),
    ],
)
def test_zip_bomb_is_refused_before_decompressing(tmp_path, checkpoint, name, header):
    path = tmp_path / "bomb.npz"
    save_model(path, checkpoint)
    _append_zero_entry(path, name, BOMB, header)
    assert os.path.getsize(path) < BOMB // 100
    err, peak = _peak_load_bytes(path)
    assert isinstance(err, ModelFileError), err
    assert "not a valid CharLSTM Studio model file" in str(err)
    assert peak < 100 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_bomb_inside_an_expected_entry_is_refused(tmp_path, checkpoint):
    """A real entry name whose header claims a huge array: its shape is checked first."""
    import zipfile

    path = tmp_path / "bomb.npz"
    save_model(path, checkpoint)
    with zipfile.ZipFile(path) as z:
        keep = {i.filename: z.read(i) for i in z.infolist() if i.filename != "params/decoder.bias.npy"}
    with zipfile.ZipFile(path, "w") as z:
        for n, data in keep.items():
            z.writestr(n, data)
    _append_zero_entry(path, "params/decoder.bias.npy", BOMB, _npy_header((BOMB // 4,)))
    err, peak = _peak_load_bytes(path)
    assert isinstance(err, ModelFileError) and "has shape" in str(err), err
    assert peak < 100 << 20


def test_huge_meta_entry_is_refused(tmp_path, checkpoint):
    import zipfile

    path = tmp_path / "bomb.npz"
    save_model(path, checkpoint)
    with zipfile.ZipFile(path) as z:
        keep = {i.filename: z.read(i) for i in z.infolist() if i.filename != "meta.npy"}
    with zipfile.ZipFile(path, "w") as z:
        for n, data in keep.items():
            z.writestr(n, data)
    _append_zero_entry(path, "meta.npy", BOMB, _npy_header((BOMB,), "|u1"))
    err, peak = _peak_load_bytes(path)
    assert isinstance(err, ModelFileError) and "declares" in str(err), err
    assert peak < 100 << 20


def test_many_entries_are_refused_before_listing(tmp_path, checkpoint):
    import zipfile

    path = tmp_path / "many.npz"
    save_model(path, checkpoint)
    with zipfile.ZipFile(path, "a") as z:
        for i in range(3000):
            z.writestr(f"params/p{i}.npy", b"")
    err, _ = _peak_load_bytes(path)
    assert isinstance(err, ModelFileError) and "3," in str(err), err


def test_truncations_and_crc_flips_never_load(tmp_path, checkpoint):
    path = tmp_path / "m.npz"
    save_model(path, checkpoint)
    raw = path.read_bytes()
    bad = tmp_path / "bad.npz"
    rng = np.random.default_rng(0)
    for cut in sorted(set(rng.integers(1, len(raw), 25).tolist())):
        bad.write_bytes(raw[:cut])
        with pytest.raises(ModelFileError):
            load_model(bad)
    # one flipped byte anywhere in the archive: refused or, in padding, the same model
    for at in rng.integers(0, len(raw), 40).tolist():
        flipped = bytearray(raw)
        flipped[at] ^= 0x5A
        bad.write_bytes(bytes(flipped))
        try:
            mf = load_model(bad)
        except ModelFileError:
            continue
        for k, v in checkpoint.params.items():
            np.testing.assert_array_equal(mf.params[k], v)


def test_pickles_are_refused_and_never_run(tmp_path, checkpoint):
    import pickle
    import zipfile

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "p.npz"
    save_model(path, checkpoint)
    with zipfile.ZipFile(path) as z:
        keep = {i.filename: z.read(i) for i in z.infolist() if i.filename != "params/decoder.bias.npy"}
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|O", "fortran_order": False, "shape": (1,)}
    )
    keep["params/decoder.bias.npy"] = buf.getvalue() + pickle.dumps(np.array([Evil()], object))
    with zipfile.ZipFile(path, "w") as z:
        for n, data in keep.items():
            z.writestr(n, data)
    with pytest.raises(ModelFileError, match="pickled"):
        load_model(path)
    assert not marker.exists()


def _with_train_meta(tmp_path, checkpoint, change) -> str:
    """A copy of ``checkpoint`` whose training-state JSON went through ``change(meta)``."""
    import json

    from core import modelfile

    arrays = modelfile._to_arrays(checkpoint)
    meta = json.loads(arrays["train/meta"].tobytes())
    change(meta)
    arrays["train/meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path = tmp_path / "state.npz"
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return str(path)


def _with_array(tmp_path, checkpoint, key, change) -> str:
    from core import modelfile

    arrays = modelfile._to_arrays(checkpoint)
    arrays[key] = change(arrays[key].copy())
    path = tmp_path / "state.npz"
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return str(path)


def _nan_first(a):
    a.reshape(-1)[0] = np.nan
    return a


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda t, c: _with_train_meta(t, c, lambda m: m["rng"].pop("dropout")), "random-generator"),
        (
            lambda t, c: _with_train_meta(
                t, c, lambda m: m["rng"]["sample"]["state"].update(state="x")
            ),
            "random-generator",
        ),
        (
            lambda t, c: _with_train_meta(t, c, lambda m: m["rng"].update(sample=[1, 2])),
            "random-generator",
        ),
        (lambda t, c: _with_train_meta(t, c, lambda m: m["stream"].update(batch=-3)), "stream"),
        (lambda t, c: _with_train_meta(t, c, lambda m: m["stream"].update(epoch="1")), "stream"),
        (lambda t, c: _with_train_meta(t, c, lambda m: m.update(best_val_loss=float("nan"))), "best"),
        (lambda t, c: _with_train_meta(t, c, lambda m: m.update(best_val_loss=-1.0)), "best"),
        (lambda t, c: _with_train_meta(t, c, lambda m: m.update(elapsed_s=float("inf"))), "elapsed"),
        (lambda t, c: _with_train_meta(t, c, lambda m: m.update(samples=[[1]])), "samples"),
        (lambda t, c: _with_array(t, c, "train/adam_v/decoder.bias", lambda a: a - 1.0), "negative"),
        (lambda t, c: _with_array(t, c, "train/adam_m/decoder.bias", _nan_first), "NaN"),
        (lambda t, c: _with_array(t, c, "train/c", _nan_first), "NaN"),
    ],
)
def test_bad_training_state_is_refused_at_load(tmp_path, checkpoint, make, message):
    path = make(tmp_path, checkpoint)
    with pytest.raises(ModelFileError, match=message) as info:
        load_model(path)
    assert path in str(info.value)
