"""Model files: one ``.npz`` with the weights (PyTorch names and layouts), vocabulary and
architecture, plus, in a checkpoint, all that exact resumption needs.

Saving is atomic (a temporary file renamed over the target; a symlink is saved through to its
target; devices and FIFOs are refused); a run holds a ModelLock on its file so that two writers
never race; loading never unpickles and checks every entry's name, compression and declared size
against the expected shapes before decompressing anything, then validates every key, shape, dtype,
value and the format version, raising ModelFileError (or a subclass) with a message naming the
problem. See docs/model-format.md for the layout.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import stat
import struct
import tempfile
import threading
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import __version__
from .config import ModelConfig, TrainConfig
from .data import N_CODEPOINTS, Vocab
from .errors import CharLSTMError, ModelFileError, ModelFileLocked, ModelFormatVersionError
from .model import param_shapes

FORMAT_VERSION = 1
APP_NAME = "CharLSTM Studio"
HISTORY_KEYS = ("train_step", "train_loss", "val_step", "val_loss")

# Keys of the .npz archive (see docs/model-format.md).
K_VERSION = "format_version"  # int64 ()
K_META = "meta"  # uint8 (n,): UTF-8 JSON {"app", "app_version", "model_config"}
K_VOCAB = "vocab"  # uint32 (V,): code points, strictly increasing
P_PARAM = "params/"  # params/<name>: config.dtype, PyTorch shape
K_TRAIN_META = "train/meta"  # uint8 (n,): UTF-8 JSON of the scalar training state
P_ADAM_M = "train/adam_m/"  # train/adam_m/<name>: like params/<name>
P_ADAM_V = "train/adam_v/"
K_H = "train/h"  # config.dtype (L, B, H)
K_C = "train/c"
P_HISTORY = "train/history/"  # train/history/<series>: (n,) int64 steps or float64 losses
_SERIES_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


@dataclass(frozen=True, eq=False)  # holds arrays: equality is identity
class TrainState:
    """Everything beyond the weights that continuing a run bit for bit needs."""

    config: TrainConfig  # the run's settings
    step: int  # optimizer steps done
    total_steps: int  # planned length of the run
    elapsed_s: float  # wall-clock seconds of training so far
    adam_m: dict[str, np.ndarray]  # Adam first moments, keyed and shaped like params
    adam_v: dict[str, np.ndarray]  # Adam second moments
    h: np.ndarray  # (L, B, H) hidden state carried into the next batch
    c: np.ndarray  # (L, B, H) cell state carried into the next batch
    rng: dict  # JSON-able bit_generator states by purpose
    stream: dict  # JSON-able stream position
    history: dict[str, np.ndarray]  # "train_step", "train_loss", "val_step", "val_loss" (n,)
    corpus: dict  # Corpus.fingerprint of the training text
    best_val_loss: float | None  # best validation loss so far, None before the first


@dataclass(frozen=True, eq=False)  # holds arrays: equality is identity
class ModelFile:
    """A model: architecture, weights and vocabulary; ``train`` is set in a checkpoint."""

    config: ModelConfig
    params: dict[str, np.ndarray]
    vocab: Vocab
    train: TrainState | None = None  # present in a checkpoint


def expected_param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Parameter names (in PyTorch's state_dict order) and shapes for ``cfg``: the model's own
    ``param_shapes`` (gate order i, f, g, o; ``lstm.weight_ih_l0`` is (4H, V))."""
    return param_shapes(cfg)


# ---------------------------------------------------------------------------------------------
# JSON held in uint8 arrays (no pickles anywhere)


def _json_default(obj: Any) -> Any:
    # bit_generator states and positions may hold NumPy scalars or small arrays.
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} cannot be stored in a model file's metadata")


def _json_array(obj: Any) -> np.ndarray:
    """(n,) uint8 UTF-8 JSON of ``obj``. Python ints of any size (PCG64 states) round-trip."""
    text = json.dumps(obj, default=_json_default, sort_keys=True, ensure_ascii=False)
    # A lone surrogate (a file name that is not UTF-8, decoded with surrogateescape) cannot be
    # UTF-8: it is stored as its escape, e.g. "\\udcff", never fails the save.
    return np.frombuffer(text.encode("utf-8", "backslashreplace"), dtype=np.uint8).copy()


def _parse_json(arr: np.ndarray, key: str) -> dict:
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise _bad(f"its {key!r} entry is not UTF-8 JSON bytes")
    try:
        obj = json.loads(arr.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _bad(f"its {key!r} entry is not valid JSON") from None
    if not isinstance(obj, dict):
        raise _bad(f"its {key!r} entry is not a JSON object")
    return obj


# ---------------------------------------------------------------------------------------------
# Validation, shared by save (so that what is saved can be loaded) and load


class _Invalid(Exception):
    """A validation failure; the caller turns it into ModelFileError with the path."""


def _bad(what: str) -> _Invalid:
    return _Invalid(what)


def _check_array(arr: np.ndarray, key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if arr.dtype != dtype:
        raise _bad(f"{key!r} has dtype {arr.dtype}, expected {dtype}")
    if arr.shape != shape:
        raise _bad(f"{key!r} has shape {arr.shape}, expected {shape}")


def _check_int(obj: dict, key: str, lo: int = 0) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise _bad(f"the training state's {key!r} is not a whole number >= {lo}")
    return value


def _check_float(obj: dict, key: str, optional: bool = False) -> float | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(f"the training state's {key!r} is not a number")
    return float(value)


def _check_dict(obj: dict, key: str) -> dict:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise _bad(f"the training state's {key!r} is not a JSON object")
    return value


def _check_version(arrays: dict[str, np.ndarray]) -> None:
    if K_VERSION not in arrays:
        raise _bad(f"it has no {K_VERSION!r} entry, so it is not a CharLSTM Studio model file")
    v = arrays[K_VERSION]
    if v.shape not in ((), (1,)) or v.dtype.kind not in "iu":
        raise _bad(f"its {K_VERSION!r} is not a single integer")
    version = int(v.reshape(()))
    if version > FORMAT_VERSION:
        raise ModelFormatVersionError(
            f"The model file was written by a newer CharLSTM Studio (file format version "
            f"{version}; this version reads up to {FORMAT_VERSION}). Upgrade CharLSTM Studio to "
            "open it."
        )
    if version < 1:
        raise _bad(f"its format version {version} is unknown")


def _expected_keys(cfg: ModelConfig, with_train: bool) -> set[str]:
    names = list(expected_param_shapes(cfg))
    keys = {K_VERSION, K_META, K_VOCAB} | {P_PARAM + n for n in names}
    if with_train:
        keys |= {K_TRAIN_META, K_H, K_C} | {P_HISTORY + n for n in HISTORY_KEYS}
        keys |= {P_ADAM_M + n for n in names} | {P_ADAM_V + n for n in names}
    return keys


def _parse(arrays: dict[str, np.ndarray]) -> ModelFile:
    """ModelFile from the archive's arrays; _Invalid (or ModelFormatVersionError) if anything
    is missing, unknown, of the wrong shape or dtype, or inconsistent."""
    _check_version(arrays)
    for key in (K_META, K_VOCAB):
        if key not in arrays:
            raise _bad(f"it has no {key!r} entry")
    meta = _parse_json(arrays[K_META], K_META)
    mc = meta.get("model_config")
    if not isinstance(mc, dict):
        raise _bad("its metadata has no model configuration")
    try:
        cfg = ModelConfig.from_dict(mc).validate()
    except (TypeError, CharLSTMError) as e:
        raise _bad(f"its model configuration is invalid ({e})") from None

    cps = arrays[K_VOCAB]
    _check_array(cps, K_VOCAB, (cfg.vocab_size,), np.dtype(np.uint32))
    if cps.size and int(cps.max()) >= N_CODEPOINTS:
        raise _bad("its vocabulary holds a value that is not a Unicode code point")
    if cps.size > 1 and not np.all(cps[1:] > cps[:-1]):
        raise _bad("its vocabulary is not strictly increasing by code point")

    with_train = K_TRAIN_META in arrays
    expected = _expected_keys(cfg, with_train)
    history_extra = {
        k
        for k in arrays
        if with_train and k.startswith(P_HISTORY) and _SERIES_NAME.fullmatch(k[len(P_HISTORY) :])
    }
    unknown = sorted(set(arrays) - expected - history_extra)
    missing = sorted(expected - set(arrays))
    if unknown:
        raise _bad(f"it has unknown entries: {', '.join(map(repr, unknown))}")
    if missing:
        raise _bad(f"it lacks entries: {', '.join(map(repr, missing))}")

    dtype = np.dtype(cfg.dtype)
    shapes = expected_param_shapes(cfg)
    params = {}
    for name, shape in shapes.items():
        arr = arrays[P_PARAM + name]
        _check_array(arr, P_PARAM + name, shape, dtype)
        params[name] = arr
    bad = [n for n, a in params.items() if not np.isfinite(a).all()]
    if bad:
        raise _bad(f"it contains non-finite weights (NaN or infinity) in {', '.join(bad)}")
    vocab = Vocab.from_codepoints(cps)
    train = _parse_train(arrays, cfg, shapes) if with_train else None
    return ModelFile(cfg, params, vocab, train)


def _parse_train(
    arrays: dict[str, np.ndarray], cfg: ModelConfig, shapes: dict[str, tuple[int, ...]]
) -> TrainState:
    meta = _parse_json(arrays[K_TRAIN_META], K_TRAIN_META)
    tc = meta.get("config")
    if not isinstance(tc, dict):
        raise _bad("its training state has no training configuration")
    try:
        tcfg = TrainConfig.from_dict(tc).validate()
    except (TypeError, CharLSTMError) as e:
        raise _bad(f"its training configuration is invalid ({e})") from None
    dtype = np.dtype(cfg.dtype)
    moments = []
    for prefix in (P_ADAM_M, P_ADAM_V):
        d = {}
        for name, shape in shapes.items():
            _check_array(arrays[prefix + name], prefix + name, shape, dtype)
            d[name] = arrays[prefix + name]
        moments.append(d)
    state_shape = (cfg.num_layers, tcfg.batch_size, cfg.hidden_size)
    _check_array(arrays[K_H], K_H, state_shape, dtype)
    _check_array(arrays[K_C], K_C, state_shape, dtype)
    history = {}
    for key, arr in arrays.items():
        if key.startswith(P_HISTORY):
            name = key[len(P_HISTORY) :]
            if arr.ndim != 1 or arr.dtype not in (np.dtype(np.int64), np.dtype(np.float64)):
                raise _bad(f"{key!r} is not a 1-D int64 or float64 array")
            history[name] = arr
    for steps, values in (("train_step", "train_loss"), ("val_step", "val_loss")):
        if history[steps].dtype != np.int64 or history[values].dtype != np.float64:
            raise _bad(f"the {steps!r} / {values!r} history must be int64 / float64")
        if history[steps].shape != history[values].shape:
            raise _bad(f"the {steps!r} and {values!r} histories differ in length")
    return TrainState(
        config=tcfg,
        step=_check_int(meta, "step"),
        total_steps=_check_int(meta, "total_steps"),
        elapsed_s=_check_float(meta, "elapsed_s"),  # type: ignore[arg-type]
        adam_m=moments[0],
        adam_v=moments[1],
        h=arrays[K_H],
        c=arrays[K_C],
        rng=_check_dict(meta, "rng"),
        stream=_check_dict(meta, "stream"),
        history=history,
        corpus=_check_dict(meta, "corpus"),
        best_val_loss=_check_float(meta, "best_val_loss", optional=True),
    )


# ---------------------------------------------------------------------------------------------
# Save


def _to_arrays(mf: ModelFile) -> dict[str, np.ndarray]:
    """The archive's entries for ``mf`` (the inverse of ``_parse``)."""
    arrays: dict[str, np.ndarray] = {
        K_VERSION: np.array(FORMAT_VERSION, dtype=np.int64),
        K_META: _json_array(
            {
                "app": APP_NAME,
                "app_version": __version__,
                "model_config": dataclasses.asdict(mf.config),
            }
        ),
        K_VOCAB: mf.vocab.codepoints(),
    }
    for name, arr in mf.params.items():
        arrays[P_PARAM + name] = np.ascontiguousarray(arr)
    t = mf.train
    if t is not None:
        meta = {
            "config": dataclasses.asdict(t.config),
            "step": int(t.step),
            "total_steps": int(t.total_steps),
            "elapsed_s": float(t.elapsed_s),
            "rng": t.rng,
            "stream": t.stream,
            "corpus": t.corpus,
            "best_val_loss": None if t.best_val_loss is None else float(t.best_val_loss),
        }
        arrays[K_TRAIN_META] = _json_array(meta)
        for name, arr in t.adam_m.items():
            arrays[P_ADAM_M + name] = np.ascontiguousarray(arr)
        for name, arr in t.adam_v.items():
            arrays[P_ADAM_V + name] = np.ascontiguousarray(arr)
        arrays[K_H] = np.ascontiguousarray(t.h)
        arrays[K_C] = np.ascontiguousarray(t.c)
        for name, arr in t.history.items():
            arr = np.asarray(arr)
            # Steps are stored as int64 and losses as float64 whatever the caller kept them in.
            kind = np.int64 if name.endswith("_step") or arr.dtype.kind in "iub" else np.float64
            arrays[P_HISTORY + name] = np.ascontiguousarray(arr, dtype=kind).reshape(-1)
    return arrays


def _fsync_dir(folder: str) -> None:
    """Make the rename durable; not possible on every platform (Windows), so best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_target(path: str | os.PathLike) -> str:
    """The file a save to ``path`` really writes: ``path`` itself, or for a symlink the file it
    points to (saved through, as editors do, so the link stays a link).

    The one rule for every front end (``--out``, the app's Save): an existing target must be a
    regular file; a folder, device node (``/dev/null``), FIFO or socket is refused with
    ModelFileError, and so is a missing folder.
    """
    given = os.path.abspath(os.fspath(path))
    real = os.path.realpath(given)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        folder = os.path.dirname(real)
        if not os.path.isdir(folder):
            raise ModelFileError(
                f"Cannot save the model to {given}: the folder {folder} does not exist."
            ) from None
        return real
    except OSError as e:  # a symlink loop, a file used as a folder, no permission
        raise ModelFileError(f"Cannot save the model to {given}: {e.strerror or e}.") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelFileError(
            f"Cannot save the model to {given}: it is a folder. Choose a file name."
        )
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a FIFO (named pipe)"
            if stat.S_ISFIFO(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "a device"
        )
        raise ModelFileError(
            f"Cannot save the model to {given}: it is {kind}, not a regular file, and a save "
            "would replace it. Choose a file name."
        )
    return real


# Temporary files are ".<name>.<pid>.<8 random characters>.tmp" beside the target: the pid
# tells a later save whether the writer is still alive.
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]{1,10})\.[a-z0-9_]{8}\.tmp")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: existence check only (POSIX; never called on Windows)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def remove_stale_temps(folder: str) -> list[str]:
    """Delete the temporary files that saves of dead processes (kill -9, power loss) left in
    ``folder``; returns their paths. Only files named like ours whose pid no longer runs and
    that are empty or start like a zip archive are touched. POSIX only (no-op on Windows)."""
    removed: list[str] = []
    if os.name != "posix":
        return removed
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_NAME.fullmatch(entry.name)
        if m is None or _pid_alive(int(m["pid"])):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            with open(entry.path, "rb") as f:
                if f.read(2) not in (b"", b"P", b"PK"):
                    continue
            os.unlink(entry.path)
            removed.append(entry.path)
        except OSError:
            continue
    return removed


def save_model(path: str | os.PathLike, mf: ModelFile) -> str:
    """Write ``mf`` to exactly ``path`` (no suffix added) atomically; returns the absolute path.

    The archive goes to a temporary file in the same folder, is flushed and fsynced, then
    renamed over the target (:func:`save_target`: a symlink's target; devices, FIFOs and
    folders refused): a crash or a full disk leaves any previous file intact, and the next save
    to that folder removes temporary files of dead processes. Raises ModelFileLocked if another
    process holds the file's ModelLock, ModelFileError if the model is inconsistent or the file
    cannot be written.
    """
    path = os.path.abspath(os.fspath(path))
    arrays = _to_arrays(mf)
    try:
        _parse(arrays)  # refuse to write what load_model would refuse to read
    except _Invalid as e:
        raise ModelFileError(f"Cannot save the model to {path}: {e}.") from None
    target = save_target(path)
    check_not_locked(target)
    folder = os.path.dirname(target)
    remove_stale_temps(folder)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(target)}.{os.getpid()}.", suffix=".tmp", dir=folder
        )
    except OSError as e:
        raise ModelFileError(
            f"Cannot save the model to {path}: {e.strerror or e}. Check that the folder exists "
            "and is writable."
        ) from None
    try:
        # Keep the permissions of the file being replaced; mkstemp's 0600 is for new files only.
        mode = os.stat(target).st_mode & 0o777 if os.path.exists(target) else 0o644
        with os.fdopen(fd, "wb") as f:
            # Uncompressed: float weights and Adam moments barely compress (deflate measured 8%
            # smaller on an L=2, H=512 checkpoint of 40 MB) while saving took 11x longer (1.8 s
            # instead of 0.16 s), and checkpoints are written during training and on Ctrl-C.
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise ModelFileError(
                f"Cannot save the model to {path}: {e.strerror or e}. Check free disk space and "
                "write permission; any previous file there is unchanged."
            ) from None
        raise
    _fsync_dir(folder)
    return path


# ---------------------------------------------------------------------------------------------
# Locks: one writer per model file

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_HELD: dict[str, ModelLock] = {}  # real path -> the lock this process holds on it
_HELD_GUARD = threading.Lock()


def lock_path(path: str | os.PathLike) -> str:
    """The sidecar lock file of the model at ``path``: ``.NAME.lock`` beside its real file."""
    folder, name = os.path.split(os.path.realpath(os.fspath(path)))
    return os.path.join(folder, f".{name}.lock")


def _locked_message(path: str, pid: int | None) -> str:
    who = f"process {pid}" if pid else "another process"
    return (
        f"{path} is in use: {who} is training into it or saving it. Wait until that run ends, "
        "or save to another file."
    )


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except (OSError, AttributeError):
        return None
    return int(text) if text.isdigit() else None


class ModelLock:
    """An exclusive lock on a model file while a run writes it: one writer per file, across
    processes (the CLI and the app) and within one (two runs in the app).

    ``with ModelLock(path): ...`` or ``lock = ModelLock(path).acquire()`` ... ``lock.release()``.
    ``acquire`` raises ModelFileLocked (a ModelFileError) naming the file and the holder's pid.

    The lock is ``flock`` on a sidecar file ``.NAME.lock`` (:func:`lock_path`), not on the model,
    which every save replaces by rename. The kernel drops it when the holder dies, so a crash
    never leaves a file locked; the sidecar is removed on release (and a stale one by the next
    save). Symlinks are resolved first, so two names of one file share one lock. On a folder
    where the sidecar cannot be created (read-only) the lock is a no-op: nothing can save there.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.path.abspath(os.fspath(path))
        self.real = os.path.realpath(self.path)
        self.lock_file = lock_path(self.real)
        self._fd: int | None = None
        self._held = False

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._held

    def acquire(self) -> ModelLock:
        """Take the lock (no-op if this object holds it); ModelFileLocked if someone else does."""
        if self._held:
            return self
        with _HELD_GUARD:
            if self.real in _HELD:
                raise ModelFileLocked(
                    f"{self.path} is in use by another run in this program. Stop that run or "
                    "save to another file.",
                    path=self.path,
                    pid=os.getpid(),
                )
            self._fd = self._take()
            _HELD[self.real] = self
            self._held = True
        return self

    def _take(self) -> int | None:
        """The locked sidecar's descriptor (None where none can be made)."""
        for _ in range(20):  # retry only if a releasing holder unlinked the file under us
            try:
                fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0))
            except OSError as e:
                if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT):
                    return None
                raise ModelFileError(f"Cannot lock {self.path}: {e.strerror or e}.") from None
            if not _try_lock(fd):
                pid = _read_pid(fd)
                os.close(fd)
                raise ModelFileLocked(_locked_message(self.path, pid), path=self.path, pid=pid)
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_file).st_ino
            except OSError:
                same = False
            if same:
                try:
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
                except (OSError, AttributeError):
                    pass  # the pid is only for the message
                return fd
            os.close(fd)
        raise ModelFileError(f"Cannot lock {self.path}: its lock file keeps changing.")

    def release(self) -> None:
        """Give the lock up (no-op if not held)."""
        with _HELD_GUARD:
            if not self._held:
                return
            self._held = False
            if _HELD.get(self.real) is self:
                del _HELD[self.real]
            fd, self._fd = self._fd, None
            if fd is not None:
                try:
                    os.unlink(self.lock_file)  # while still locked: see _take's inode check
                except OSError:
                    pass
                os.close(fd)

    def __enter__(self) -> ModelLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        if getattr(self, "_held", False):
            self.release()


def _try_lock(fd: int) -> bool:
    """Exclusive, non-blocking lock of ``fd``; False if another open file holds it."""
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                return False
            return True  # a file system without locks (some network mounts): do not block work
        return True
    import msvcrt  # Windows

    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def check_not_locked(path: str | os.PathLike) -> None:
    """ModelFileLocked if a process other than this one holds ``path``'s ModelLock; a stale
    sidecar left by a killed holder is removed on the way."""
    real = os.path.realpath(os.fspath(path))
    with _HELD_GUARD:
        if real in _HELD:
            return
        lf = lock_path(real)
        try:
            fd = os.open(lf, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return  # no sidecar: nobody holds it
        try:
            if not _try_lock(fd):
                pid = _read_pid(fd)
                raise ModelFileLocked(
                    _locked_message(os.path.abspath(os.fspath(path)), pid),
                    path=os.path.abspath(os.fspath(path)),
                    pid=pid,
                )
            try:
                if os.fstat(fd).st_ino == os.stat(lf).st_ino:
                    os.unlink(lf)  # stale: its holder died; unlinked while we hold it
            except OSError:
                pass
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------------
# Load

# What a damaged or hostile file can make np.load / zipfile / the .npy reader raise.
_READ_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    OverflowError,
    MemoryError,
    NotImplementedError,
    RuntimeError,
    UnicodeDecodeError,
    zipfile.BadZipFile,
    zlib.error,
    struct.error,
)


def _read_arrays(path: str) -> dict[str, np.ndarray]:
    """Every entry of the .npz at ``path``; ModelFileError for unreadable or unsafe files."""
    if not os.path.exists(path):
        raise ModelFileError(f"There is no model file {path}. Check the name and folder.")
    if os.path.isdir(path):
        raise ModelFileError(f"{path} is a folder, not a model file. Choose a .npz model file.")
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise ModelFileError(f"Cannot read {path}: {e.strerror or e}.") from None
    if magic.startswith(b"\x93NUMPY"):
        raise ModelFileError(
            f"{path} is a single NumPy array, not a CharLSTM Studio model file (.npz)."
        )
    if not magic.startswith(b"PK"):
        what = "empty" if not magic else "not an .npz archive"
        raise ModelFileError(f"{path} is not a CharLSTM Studio model file ({what}).")
    try:
        # Our own file object: np.load given a path leaks its handle when the zip is damaged.
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except PermissionError:
        raise ModelFileError(f"Cannot read {path}: permission denied.") from None
    except _READ_ERRORS as e:
        msg = str(e)
        if "allow_pickle" in msg or "pickled" in msg:
            raise ModelFileError(
                f"{path} contains pickled Python objects; model files hold only plain arrays, "
                "and pickles are never loaded because they can run code."
            ) from None
        if isinstance(e, zipfile.BadZipFile) and "not a zip file" in msg.lower():
            raise ModelFileError(
                f"{path} is truncated or damaged: it starts like an .npz archive but its table "
                "of contents is missing. Use an intact copy of the model file."
            ) from None
        raise ModelFileError(
            f"{path} is damaged (truncated or corrupted) and cannot be read: "
            f"{type(e).__name__}: {msg or 'no details'}."
        ) from None
    odd = sorted(k for k, v in arrays.items() if not isinstance(v, np.ndarray))
    if odd:
        raise ModelFileError(
            f"{path} is not a valid CharLSTM Studio model file: entries that are not NumPy "
            f"arrays: {', '.join(map(repr, odd))}."
        )
    return arrays


def load_model(path: str | os.PathLike) -> ModelFile:
    """Read and validate a model file written by ``save_model``; never unpickles.

    Raises ModelFileError naming the problem (missing, folder, not an .npz, truncated,
    corrupted, pickled objects, unknown or missing entries, wrong shape or dtype, non-finite
    weights) and ModelFormatVersionError for a file from a newer CharLSTM Studio.
    """
    path = os.fspath(path)
    arrays = _read_arrays(path)
    try:
        return _parse(arrays)
    except _Invalid as e:
        raise ModelFileError(f"{path} is not a valid CharLSTM Studio model file: {e}.") from None
    except ModelFormatVersionError as e:
        raise ModelFormatVersionError(f"{path}: {e}") from None
