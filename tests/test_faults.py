"""Fault injection: hostile model files, special output paths, non-UTF-8 names, signals and
kill -9 during training and saving, a full disk, two writers. Each test states the guarantee it
checks (README, "Your work is safe")."""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from charlstm_core.cli import parser as cli
from charlstm_core.config import ModelConfig, TrainConfig
from charlstm_core.errors import ModelFileError, ModelFileLocked
from charlstm_core.files.modelfile import (
    ModelLock,
    check_not_locked,
    load_model,
    lock_path,
    save_model,
)
from charlstm_core.files.text import corpus_from_text
from charlstm_core.training.trainer import Trainer

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
    with ModelLock(path):
        assert os.path.exists(lock_path(path))
        with pytest.raises(ModelFileLocked, match="m.npz is in use"):
            ModelLock(path).acquire()
    assert not os.path.exists(lock_path(path))  # the sidecar goes with the lock
    ModelLock(path).acquire().release()  # free again


def test_lock_refuses_another_process_and_its_saves(tmp_path, checkpoint):
    path = tmp_path / "m.npz"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from charlstm_core.files.modelfile import ModelLock
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
        [sys.executable, "-c", "import sys; from charlstm_core.files.modelfile import ModelLock; "
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


BOMB = 128 << 20  # zeros deflate about 1000:1: a 128 KB entry that inflates to 128 MB


@pytest.mark.parametrize(
    "name, header",
    [
        ("extra.npy", b""),  # an entry no model has
        ("train/history/x.npy", _npy_header((BOMB // 8,), "<f8")),  # more than any run's history
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
        keep = {
            i.filename: z.read(i) for i in z.infolist() if i.filename != "params/decoder.bias.npy"
        }
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
        keep = {
            i.filename: z.read(i) for i in z.infolist() if i.filename != "params/decoder.bias.npy"
        }
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

    from charlstm_core.files.modelfile.parse import to_arrays

    arrays = to_arrays(checkpoint)
    meta = json.loads(arrays["train/meta"].tobytes())
    change(meta)
    arrays["train/meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    path = tmp_path / "state.npz"
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return str(path)


def _with_array(tmp_path, checkpoint, key, change) -> str:
    from charlstm_core.files.modelfile.parse import to_arrays

    arrays = to_arrays(checkpoint)
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
        (
            lambda t, c: _with_train_meta(t, c, lambda m: m["rng"].pop("dropout")),
            "random-generator",
        ),
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
        (
            lambda t, c: _with_train_meta(t, c, lambda m: m.update(best_val_loss=float("nan"))),
            "best",
        ),
        (lambda t, c: _with_train_meta(t, c, lambda m: m.update(best_val_loss=-1.0)), "best"),
        (
            lambda t, c: _with_train_meta(t, c, lambda m: m.update(elapsed_s=float("inf"))),
            "elapsed",
        ),
        (lambda t, c: _with_train_meta(t, c, lambda m: m.update(samples=[[1]])), "samples"),
        (
            lambda t, c: _with_array(t, c, "train/adam_v/decoder.bias", lambda a: a - 1.0),
            "negative",
        ),
        (lambda t, c: _with_array(t, c, "train/adam_m/decoder.bias", _nan_first), "NaN"),
        (lambda t, c: _with_array(t, c, "train/c", _nan_first), "NaN"),
    ],
)
def test_bad_training_state_is_refused_at_load(tmp_path, checkpoint, make, message):
    path = make(tmp_path, checkpoint)
    with pytest.raises(ModelFileError, match=message) as info:
        load_model(path)
    assert path in str(info.value)


# ---------------------------------------------------------------------------------------------
# The command line: special paths, logs, names, signals, kill -9, a full disk, two writers

TINY = ["--hidden", "8", "--layers", "1", "--seq-len", "8", "--batch-size", "4",
        "--eval-every", "0", "--sample-every", "0"]  # fmt: skip


def _run(capsys, *argv) -> tuple[int, str]:
    code = cli.main([os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, err


@pytest.fixture
def text(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "fox.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_out_fifo_and_device_are_refused(text, tmp_path, capsys):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "--out", fifo)
    assert code == 2 and "FIFO" in err and "not a regular file" in err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    dev = tmp_path / "null.npz"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError as e:
        pytest.skip(f"cannot create a device node here ({e.strerror}); FIFO checked")
    code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "--out", dev)
    assert code == 2 and "device" in err
    assert stat.S_ISCHR(os.stat(dev).st_mode)


def test_out_dev_null_stays_a_device(text, capsys):
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "--out", "/dev/null")
    assert code == 2 and "device" in err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_out_symlink_saves_through_to_its_target(text, tmp_path, capsys):
    target = tmp_path / "models" / "real.npz"
    target.parent.mkdir()
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    code, err = _run(capsys, "train", text, *TINY, "--steps", 3, "--out", link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert load_model(target).train.step == 3
    # and again through the link (resume), the link still a link
    code, err = _run(capsys, "train", "--resume", link, text, "--steps", 5, "-q")
    assert code == 0, err
    assert link.is_symlink() and load_model(target).train.step == 5
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]


def test_log_never_overwrites_the_text_or_the_model(text, tmp_path, capsys):
    before = text.read_bytes()
    code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "--log-jsonl", text)
    assert code == 2 and "training text" in err
    assert text.read_bytes() == before
    assert _run(capsys, "train", text, *TINY, "--steps", 2, "--out", "m.npz", "-q")[0] == 0
    model = (tmp_path / "m.npz").read_bytes()
    for argv in (["--out", "m.npz"], ["--resume", "m.npz"]):
        extra = [] if argv[0] == "--out" else ["--steps", "1"]
        tiny = TINY if argv[0] == "--out" else []
        code, err = _run(capsys, "train", text, *tiny, *argv, *extra, "--log-jsonl", "m.npz")
        assert code == 2 and "model file" in err, err
    assert (tmp_path / "m.npz").read_bytes() == model
    link = tmp_path / "log-link"
    link.symlink_to(text)
    code, _ = _run(capsys, "train", text, *TINY, "--steps", 2, "--log-jsonl", link)
    assert code == 2 and text.read_bytes() == before


def test_log_may_be_a_stream(text, capsys):
    code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "--log-jsonl", "/dev/null", "-q")
    assert code == 0, err


def test_fifo_and_dev_zero_as_text_or_model_are_refused(text, tmp_path, capsys):
    fifo = tmp_path / "in.txt"
    os.mkfifo(fifo)  # opening it for reading would block: it must never be opened
    code, err = _run(capsys, "train", fifo, *TINY, "--steps", 2)
    assert code == 1 and "FIFO" in err
    for argv in (["train", "/dev/zero", "--steps", "2"], ["info", "/dev/zero"],
                 ["sample", "/dev/zero"], ["info", fifo]):  # fmt: skip
        code, err = _run(capsys, *argv)
        assert code == 1 and "not a regular file" in err, (argv, err)


def test_names_that_are_not_utf8_train_save_and_show(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    name = os.fsdecode(b"bad\xffname.txt")
    (tmp_path / name).write_text(TEXT, encoding="utf-8")
    code, err = _run(capsys, "train", name, *TINY, "--steps", 3)
    assert code == 0, err
    model = os.fsdecode(b"bad\xffname.npz")
    mf = load_model(model)
    assert mf.train.corpus["name"] == "bad\\xffname.txt"  # printable, round-trips as text
    code, _ = _run(capsys, "info", model)
    assert code == 0
    out_dir = tmp_path / os.fsdecode(b"d\xfe")
    out_dir.mkdir()
    code, err = _run(capsys, "train", "--resume", model, name, "--steps", 5,
                     "--out", out_dir / model)  # fmt: skip
    assert code == 0, err
    assert load_model(out_dir / model).train.step == 5


def test_two_writers_second_refused(text, tmp_path, capsys):
    proc = subprocess.Popen(
        [sys.executable, "-m", "charlstm_core", "train", str(text), *TINY, "--steps", "1000000",
         "--out", "m.npz", "-q", "--log-jsonl", "log.jsonl"],
        cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with proc:
        try:
            # steps are logged once training runs: by then the lock is held and SIGTERM saves
            log = tmp_path / "log.jsonl"
            _wait_for(lambda: log.exists() and log.stat().st_size > 2000)
            assert os.path.exists(lock_path(tmp_path / "m.npz"))
            code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "--out", "m.npz")
            assert code == 1 and "in use" in err and str(proc.pid) in err
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert proc.returncode == 128 + signal.SIGTERM
    assert load_model(tmp_path / "m.npz").train.step > 0


def _wait_for(condition, timeout: float = 30.0) -> None:
    import time

    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGINT"])
@pytest.mark.parametrize("every", [1000, 1], ids=["training", "saving"])
def test_signal_stops_saves_and_exits_conventionally(text, tmp_path, sig, every):
    """every=1 saves after every step, so the signal mostly lands in or beside a save."""
    signum = getattr(signal, sig)
    proc = subprocess.Popen(
        [sys.executable, "-m", "charlstm_core", "train", str(text), *TINY, "--steps", "1000000",
         "--checkpoint-every", str(every), "--out", "m.npz", "--log-jsonl", "log.jsonl"],
        cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    with proc:
        _wait_for(lambda: (tmp_path / "log.jsonl").exists()
                  and (tmp_path / "log.jsonl").stat().st_size > 2000)  # fmt: skip
        proc.send_signal(signum)
        err = proc.stderr.read()
        proc.wait(30)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert "checkpoint saved to" in err and "m.npz" in err
    mf = load_model(tmp_path / "m.npz")
    assert mf.train.step > 0
    assert f"at step {mf.train.step:,}" in err
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    last = (tmp_path / "log.jsonl").read_text().strip().splitlines()[-1]
    assert '"interrupted"' in last


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_while_numpy_loads_prints_no_traceback(text, tmp_path):
    """The Ctrl-C lands exactly while the command line imports NumPy (the first quarter second
    of a run), which NumPy used to turn into an ImportError full of traceback text."""
    child = textwrap.dedent(f"""
        import builtins, os, signal, sys
        from charlstm_core import cli
        real_import = builtins.__import__
        fired = []

        def hook(name, *args, **kwargs):
            if name == "numpy" and not fired:
                fired.append(1)
                os.kill(os.getpid(), signal.SIGINT)
            return real_import(name, *args, **kwargs)

        builtins.__import__ = hook
        assert "numpy" not in sys.modules
        sys.exit(cli.main(["train", {str(text)!r}, "--steps", "5", "--hidden", "8"]))
    """)
    r = subprocess.run([sys.executable, "-c", child], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 130, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip() == ""
    assert not (tmp_path / "fox.npz").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_at_start_up_prints_no_traceback(text, tmp_path):
    """Ctrl-C at a few moments of the first quarter second after the interpreter's own start-up
    (a Ctrl-C inside Python's site import is Python's own and is not counted)."""
    import time

    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    bare = time.perf_counter() - t
    for delay in (0.0, 0.1, 0.25):
        proc = subprocess.Popen(
            [sys.executable, "-m", "charlstm_core", "train", str(text), *TINY, "--steps", "5"],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        with proc:
            time.sleep(2 * bare + delay)
            proc.send_signal(signal.SIGINT)
            err = proc.stderr.read()
            proc.wait(30)
        if "init_import_site" in err:  # still in Python's start-up on a busy machine
            continue
        assert "Traceback" not in err, (delay, err)
        # 130 when the signal stopped the run; 0 when it came after; -SIGINT when it came during
        # the interpreter's own shutdown, after the model was saved (a shell shows 130 too)
        assert proc.returncode in (0, 130, -signal.SIGINT), (delay, proc.returncode, err)


CTRL_C_DURING_THE_CLI_IMPORT = """
import builtins, os, runpy, signal
real_import = builtins.__import__
def import_(name, globals=None, locals=None, fromlist=(), level=0):
    if name == "cli" and level == 1:  # python -m charlstm_core's "from .cli import main"
        os.kill(os.getpid(), signal.SIGINT)
    return real_import(name, globals, locals, fromlist, level)
builtins.__import__ = import_
runpy.run_module("charlstm_core", run_name="__main__", alter_sys=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_while_the_command_line_is_imported_ends_quietly(tmp_path):
    # the moment test_ctrl_c_at_start_up_prints_no_traceback hit by chance on a busy machine
    r = subprocess.run(
        [sys.executable, "-c", CTRL_C_DURING_THE_CLI_IMPORT, "--help"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 130


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_kill_9_during_saves_never_corrupts_and_temps_are_cleaned(tmp_path, checkpoint):
    import random
    import time

    path = tmp_path / "m.npz"
    big = _bigger(checkpoint)
    save_model(path, big)
    rnd = random.Random(0)
    for _ in range(30):
        pid = os.fork()
        if pid == 0:  # the child saves until it is killed
            try:
                while True:
                    save_model(path, big)
            finally:
                os._exit(0)
        time.sleep(rnd.uniform(0.0, 0.05))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        load_model(path)  # always a complete model: the old one or the new one
    # A temporary file of a dead writer, for certain (a process that has exited):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    (tmp_path / f".m.npz.{dead}.abcd1234.tmp").write_bytes(b"PK\x03\x04partial")
    (tmp_path / ".other.npz.1.zzzz_zzz.tmp").write_bytes(b"PK")  # pid 1 is alive: kept
    save_model(path, big)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
    assert left == [".other.npz.1.zzzz_zzz.tmp"]


def _bigger(mf):
    """The checkpoint with wider history arrays: a few MB, so that saves take a while."""
    import dataclasses

    hist = dict(mf.train.history)
    hist["train_step"] = np.arange(1, 400_001, dtype=np.int64)
    hist["train_loss"] = np.linspace(4, 1, 400_000)
    train = dataclasses.replace(mf.train, history=hist, total_steps=400_000, step=400_000)
    return dataclasses.replace(mf, train=train)


def test_full_disk_keeps_the_previous_file(tmp_path, checkpoint):
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)],
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip() or r.returncode}")
    try:
        path = disk / "m.npz"
        save_model(path, checkpoint)
        before = path.read_bytes()
        with pytest.raises(ModelFileError, match="No space left|disk space"):
            save_model(path, _bigger(checkpoint))  # about 6 MB: does not fit
        assert path.read_bytes() == before
        load_model(path)
        assert not [p for p in disk.iterdir() if p.name.endswith(".tmp")]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_stream_position_beyond_the_text_is_refused_at_resume(text, tmp_path, capsys):
    assert _run(capsys, "train", text, *TINY, "--steps", 3, "--out", "m.npz", "-q")[0] == 0
    mf = load_model(tmp_path / "m.npz")
    path = _with_train_meta(tmp_path, mf, lambda m: m["stream"].update(batch=10**6))
    code, err = _run(capsys, "train", "--resume", path, text, "--steps", 4)
    assert code == 1 and "stream position" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# Sessions (charlstm_core.training.session): a sweep stopped by a signal or killed, a final save
# that cannot reach --out, the run store lost during a run


def _sweep(tmp_path, jobs: int) -> subprocess.Popen:
    """``charlstm sweep`` of three endless points, in a process group (a session) of its own, as
    a terminal's job is; stdout and stderr piped."""
    (tmp_path / "fox.txt").write_text(TEXT, encoding="utf-8")
    argv = [sys.executable, "-m", "charlstm_core", "sweep", "fox.txt", "--grid",
            "lr=2e-3,4e-3,8e-3", *TINY, "--steps", "1000000", "--checkpoint-every", "1000000",
            "--jobs", str(jobs), "--runs-db", "runs.sqlite", "--out-dir", "sw"]  # fmt: skip
    env = {**_env(), "OPENBLAS_NUM_THREADS": "1", "CHARLSTM_HOME": str(tmp_path / "home")}
    return subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def _steps_recorded(db) -> int:
    from charlstm_core.errors import RunStoreError
    from charlstm_core.runs import RunStore

    try:
        with RunStore.open(db) as store:
            return sum(r.steps for r in store.list_runs())
    except RunStoreError:
        return 0


def _alive_in_session(sid: int) -> list[str]:
    """The processes of session ``sid`` still running (``ps``; zombies, already ended, left
    out): the sweep, its workers, multiprocessing's resource tracker."""
    ps = subprocess.run(["ps", "-e", "-o", "pid=,sid=,stat=,args="], capture_output=True,
                        text=True, check=True).stdout  # fmt: skip
    alive = []
    for line in ps.splitlines():
        pid, psid, stat_, args = (line.split(None, 3) + [""])[:4]
        if int(psid) == sid and not stat_.startswith("Z") and int(pid) != os.getpid():
            alive.append(line.strip())
    return alive


def _wait_until_gone(sid: int, timeout: float) -> list[str]:
    import time

    end = time.monotonic() + timeout
    while (alive := _alive_in_session(sid)) and time.monotonic() < end:
        time.sleep(0.2)
    return alive


def _end_session(proc: subprocess.Popen) -> None:
    """Whatever happened, nothing of the sweep outlives the test."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.communicate(timeout=10)


def _stopped_runs_kept(db) -> list:
    """The sweep's runs: each stopped, not crashed, its model saved at its last step."""
    from charlstm_core.runs import RunStore

    with RunStore.open(db) as store:
        runs = store.list_runs()
    for r in runs:
        assert r.status == "stopped" and r.steps > 0, (r.status, r.message)
        assert load_model(r.model_path).train.step == r.steps
    return runs


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("jobs", [1, 2])
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_sigterm_or_sighup_stops_a_sweep_after_the_step_and_prints_the_table(tmp_path, sig, jobs):
    """Issue 19 #6: SIGTERM (``kill``, to the sweep alone) or SIGHUP (a logout: to every process
    of the terminal's group) killed everything at once: no table, every point "crashed" with its
    last autosave. Now the points in progress stop after their step and save, the table of what
    finished is printed, exit 128 + the signal, and no process is left (#7: SIGTERM to the
    parent alone left the workers training)."""
    signum = getattr(signal, sig)
    proc = _sweep(tmp_path, jobs)
    try:
        _wait_for(lambda: _steps_recorded(tmp_path / "runs.sqlite") > 20 * jobs, timeout=120)
        if sig == "SIGHUP":
            os.killpg(proc.pid, signum)  # the hang-up reaches the whole job
        else:
            proc.send_signal(signum)  # the sweep's own process only
        out, err = proc.communicate(timeout=120)
        left = _wait_until_gone(proc.pid, timeout=30)
    finally:
        _end_session(proc)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in out + err and f"stopped by {sig}" in err
    rows = out.splitlines()[1:4]
    statuses = sorted(line.split()[2] for line in rows)
    assert statuses == sorted(["stopped"] * jobs + ["skipped"] * (3 - jobs)), out
    assert len(_stopped_runs_kept(tmp_path / "runs.sqlite")) == jobs
    assert left == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="POSIX signals, ps -o sid")
def test_a_sweeps_workers_end_with_their_parent_after_saving(tmp_path):
    """Issue 19 #7: after ``kill -9`` of ``charlstm sweep --jobs 2`` both workers (and the
    resource tracker) trained on under PID 1, then idled. Now each worker sees its parent go,
    stops its point after the step, saves and records it, and ends: nothing saved is lost and
    no process is left."""
    proc = _sweep(tmp_path, jobs=2)
    try:
        _wait_for(lambda: _steps_recorded(tmp_path / "runs.sqlite") > 40, timeout=120)
        assert len(_alive_in_session(proc.pid)) >= 3  # the sweep, two workers (and a tracker)
        proc.kill()
        proc.communicate(timeout=30)
        left = _wait_until_gone(proc.pid, timeout=60)
    finally:
        _end_session(proc)
    assert left == []
    assert len(_stopped_runs_kept(tmp_path / "runs.sqlite")) == 2


def _replace_out_at_step(monkeypatch, step: int, replace) -> None:
    """Call ``replace()`` once the run has shown step ``step`` (as a user or a disk would)."""
    from charlstm_core.cli import console
    from charlstm_core.events import StepEvent

    show = console.Progress.__call__

    def showing(self, event):
        show(self, event)
        if isinstance(event, StepEvent) and event.step == step:
            replace()

    monkeypatch.setattr(console.Progress, "__call__", showing)


def test_a_final_save_that_cannot_reach_out_goes_to_the_autosave_folder(text, tmp_path, capsys,
                                                                        monkeypatch):  # fmt: skip
    """Issue 19 #9: --out replaced by a folder during the run lost the whole run ("crashed",
    nothing saved). Now the model goes to the autosave folder, the message names the file, the
    run is recorded "finished" with it, and the exit status says --out was not written."""
    from charlstm_core.runs import RunStore

    out = tmp_path / "m.npz"

    def folder_instead():
        out.unlink()
        out.mkdir()

    _replace_out_at_step(monkeypatch, 5, folder_instead)
    code, err = _run(capsys, "train", text, *TINY, "--steps", 8, "--checkpoint-every", 2,
                     "--out", out)  # fmt: skip
    assert code == 1, err
    home = os.environ["CHARLSTM_HOME"]
    saved = [p for p in os.listdir(os.path.join(home, "autosave")) if p.endswith(".npz")]
    assert len(saved) == 1 and saved[0].startswith("m-")
    path = os.path.join(home, "autosave", saved[0])
    assert path in err and "m.npz" in err and "folder" in err.lower()
    assert load_model(path).train.step == 8
    with RunStore.open() as store:
        (run,) = store.list_runs()
    assert run.status == "finished" and run.model_path == path and run.steps == 8


def test_a_full_disk_at_the_end_keeps_the_previous_file_and_saves_elsewhere(
    text, tmp_path, capsys, monkeypatch
):
    """Issue 19 #9, a full disk: the final save fails there, the previous autosave stays intact
    on it, and the model is saved to the autosave folder (on another disk) instead."""
    disk = tmp_path / "disk"
    disk.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                       capture_output=True, text=True)  # fmt: skip
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip() or r.returncode}")
    try:
        out = disk / "m.npz"

        def fill_the_disk():
            with open(disk / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 4096)

        _replace_out_at_step(monkeypatch, 5, fill_the_disk)
        code, err = _run(capsys, "train", text, *TINY, "--steps", 8, "--checkpoint-every", 4,
                         "--out", out)  # fmt: skip
        assert code == 1, err
        assert load_model(out).train.step == 4  # the autosave before the disk filled up
        assert not [p for p in disk.iterdir() if p.name.endswith(".tmp")]
        home = os.path.join(os.environ["CHARLSTM_HOME"], "autosave")
        (saved,) = os.listdir(home)
        assert os.path.join(home, saved) in err and "space" in err
        assert load_model(os.path.join(home, saved)).train.step == 8
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_run_store_deleted_during_the_run_is_reported_not_numbered(text, tmp_path, capsys,
                                                                      monkeypatch):  # fmt: skip
    """Issue 19 D: the run store deleted during a run: the run still said "(run 1)" though
    nothing was kept. Now it says that the run is not recorded; training is not affected."""
    db = tmp_path / "runs.sqlite"

    def delete_the_store():
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{db}{suffix}")

    _replace_out_at_step(monkeypatch, 5, delete_the_store)
    code, err = _run(capsys, "train", text, *TINY, "--steps", 8, "--runs-db", db)
    assert code == 0, err
    assert "(run 1)" not in err and "deleted" in err and "not recorded" in err
    assert load_model(text.with_suffix(".npz")).train.step == 8


def test_a_run_store_replaced_during_the_run_is_reported_not_numbered(text, tmp_path, capsys,
                                                                       monkeypatch):  # fmt: skip
    """Issue 19 D, the store deleted and a new one made in its place during the run (say, by
    ``charlstm runs``): the run was written on into the deleted file and said "(run 1)"."""
    from charlstm_core.runs import RunStore

    db = tmp_path / "runs.sqlite"

    def replace_the_store():
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{db}{suffix}")
        RunStore.open(db).close()

    _replace_out_at_step(monkeypatch, 5, replace_the_store)
    code, err = _run(capsys, "train", text, *TINY, "--steps", 8, "--runs-db", db)
    assert code == 0, err
    assert "(run 1)" not in err and "replaced" in err and "not recorded" in err
    with RunStore.open(db) as store:
        assert store.list_runs() == []


def test_a_run_store_damaged_during_the_run_is_reported_not_numbered(text, tmp_path, capsys,
                                                                      monkeypatch):  # fmt: skip
    """Issue 19 D, a store overwritten with other bytes during the run (the same file): a
    guard (this one was already caught, by the writes that fail)."""
    from charlstm_core.runs import RunStore

    db = tmp_path / "runs.sqlite"
    RunStore.open(db).close()  # a store that was there before the run

    def damage_the_store():
        size = db.stat().st_size
        with open(db, "r+b") as f:
            f.write(b"not a database any more " * (size // 24 + 1))

    _replace_out_at_step(monkeypatch, 5, damage_the_store)
    code, err = _run(capsys, "train", text, *TINY, "--steps", 8, "--runs-db", db)
    assert code == 0, err
    assert "(run 1)" not in err and "not recorded" in err
    assert load_model(text.with_suffix(".npz")).train.step == 8


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_hang_up_that_takes_the_terminal_away_still_saves(text, tmp_path, capsys, monkeypatch):
    """SIGHUP from a closed terminal: stderr then fails (EIO). The run used to end there with
    that error and nothing saved; it stops after the step, saves and exits 129 silently."""
    import errno

    from charlstm_core.cli import console

    real_write, gone = console.write, []

    def write(stream, text):
        if gone and stream is sys.stderr:
            raise OSError(errno.EIO, "Input/output error")
        real_write(stream, text)

    def hang_up():
        gone.append(True)
        os.kill(os.getpid(), signal.SIGHUP)

    monkeypatch.setattr(console, "write", write)
    _replace_out_at_step(monkeypatch, 5, hang_up)
    code, _ = _run(capsys, "train", text, *TINY, "--steps", 10**6, "--out", tmp_path / "m.npz")
    assert code == 128 + signal.SIGHUP
    assert load_model(tmp_path / "m.npz").train.step == 5


# Issue 19 A: one guarded writer (charlstm_core.files.writer) for every file the project writes.
# The rule: a writer replaces only a file of its own kind or a new name; never the training text,
# a model, the run store, a device; a symlink is written through; a FIFO only for the log.


def _store_runs(db=None) -> list:
    from charlstm_core.runs import RunStore

    with RunStore.open(db) as store:
        return store.list_runs()


def _train_tiny(capsys, text, *extra) -> None:
    code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "-q", *extra)
    assert code == 0, err


def test_log_never_replaces_an_unrelated_model(text, tmp_path, capsys):
    """A1: --log-jsonl naming a model that is neither --out nor --resume."""
    _train_tiny(capsys, text, "--out", "keep.npz")
    keep = (tmp_path / "keep.npz").read_bytes()
    code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "--out", "other.npz",
                     "--log-jsonl", "keep.npz")  # fmt: skip
    assert code == 2 and "keep.npz" in err and "model file" in err, err
    assert (tmp_path / "keep.npz").read_bytes() == keep
    assert not (tmp_path / "other.npz").exists()  # refused before anything was trained


def test_log_never_replaces_the_run_store(text, tmp_path, capsys):
    """A2: --log-jsonl naming $CHARLSTM_HOME/runs.sqlite, existing or about to be made."""
    from charlstm_core.runs import default_db_path

    db = default_db_path()
    code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "--log-jsonl", db)
    assert code == 2 and "the run store" in err, err  # not yet there: still the store's name
    _train_tiny(capsys, text)
    before = db.read_bytes()
    code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "--log-jsonl", db)
    assert code == 2 and "the run store" in err, err
    code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "--runs-db", "mine.sqlite",
                     "--log-jsonl", "mine.sqlite")  # fmt: skip
    assert code == 2 and "--runs-db" in err, err
    assert db.read_bytes()[:16] == before[:16] and len(_store_runs()) == 1


def test_runs_rm_with_model_keeps_a_file_another_run_owns(text, tmp_path, capsys):
    """A3: the model of an old run that a --resume (a later run) now owns, or a live run holds."""
    _train_tiny(capsys, text, "--out", "m.npz")
    code, err = _run(capsys, "train", "--resume", "m.npz", text, "--steps", 4, "-q")
    assert code == 0, err
    old, new = sorted(r.id for r in _store_runs())
    code, err = _run(capsys, "runs", "rm", old, "--with-model", "--yes")
    assert code == 1 and f"run {new}" in err and "Nothing was deleted" in err, err
    assert (tmp_path / "m.npz").exists() and len(_store_runs()) == 2
    # a process holding the file's lock (a run training into it) keeps it too
    with ModelLock(tmp_path / "m.npz"):
        code, err = _run(capsys, "runs", "rm", old, new, "--with-model", "--yes")
        assert code == 1 and "in use" in err, err
    assert (tmp_path / "m.npz").exists() and len(_store_runs()) == 2
    # both runs together: the file is theirs alone
    code, err = _run(capsys, "runs", "rm", old, new, "--with-model", "--yes")
    assert code == 0, err
    assert not (tmp_path / "m.npz").exists() and _store_runs() == []


def test_runs_rm_with_model_keeps_a_file_that_is_no_longer_a_model(text, tmp_path, capsys):
    _train_tiny(capsys, text, "--out", "m.npz")
    (tmp_path / "m.npz").write_text("my notes now\n", encoding="utf-8")
    (run,) = _store_runs()
    code, err = _run(capsys, "runs", "rm", run.id, "--with-model", "--yes")
    assert code == 1 and "no longer a model" in err, err
    assert (tmp_path / "m.npz").read_text(encoding="utf-8") == "my notes now\n"


def test_runs_db_is_never_a_model_or_another_file(text, tmp_path, capsys):
    """A4: --runs-db equal to --out, naming an existing model, or an existing text."""
    code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "--out", "m.npz",
                     "--runs-db", "m.npz")  # fmt: skip
    assert code == 2 and "--runs-db" in err and "--out" in err, err
    assert not (tmp_path / "m.npz").exists()
    _train_tiny(capsys, text, "--out", "m.npz")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database\n", encoding="utf-8")
    saved = {p: p.read_bytes() for p in (tmp_path / "m.npz", notes)}
    for db in saved:
        code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "--out", "n.npz",
                         "--runs-db", db)  # fmt: skip
        assert code == 2 and "not a runs database" in err, err
        code, err = _run(capsys, "runs", "--runs-db", db)
        assert code == 1 and "not a runs database" in err, err
    assert {p: p.read_bytes() for p in saved} == saved
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(("-wal", "-journal", "-shm"))]


def test_run_store_linked_to_dev_null_is_named_a_device(tmp_path, capsys, monkeypatch):
    """D: a symlink from runs.sqlite to /dev/null is 'a device', not a disk I/O error."""
    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null")
    home = tmp_path / "home"
    home.mkdir()
    (home / "runs.sqlite").symlink_to("/dev/null")
    monkeypatch.setenv("CHARLSTM_HOME", str(home))
    code, err = _run(capsys, "runs")
    assert code == 1 and "device" in err and "disk" not in err, err
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def _hostile_model(capsys, text) -> str:
    _train_tiny(capsys, text, "--out", "m.npz")
    return "m.npz"


def test_html_page_into_a_fifo_a_device_or_over_a_symlink(text, tmp_path, capsys):
    """A5: a FIFO is refused without being opened (it used to hang), a device is never
    replaced, a symlink is written through like --out."""
    model = _hostile_model(capsys, text)
    fifo = tmp_path / "page.fifo"
    os.mkfifo(fifo)
    r = subprocess.run(
        [sys.executable, "-m", "charlstm_core", "inspect", model, str(text), "--html", str(fifo)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 2 and "FIFO" in r.stderr, r.stderr
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    page = tmp_path / "pages" / "real.html"
    page.parent.mkdir()
    link = tmp_path / "link.html"
    link.symlink_to(page)
    code, err = _run(capsys, "inspect", model, text, "--html", link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(page)
    assert "CharLSTM Studio" in page.read_text(encoding="utf-8")
    code, err = _run(capsys, "inspect", model, text, "--html", link)  # a page over a page
    assert code == 0 and link.is_symlink(), err
    dev = tmp_path / "null.html"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except OSError as e:
        pytest.skip(f"cannot create a device node here ({e.strerror}); FIFO checked")
    code, err = _run(capsys, "inspect", model, text, "--html", dev)
    assert code == 2 and "device" in err
    assert stat.S_ISCHR(os.stat(dev).st_mode)


def test_html_page_never_replaces_a_text_or_a_log(text, tmp_path, capsys):
    model = _hostile_model(capsys, text)
    notes = tmp_path / "notes.html"
    notes.write_text("<html>my own page</html>\n", encoding="utf-8")
    code, err = _run(capsys, "inspect", model, text, "--html", notes)
    assert code == 2 and "not a page written by charlstm inspect" in err, err
    assert notes.read_text(encoding="utf-8") == "<html>my own page</html>\n"


def test_a_sweep_rerun_never_replaces_the_earlier_sweeps_models(text, tmp_path, capsys):
    """A8: the same --out-dir again: refused, saying which files, before anything trains."""
    argv = ["sweep", text, *TINY, "--steps", 2, "--grid", "lr=0.01,0.02", "--out-dir", "sw", "-q"]
    code, err = _run(capsys, *argv)
    assert code == 0, err
    models = {p: p.read_bytes() for p in (tmp_path / "sw").glob("*.npz")}
    assert len(models) == 2
    code, err = _run(capsys, *argv)
    assert code == 2 and "01_lr=0.01.npz" in err and "another --out-dir" in err, err
    assert {p: p.read_bytes() for p in (tmp_path / "sw").glob("*.npz")} == models
    assert len(_store_runs()) == 2


def test_writer_rule_table(tmp_path):
    """The rule, kind by kind: what each writer may replace."""
    from charlstm_core.errors import CharLSTMError
    from charlstm_core.files.writer import Kind, check_target, write_atomic

    files = {
        "model.npz": None,  # written below
        "runs.sqlite": b"SQLite format 3\x00" + bytes(100),
        "log.jsonl": b'{"event": "step", "step": 1}\n',
        "page.html": b'<!DOCTYPE html>\n<meta name="generator" content="CharLSTM Studio inspect">',
        "loss.csv": b"step,chars_seen,train_loss,train_loss_smoothed,val_loss\r\n1,2,3,,\r\n",
        "plot.png": b"\x89PNG\r\n\x1a\n" + bytes(20),
        "notes.txt": "résumé, notes\n".encode(),
        "blob.bin": b"\x00\x01binary",
        "empty": b"",
    }
    for name, data in files.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
    corpus = corpus_from_text(TEXT)
    mc = ModelConfig(vocab_size=corpus.vocab.size, hidden_size=8)
    save_model(tmp_path / "model.npz", Trainer(corpus, mc, TrainConfig(steps=1)).snapshot())
    own = {Kind.MODEL: "model.npz", Kind.RUN_STORE: "runs.sqlite", Kind.LOG: "log.jsonl",
           Kind.PAGE: "page.html", Kind.CSV: "loss.csv", Kind.PNG: "plot.png",
           Kind.TEXT: "notes.txt"}  # fmt: skip
    for kind in Kind:
        for name in files:
            allowed = name in (own[kind], "empty")
            try:
                check_target(tmp_path / name, kind)
                ok = True
            except CharLSTMError:
                ok = False
            assert ok == allowed, (kind, name)
    with pytest.raises(CharLSTMError, match="the training text"):
        notes = tmp_path / "notes.txt"
        check_target(notes, Kind.TEXT, protect={"the training text": notes})
    # written through a symlink, keeping the replaced file's mode; no temporary left
    os.chmod(tmp_path / "notes.txt", 0o640)
    (tmp_path / "link.txt").symlink_to(tmp_path / "notes.txt")
    write_atomic(tmp_path / "link.txt", Kind.TEXT, "new words\n")
    assert (tmp_path / "link.txt").is_symlink()
    assert (tmp_path / "notes.txt").read_text() == "new words\n"
    assert stat.S_IMODE(os.stat(tmp_path / "notes.txt").st_mode) == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ---------------------------------------------------------------------------------------------
# Issue 19 C: inputs checked before work is done


def test_a_model_name_too_long_for_the_save_is_refused_before_training(text, tmp_path, capsys):
    """C10: a name of 245 bytes passes the file system but not the save's temporary file."""
    name = "m" * 241 + ".npz"
    code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "--out", name)
    assert code == 2 and "at most" in err and "bytes" in err, err
    assert not (tmp_path / name).exists()
    assert len(_store_runs()) == 0  # nothing trained, nothing recorded


def test_a_sparse_binary_text_is_refused_from_its_first_block(tmp_path):
    """C11: NUL bytes at the start: refused without reading the whole file (512 MB sparse here,
    2 GB in benchmarks/bench_inputs.py), in far less memory than the file."""
    import tracemalloc

    from charlstm_core.errors import CorpusError
    from charlstm_core.files.text import load_corpus

    path = tmp_path / "sparse.txt"
    with open(path, "wb") as f:
        f.truncate(512 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(CorpusError, match="NUL bytes"):
            load_corpus(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100 << 20


def test_a_text_of_too_many_distinct_characters_is_refused_at_once(tmp_path):
    """D: time and memory of a step grow with the vocabulary V (benchmarks/bench_inputs.py):
    a text with more than MAX_VOCAB distinct characters is refused when read."""
    from charlstm_core.errors import CorpusError
    from charlstm_core.files.text import load_corpus
    from charlstm_core.files.vocab import MAX_VOCAB

    chars = [chr(c) for c in range(0x4E00, 0x4E00 + MAX_VOCAB + 1)]
    path = tmp_path / "wide.txt"
    path.write_text("".join(chars * 2), encoding="utf-8")
    with pytest.raises(CorpusError, match=f"{MAX_VOCAB + 1:,} distinct characters"):
        load_corpus(path)
    path.write_text("".join(chars[:MAX_VOCAB] * 2), encoding="utf-8")
    assert load_corpus(path).vocab.size == MAX_VOCAB


# ---------------------------------------------------------------------------------------------
# Issue 19 D: smaller ones


def test_runs_prints_names_with_newlines_and_escape_codes_inert(text, tmp_path, capsys):
    _train_tiny(capsys, text, "--name", "one\nline two \x1b[31mred\x1b]0;title\x07")
    code = cli.main(["runs"])
    out, _ = capsys.readouterr()
    assert code == 0 and "\x1b" not in out and "\x07" not in out
    assert len(out.strip().splitlines()) == 2  # the header and the run, one line each
    assert "one\\nline two \\x1b[31mred" in out
    code = cli.main(["runs", "show", "1"])
    out, _ = capsys.readouterr()
    assert code == 0 and "\x1b" not in out and "one\\nline two" in out


def test_a_damaged_row_is_named_and_the_others_listed(text, tmp_path, capsys):
    import sqlite3

    from charlstm_core.runs import default_db_path

    for _ in range(2):
        _train_tiny(capsys, text)
    con = sqlite3.connect(default_db_path())
    con.execute("UPDATE runs SET started = 'yesterday', steps = 'x' WHERE id = 1")
    con.commit()
    con.close()
    for argv in (["runs"], ["runs", "--json"]):
        code = cli.main(argv)
        out, err = capsys.readouterr()
        assert code == 0 and "run 1" in err and "damaged" in err, (argv, err)
        assert "unexpected" not in err
    code, err = _run(capsys, "runs", "show", "1")
    assert code == 1 and "damaged" in err and "unexpected" not in err
    code, err = _run(capsys, "runs", "show", "9" * 20)
    assert code == 1 and "no run" in err and "unexpected" not in err, err


def test_resume_reads_another_text_as_utf8_not_in_the_last_texts_encoding(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    body = "déjà vu, café au lait, naïve résumé. " * 60
    utf8 = tmp_path / "a.txt"
    utf8.write_text(body, encoding="utf-8")
    latin = tmp_path / "b.txt"
    latin.write_bytes(body.encode("latin-1"))
    other = tmp_path / "c.txt"
    other.write_bytes(body[::-1].encode("latin-1"))
    _train_tiny(capsys, utf8, "--out", "m.npz")
    code, err = _run(capsys, "train", "--resume", "m.npz", latin, "--encoding", "latin-1",
                     "--steps", 4, "-q")  # fmt: skip
    assert code == 0, err
    code, err = _run(capsys, "train", "--resume", "m.npz", utf8, "--steps", 6, "-q")
    assert code == 0, err  # read as UTF-8 (it was read as latin-1: characters the model lacks)
    code, err = _run(capsys, "train", "--resume", "m.npz", latin, "--encoding", "latin-1",
                     "--steps", 8, "-q")  # fmt: skip
    assert code == 0, err
    code, err = _run(capsys, "train", "--resume", "m.npz", latin, "--steps", 10, "-q")
    assert code == 0, err  # the very text it was last trained on: its recorded encoding
    assert load_model("m.npz").train.corpus["encoding"] == "latin-1"
    code, err = _run(capsys, "train", "--resume", "m.npz", other, "--steps", 12, "-q")
    assert code == 1 and "read as utf-8" in err and "--encoding latin-1" in err, err
    encodings = [r.text_encoding for r in sorted(_store_runs(), key=lambda r: r.id)]
    assert encodings == ["utf-8", "latin-1", "utf-8", "latin-1", "latin-1"]


def test_a_tiny_temperature_picks_the_likeliest_character():
    import warnings

    from charlstm_core.sample import next_char_distribution

    logits = np.array([0.5, 3.0, -1.0, 2.9])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in (1e-320, 5e-324, 1e-300, 1e-30):
            p = next_char_distribution(logits, t)
            assert np.array_equal(p, [0.0, 1.0, 0.0, 0.0]), (t, p)
            assert np.array_equal(next_char_distribution(logits, t, top_k=2), p)


def test_eval_bounds_streams_and_warmup_to_the_text(text, tmp_path, capsys):
    model = _hostile_model(capsys, text)
    n = len(text.read_text(encoding="utf-8"))
    code = cli.main(["eval", model, str(text), "--streams", "1000000000"])
    out, err = capsys.readouterr()
    assert code == 0 and "streams instead" in err, err
    streams = int(out.split("scored, ")[1].split(" stream")[0].replace(",", ""))
    assert streams <= 1 + n // 256
    code = cli.main(["eval", model, str(text), "--streams", "8", "--warmup", "1000000000"])
    out, err = capsys.readouterr()
    assert code == 0 and "one stream" in err and "1 stream" in out, (out, err)


def test_grid_value_out_of_range_is_said_as_typed(text, capsys):
    code, err = _run(capsys, "sweep", text, "--steps", 2, "--grid", "seed=1e300")
    assert code == 2 and "1e300" in err and len(err) < 300, err


def test_out_naming_a_folder_is_refused(text, tmp_path, capsys):
    code, err = _run(capsys, "train", text, *TINY, "--steps", 2, "--out", "newdir/")
    assert code == 2 and "names a folder" in err, err
    assert not (tmp_path / "newdir").exists()


def test_resume_never_replaces_a_read_only_model(text, tmp_path, capsys):
    _train_tiny(capsys, text, "--out", "m.npz")
    path = tmp_path / "m.npz"
    os.chmod(path, 0o444)
    before = path.read_bytes()
    code, err = _run(capsys, "train", "--resume", "m.npz", text, "--steps", 4)
    assert code == 2 and "read-only" in err, err
    assert path.read_bytes() == before and stat.S_IMODE(path.stat().st_mode) == 0o444


def test_html_page_is_linear_in_the_passage(monkeypatch):
    """D: each tooltip used to recompute 2^-bits over the whole passage (80 s for 100,000
    characters; benchmarks/bench_inputs.py): the page reads it once."""
    from charlstm_core.engine.model import init_params
    from charlstm_core.files.modelfile import ModelFile
    from charlstm_core.insight import inspect as ins
    from charlstm_core.insight.html import render

    corpus = corpus_from_text(TEXT)
    cfg = ModelConfig(vocab_size=corpus.vocab.size, hidden_size=8)
    a = ins.analyse(ModelFile(cfg, init_params(cfg, np.random.default_rng(0)), corpus.vocab), TEXT)
    calls = []
    real = ins.Analysis.p_actual
    monkeypatch.setattr(
        ins.Analysis, "p_actual", property(lambda s: calls.append(1) or real.fget(s))
    )
    page = render(a, "t")
    assert len(calls) <= 1 and page.count("<span ") >= len(TEXT)
