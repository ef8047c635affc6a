"""Model files: one ``.npz`` with the weights (PyTorch names and layouts), vocabulary and
architecture, plus, in a checkpoint, all that exact resumption needs.

Saving goes through the one guarded writer (``charlstm_core.files.writer``): atomic, only over a
model or a new name, a symlink saved through to its target, devices and FIFOs refused; a run holds
a ModelLock on its file so that two writers never race; loading never unpickles and checks every
entry's name, compression and declared size against the expected shapes before decompressing
anything, then validates every key, shape, dtype, value and the format version, raising
ModelFileError (or a subclass) with a message naming the problem. See docs/model-format.md for the
layout.

Who owns what: ``schema`` the keys, the ModelFile/TrainState records and the entry layout;
``parse`` validating arrays into a ModelFile and back; ``read`` the safe reading of the zip and
``load_model``; ``write`` the atomic ``save_model``; ``lock`` the one-writer ModelLock.
"""

from .lock import ModelLock, check_not_locked, lock_path
from .read import HISTORY_DEFLATE_MAX, MAX_ENTRIES, MAX_SMALL_ENTRY, NPY_HEADER_MAX, load_model
from .schema import (
    APP_NAME,
    FORMAT_VERSION,
    HISTORY_KEYS,
    K_C,
    K_H,
    K_META,
    K_TRAIN_META,
    K_VERSION,
    K_VOCAB,
    MAX_ROLLBACK_RECORDS,
    MAX_SAMPLES,
    P_ADAM_M,
    P_ADAM_V,
    P_HISTORY,
    P_PARAM,
    RNG_PURPOSES,
    ModelFile,
    TrainState,
    array_layout,
)
from .write import save_model

__all__ = [
    "APP_NAME",
    "FORMAT_VERSION",
    "HISTORY_DEFLATE_MAX",
    "HISTORY_KEYS",
    "K_C",
    "K_H",
    "K_META",
    "K_TRAIN_META",
    "K_VERSION",
    "K_VOCAB",
    "MAX_ENTRIES",
    "MAX_ROLLBACK_RECORDS",
    "MAX_SAMPLES",
    "MAX_SMALL_ENTRY",
    "NPY_HEADER_MAX",
    "P_ADAM_M",
    "P_ADAM_V",
    "P_HISTORY",
    "P_PARAM",
    "RNG_PURPOSES",
    "ModelFile",
    "ModelLock",
    "TrainState",
    "array_layout",
    "check_not_locked",
    "load_model",
    "lock_path",
    "save_model",
]
