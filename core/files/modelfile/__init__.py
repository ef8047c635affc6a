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

# The package's public surface: what the rest of the project uses. The keys, limits and layout
# stay in schema and read, imported from there by the modules that check them.
from .lock import ModelLock, check_not_locked, lock_path
from .read import load_model
from .schema import FORMAT_VERSION, K_VERSION, MAX_SAMPLES, ModelFile, TrainState
from .write import save_model

__all__ = [
    "FORMAT_VERSION",
    "K_VERSION",
    "MAX_SAMPLES",
    "ModelFile",
    "ModelLock",
    "TrainState",
    "check_not_locked",
    "load_model",
    "lock_path",
    "save_model",
]
