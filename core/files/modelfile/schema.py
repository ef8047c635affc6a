"""The model file's format: archive keys, the ModelFile and TrainState it holds, JSON kept in
uint8 arrays, and the small checks shared by parsing (charlstm_core.files.modelfile.parse) and safe
reading (charlstm_core.files.modelfile.read).

The layout of the entries is defined once, by :func:`array_layout`: every weight-shaped entry's
key, shape and dtype for a model (and, in a checkpoint, its training batch size). See
docs/model-format.md for the layout in prose.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...config import ModelConfig, TrainConfig
from ...engine.model import param_shapes
from ...errors import CharLSTMError, ModelFormatVersionError
from ...events import RollbackEvent
from ..text import Vocab

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
SERIES_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
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
    # Self-healing (charlstm_core.training.heal): the learning-rate multiplier left by rollbacks
    # (1.0: none)
    # and the rollbacks of the model's life, oldest first; 1.0 and () in older files.
    lr_scale: float = 1.0
    rollbacks: tuple[RollbackEvent, ...] = ()


@dataclass(frozen=True, eq=False)  # holds arrays: equality is identity
class ModelFile:
    """A model: architecture, weights and vocabulary; ``train`` is set in a checkpoint."""

    config: ModelConfig
    params: dict[str, np.ndarray]
    vocab: Vocab
    train: TrainState | None = None  # present in a checkpoint


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


def json_array(obj: Any) -> np.ndarray:
    """(n,) uint8 UTF-8 JSON of ``obj``. Python ints of any size (PCG64 states) round-trip."""
    text = json.dumps(obj, default=_json_default, sort_keys=True, ensure_ascii=False)
    # A lone surrogate (a file name that is not UTF-8, decoded with surrogateescape) cannot be
    # UTF-8: it is stored as the six characters of its escape ("\\udcff", as in a JSON string
    # a backslash then "udcff"), so it reads back as printable text and never fails the save.
    text = _SURROGATE.sub(lambda m: f"\\\\u{ord(m.group()):04x}", text)
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def parse_json(arr: np.ndarray, key: str) -> dict:
    if arr.dtype != np.uint8 or arr.ndim != 1:
        raise bad(f"its {key!r} entry is not UTF-8 JSON bytes")
    try:
        obj = json.loads(arr.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise bad(f"its {key!r} entry is not valid JSON") from None
    if not isinstance(obj, dict):
        raise bad(f"its {key!r} entry is not a JSON object")
    return obj


# ---------------------------------------------------------------------------------------------
# Validation, shared by save (so that what is saved can be loaded) and load


class Invalid(Exception):
    """A validation failure; the caller turns it into ModelFileError with the path."""


def bad(what: str) -> Invalid:
    return Invalid(what)


def check_array(arr: np.ndarray, key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
    if arr.dtype != dtype:
        raise bad(f"{key!r} has dtype {arr.dtype}, expected {dtype}")
    if arr.shape != shape:
        raise bad(f"{key!r} has shape {arr.shape}, expected {shape}")


def check_int(obj: dict, key: str, lo: int = 0) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise bad(f"the training state's {key!r} is not a whole number >= {lo}")
    return value


def check_float(obj: dict, key: str, optional: bool = False) -> float | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(f"the training state's {key!r} is not a number")
    return float(value)


def check_dict(obj: dict, key: str) -> dict:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise bad(f"the training state's {key!r} is not a JSON object")
    return value


def check_version(arrays: dict[str, np.ndarray]) -> None:
    if K_VERSION not in arrays:
        raise bad(f"it has no {K_VERSION!r} entry, so it is not a CharLSTM Studio model file")
    v = arrays[K_VERSION]
    if v.shape not in ((), (1,)) or v.dtype.kind not in "iu":
        raise bad(f"its {K_VERSION!r} is not a single integer")
    version = int(v.reshape(()))
    if version > FORMAT_VERSION:
        raise ModelFormatVersionError(
            f"The model file was written by a newer CharLSTM Studio (file format version "
            f"{version}; this version reads up to {FORMAT_VERSION}). Upgrade CharLSTM Studio to "
            "open it."
        )
    if version < 1:
        raise bad(f"its format version {version} is unknown")


def _config(cls: Any, d: Any, where: str, what: str) -> Any:
    """``cls`` (ModelConfig, TrainConfig) from its JSON dict ``d``, validated; Invalid naming
    ``what`` when ``where`` holds none or a bad one."""
    if not isinstance(d, dict):
        raise bad(f"{where} has no {what}")
    try:
        return cls.from_dict(d).validate()
    except (TypeError, CharLSTMError) as e:
        raise bad(f"its {what} is invalid ({e})") from None


def model_config(meta: np.ndarray) -> ModelConfig:
    """The validated ModelConfig in the archive's ``meta`` entry; Invalid if absent or bad."""
    mc = parse_json(meta, K_META).get("model_config")
    return _config(ModelConfig, mc, "its metadata", "model configuration")


def train_config(meta: dict) -> TrainConfig:
    """The validated TrainConfig in the parsed ``train/meta`` JSON; Invalid if absent or bad."""
    return _config(TrainConfig, meta.get("config"), "its training state", "training configuration")


def array_layout(
    cfg: ModelConfig, batch_size: int | None
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Key -> (shape, dtype) of every weight-shaped entry: ``params/<name>`` (the model's
    ``param_shapes``, PyTorch names and layouts), and with ``batch_size`` (a checkpoint whose
    run uses that batch) the Adam moments like the params and ``train/h``, ``train/c`` of shape
    (L, B, H). All in ``cfg.dtype``. History series are not here: their length varies."""
    dtype = np.dtype(cfg.dtype)
    shapes = param_shapes(cfg)
    out = {P_PARAM + name: (shape, dtype) for name, shape in shapes.items()}
    if batch_size is not None:
        for prefix in (P_ADAM_M, P_ADAM_V):
            out.update({prefix + name: (shape, dtype) for name, shape in shapes.items()})
        state = (cfg.num_layers, batch_size, cfg.hidden_size)
        out[K_H] = (state, dtype)
        out[K_C] = (state, dtype)
    return out
