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
import math
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
from .events import RollbackEvent
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
_SURROGATE = re.compile("[\ud800-\udfff]")
MAX_SAMPLES = 500  # samples kept in a checkpoint: the latest ones (a trainer keeps no more)
MAX_ROLLBACK_RECORDS = 1000  # rollback records kept in a checkpoint: the latest ones
RNG_PURPOSES = ("dropout", "sample")  # the trainer's random streams, each a PCG64 state


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
    # (step, text) of the samples the run produced, oldest first; () in files from before they
    # were kept (the app's Samples pane shows them again on Open Model).
    samples: tuple[tuple[int, str], ...] = ()
    # Self-healing (core.heal): the learning-rate multiplier left by rollbacks (1.0: none) and
    # the rollbacks of the model's life, oldest first; 1.0 and () in older files.
    lr_scale: float = 1.0
    rollbacks: tuple[RollbackEvent, ...] = ()


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
    # UTF-8: it is stored as the six characters of its escape ("\\udcff", as in a JSON string
    # a backslash then "udcff"), so it reads back as printable text and never fails the save.
    text = _SURROGATE.sub(lambda m: f"\\\\u{ord(m.group()):04x}", text)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


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
    for prefix, d in ((P_ADAM_M, moments[0]), (P_ADAM_V, moments[1])):
        bad = [n for n, a in d.items() if not np.isfinite(a).all()]
        if bad:
            raise _bad(f"its optimizer state {prefix}{bad[0]} holds NaN or infinity")
    neg = [n for n, a in moments[1].items() if (a < 0).any()]
    if neg:
        raise _bad(
            f"its optimizer state {P_ADAM_V}{neg[0]} holds negative values (Adam's second "
            "moments are squares)"
        )
    for key in (K_H, K_C):
        if not np.isfinite(arrays[key]).all():
            raise _bad(f"its carried state {key!r} holds NaN or infinity")
    elapsed = _check_float(meta, "elapsed_s")
    if not (math.isfinite(elapsed) and elapsed >= 0):  # type: ignore[arg-type]
        raise _bad("the training state's 'elapsed_s' is not a finite time >= 0")
    best = _check_float(meta, "best_val_loss", optional=True)
    if best is not None and not (math.isfinite(best) and best >= 0):
        raise _bad(f"the training state's best validation loss is {best}, not a finite loss")
    return TrainState(
        config=tcfg,
        step=_check_int(meta, "step"),
        total_steps=_check_int(meta, "total_steps"),
        elapsed_s=elapsed,  # type: ignore[arg-type]
        adam_m=moments[0],
        adam_v=moments[1],
        h=arrays[K_H],
        c=arrays[K_C],
        rng=_check_rng(_check_dict(meta, "rng")),
        stream=_check_stream(_check_dict(meta, "stream")),
        history=history,
        corpus=_check_dict(meta, "corpus"),
        best_val_loss=best,
        samples=_check_samples(meta.get("samples", [])),
        lr_scale=_check_lr_scale(meta.get("lr_scale", 1.0)),
        rollbacks=_check_rollbacks(meta.get("rollbacks", [])),
    )


def _check_rng(rng: dict) -> dict:
    """Each purpose's state must be one a PCG64 generator accepts (what the trainer resumes)."""
    for purpose in RNG_PURPOSES:
        state = rng.get(purpose)
        try:
            if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
                raise ValueError
            np.random.PCG64().state = state
        except (ValueError, TypeError, KeyError, OverflowError, AttributeError):
            raise _bad(
                f"the training state's random-generator state for {purpose!r} is missing or invalid"
            ) from None
    return rng


def _check_stream(stream: dict) -> dict:
    """Stream positions are whole numbers >= 0 (the trainer checks them against the text)."""
    for key, value in stream.items():
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            raise _bad(f"the training state's stream position {key!r} is not a whole number >= 0")
    return stream


def _check_samples(samples: object) -> tuple[tuple[int, str], ...]:
    """[[step, text], ...] of the run's samples, as a tuple of pairs."""
    ok = isinstance(samples, list) and all(
        isinstance(p, list)
        and len(p) == 2
        and isinstance(p[0], int)
        and not isinstance(p[0], bool)
        and p[0] >= 0
        and isinstance(p[1], str)
        for p in samples
    )
    if not ok:
        raise _bad("the training state's samples are not a list of [step, text] pairs")
    return tuple((int(a), str(b)) for a, b in samples)  # type: ignore[index]


def _check_lr_scale(value: object) -> float:
    """The learning-rate multiplier left by rollbacks: a number in (0, 1]."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not (math.isfinite(value) and 0 < value <= 1):  # type: ignore[arg-type]
        raise _bad(f"the training state's learning-rate multiplier {value!r} is not in (0, 1]")
    return float(value)  # type: ignore[arg-type]


def _check_rollbacks(records: object) -> tuple[RollbackEvent, ...]:
    """[{from_step, to_step, lr_before, lr_after, lr_scale, reason, loss}, ...] as events."""
    fields = {f.name for f in dataclasses.fields(RollbackEvent)}
    out = []
    for r in records if isinstance(records, list) else [None]:
        ok = isinstance(r, dict) and set(r) == set(fields)
        if ok:
            ints = [r["from_step"], r["to_step"]]
            nums = [r["lr_before"], r["lr_after"], r["lr_scale"]]
            loss = r["loss"]
            ok = (
                (loss is None or (isinstance(loss, float) and math.isfinite(loss)))
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints)
                and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in nums
                )
                and isinstance(r["reason"], str)
                and r["to_step"] <= r["from_step"]
            )
        if not ok:
            raise _bad("the training state's rollback records are malformed")
        out.append(RollbackEvent(**r))  # type: ignore[arg-type]
    return tuple(out)


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
            "samples": [[int(step), str(text)] for step, text in t.samples[-MAX_SAMPLES:]],
            "lr_scale": float(t.lr_scale),
            "rollbacks": [dataclasses.asdict(r) for r in t.rollbacks[-MAX_ROLLBACK_RECORDS:]],
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


# Limits checked against the zip's directory before anything is decompressed (a hostile file
# must not make the loader allocate more than the model it claims to be; see tests/test_faults).
MAX_ENTRIES = 256  # a 4-layer checkpoint has about 70 entries
MAX_SMALL_ENTRY = {  # bytes an entry read before the shapes are known may declare
    K_VERSION: 1024,
    K_META: 1 << 20,
    K_VOCAB: 4 * N_CODEPOINTS + 4096,
    K_TRAIN_META: 32 << 20,  # RNG states, settings, up to MAX_SAMPLES samples
}
HISTORY_DEFLATE_MAX = 16 << 20  # a deflated history series may inflate to this, no more
NPY_HEADER_MAX = 1 << 16  # a .npy header (magic, length, dict) of ours is 128 bytes
_ARRAY_NAME = r"[A-Za-z0-9_.]{1,64}"
_ENTRY_NAME = re.compile(
    rf"(?:format_version|meta|vocab|params/{_ARRAY_NAME}|train/meta|train/h|train/c"
    rf"|train/adam_m/{_ARRAY_NAME}|train/adam_v/{_ARRAY_NAME}|train/history/[A-Za-z0-9_]{{1,64}})"
)


def _check_end_record(f: Any) -> None:
    """Refuse a directory of more than MAX_ENTRIES entries before zipfile builds one object per
    entry (a small hostile file can declare millions)."""
    end_record = getattr(zipfile, "_EndRecData", None)  # private, but in every CPython 3
    if end_record is None:
        return
    rec = end_record(f)
    if rec is None:
        raise zipfile.BadZipFile("File is not a zip file")
    count, size = rec[4], rec[5]  # entries in the directory, directory bytes
    if count > MAX_ENTRIES or size > MAX_ENTRIES * 1024:
        raise _bad(f"its directory lists {count:,} entries (a model has at most {MAX_ENTRIES})")


def _directory(zf: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's entries by array key; _Invalid for names, methods or flags we never write
    (nothing is decompressed here)."""
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise _bad(f"it has {len(infos):,} entries (a model has at most {MAX_ENTRIES})")
    entries: dict[str, zipfile.ZipInfo] = {}
    not_arrays = []
    for info in infos:
        name = info.filename
        if not name.endswith(".npy"):
            not_arrays.append(name)
            continue
        key = name[: -len(".npy")]
        if key in entries:
            raise _bad(f"it holds the entry {key!r} twice")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _bad(f"its entry {key!r} uses compression method {info.compress_type}")
        if info.flag_bits & 0x1:
            raise _bad(f"its entry {key!r} is encrypted")
        entries[key] = info
    if not_arrays:
        raise _bad(f"entries that are not NumPy arrays: {', '.join(map(repr, not_arrays))}")
    return entries


def _read_entry(
    zf: zipfile.ZipFile,
    key: str,
    info: zipfile.ZipInfo,
    expect: tuple[tuple[int, ...], np.dtype] | None = None,
    max_bytes: int | None = None,
) -> np.ndarray:
    """One .npy entry, its header checked before its data is read.

    ``expect`` (shape, dtype): the header must declare exactly these and the entry's declared
    size must be the header plus their bytes. ``max_bytes``: a bound on the data instead.
    The data is read in chunks into one buffer, so memory is the array's size; zipfile stops
    at the declared size and checks the CRC at the end.
    """
    if info.file_size > (max_bytes or 0) + NPY_HEADER_MAX and expect is None:
        raise _bad(f"its entry {key!r} declares {info.file_size:,} bytes, more than it can hold")
    with zf.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, NPY_HEADER_MAX)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, NPY_HEADER_MAX)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as e:
            if "object" in str(e).lower() or "pickle" in str(e).lower():
                raise _Pickled() from None
            raise _bad(f"its entry {key!r} is not a valid NumPy array ({e})") from None
        if dtype.hasobject:
            raise _Pickled()
        if expect is not None:
            if dtype != expect[1]:
                raise _bad(f"{key!r} has dtype {dtype}, expected {expect[1]}")
            if tuple(shape) != tuple(expect[0]):
                raise _bad(f"{key!r} has shape {tuple(shape)}, expected {tuple(expect[0])}")
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if max_bytes is not None and nbytes > max_bytes:
            raise _bad(f"its entry {key!r} holds {nbytes:,} bytes, more than it can hold")
        if f.tell() + nbytes != info.file_size:
            raise _bad(
                f"its entry {key!r} declares {info.file_size:,} bytes where its array needs "
                f"{f.tell() + nbytes:,}"
            )
        buf = bytearray(nbytes)
        view = memoryview(buf)
        pos = 0
        while pos < nbytes:
            chunk = f.read(min(1 << 24, nbytes - pos))
            if not chunk:
                raise EOFError(f"the data of {key!r} ends early")
            view[pos : pos + len(chunk)] = chunk
            pos += len(chunk)
        f.read(1)  # at the end: zipfile verifies the CRC
    arr = np.frombuffer(buf, dtype=dtype, count=count)
    return arr.reshape(shape, order="F" if fortran else "C")


class _Pickled(Exception):
    """An entry holds Python objects (a pickle)."""


def _expected_shapes(
    small: dict[str, np.ndarray], entries: dict[str, zipfile.ZipInfo]
) -> dict[str, tuple[tuple[int, ...], np.dtype] | int]:
    """For every other entry, its (shape, dtype) from the metadata, or for a history series the
    most bytes it may hold; _Invalid for unknown entries."""
    meta = _parse_json(small[K_META], K_META)
    mc = meta.get("model_config")
    if not isinstance(mc, dict):
        raise _bad("its metadata has no model configuration")
    try:
        cfg = ModelConfig.from_dict(mc).validate()
    except (TypeError, CharLSTMError) as e:
        raise _bad(f"its model configuration is invalid ({e})") from None
    dtype = np.dtype(cfg.dtype)
    out: dict[str, tuple[tuple[int, ...], np.dtype] | int] = {}
    shapes = expected_param_shapes(cfg)
    for name, shape in shapes.items():
        out[P_PARAM + name] = (shape, dtype)
    if K_TRAIN_META in small:
        tmeta = _parse_json(small[K_TRAIN_META], K_TRAIN_META)
        tc = tmeta.get("config")
        try:
            tcfg = TrainConfig.from_dict(tc).validate()  # type: ignore[arg-type]
        except (TypeError, AttributeError, CharLSTMError) as e:
            raise _bad(f"its training configuration is invalid ({e})") from None
        for name, shape in shapes.items():
            out[P_ADAM_M + name] = (shape, dtype)
            out[P_ADAM_V + name] = (shape, dtype)
        state = (cfg.num_layers, tcfg.batch_size, cfg.hidden_size)
        out[K_H] = (state, dtype)
        out[K_C] = (state, dtype)
        steps = [tmeta.get(k) for k in ("step", "total_steps")]
        longest = max([v for v in steps if isinstance(v, int) and v > 0] + [1])
        for key in entries:
            if key.startswith(P_HISTORY):  # about one value per step (rollbacks: a margin)
                out[key] = 8 * (4 * longest + 65536)
    unknown = sorted(set(entries) - set(out) - set(small))
    if unknown:
        raise _bad(f"it has unknown entries: {', '.join(map(repr, unknown))}")
    return out


def _read_arrays(path: str) -> dict[str, np.ndarray]:
    """Every entry of the .npz at ``path``; ModelFileError for unreadable or unsafe files.

    Nothing is decompressed before the zip's directory has been checked (entry names,
    compression methods, count), and no array before its declared size has been checked: the
    small entries first against fixed bounds, then every other one against the exact shape
    its metadata implies. A zip bomb is refused before it costs memory or time.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ModelFileError(f"There is no model file {path}. Check the name and folder.") from None
    except OSError as e:
        raise ModelFileError(f"Cannot read {path}: {e.strerror or e}.") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelFileError(f"{path} is a folder, not a model file. Choose a .npz model file.")
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(
            f"{path} is not a regular file (a device, FIFO or socket), so it cannot be a model "
            "file. Choose a .npz model file."
        )
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
        with open(path, "rb") as f:
            _check_end_record(f)
            f.seek(0)
        with open(path, "rb") as f, zipfile.ZipFile(f) as zf:
            entries = _directory(zf)
            small = {
                key: _read_entry(zf, key, entries[key], max_bytes=limit)
                for key, limit in MAX_SMALL_ENTRY.items()
                if key in entries
            }
            _check_version(small)  # a newer layout is named as such before its entries are
            for key in (K_META, K_VOCAB):
                if key not in small:
                    raise _bad(f"it has no {key!r} entry")
            bad_names = [k for k in entries if not _ENTRY_NAME.fullmatch(k)]
            if bad_names:
                raise _bad(f"it has unknown entries: {', '.join(map(repr, sorted(bad_names)))}")
            expected = _expected_shapes(small, entries)
            arrays = dict(small)
            for key, info in entries.items():
                if key in arrays:
                    continue
                want = expected[key]
                if isinstance(want, int):
                    # a series whose length only the metadata's step count bounds: a hostile
                    # file could claim any count, so a big one must not be a deflated bomb
                    big = info.file_size > HISTORY_DEFLATE_MAX
                    if big and info.compress_type != zipfile.ZIP_STORED:
                        raise _bad(
                            f"its entry {key!r} inflates to {info.file_size:,} bytes; model files "
                            "store large series uncompressed"
                        )
                    arrays[key] = _read_entry(zf, key, info, max_bytes=want)
                else:
                    arrays[key] = _read_entry(zf, key, info, expect=want)
    except _Invalid as e:
        raise ModelFileError(f"{path} is not a valid CharLSTM Studio model file: {e}.") from None
    except ModelFormatVersionError as e:
        raise ModelFormatVersionError(f"{path}: {e}") from None
    except _Pickled:
        raise ModelFileError(
            f"{path} contains pickled Python objects; model files hold only plain arrays, "
            "and pickles are never loaded because they can run code."
        ) from None
    except PermissionError:
        raise ModelFileError(f"Cannot read {path}: permission denied.") from None
    except _READ_ERRORS as e:
        msg = str(e)
        if isinstance(e, zipfile.BadZipFile) and "not a zip file" in msg.lower():
            raise ModelFileError(
                f"{path} is truncated or damaged: it starts like an .npz archive but its table "
                "of contents is missing. Use an intact copy of the model file."
            ) from None
        raise ModelFileError(
            f"{path} is damaged (truncated or corrupted) and cannot be read: "
            f"{type(e).__name__}: {msg or 'no details'}."
        ) from None
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
