"""Typed errors for the problems a user can cause, each with a message that says what to do.

Every error the engine raises on purpose derives from :class:`CharLSTMError`; its ``str()`` is a
complete, human sentence fit for a dialog or one line of stderr. Anything else is a bug.
"""

from __future__ import annotations


class CharLSTMError(Exception):
    """Base class: an expected problem with a message meant for the user."""


class CorpusError(CharLSTMError):
    """The training text cannot be used (missing, a directory, unreadable, empty, binary)."""


class DecodeError(CorpusError):
    """The text is not valid in the chosen encoding.

    ``offset`` is the byte offset of the first bad byte; ``encoding`` the encoding tried.
    """

    def __init__(self, message: str, *, offset: int, encoding: str) -> None:
        super().__init__(message)
        self.offset = offset
        self.encoding = encoding


class TextTooShortError(CorpusError):
    """The text is shorter than the chosen settings need; ``minimum`` is the length needed."""

    def __init__(self, message: str, *, minimum: int, actual: int) -> None:
        super().__init__(message)
        self.minimum = minimum
        self.actual = actual


class ConfigError(CharLSTMError):
    """A setting is out of range or settings contradict each other."""


def describe_chars(chars: tuple[str, ...] | list[str], limit: int = 20) -> str:
    """Readable list of characters, repr() so that '\\n' is visible; at most ``limit`` shown."""
    shown = ", ".join(repr(c) for c in chars[:limit])
    if len(chars) > limit:
        shown += f" and {len(chars) - limit:,} more"
    return shown


def unrepresentable(subject: str, missing: tuple[str, ...] | list[str], advice: str) -> str:
    """The one message for characters a model's vocabulary lacks, wherever they turn up (a text
    to continue on or score, a prime, a passage to inspect): ``subject`` names where they are
    ("the text a.txt", "the prime text"); ``advice`` says what to do."""
    return (
        f"The model cannot represent {len(missing):,} character(s) of {subject} (they are not "
        f"in the model's vocabulary): {describe_chars(missing)}. {advice}"
    )


class VocabularyError(CharLSTMError):
    """Characters are not in the model's vocabulary; ``missing`` lists them."""

    def __init__(self, message: str, *, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


class ModelFileError(CharLSTMError):
    """A model file is missing, truncated, corrupted, unsafe or of an unknown layout."""


class ModelFileLocked(ModelFileError):
    """Another process (or another run in this one) holds the lock on a model file: it is
    training into it or saving it. ``path`` is the model file; ``pid`` the holder, if known."""

    def __init__(self, message: str, *, path: str, pid: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.pid = pid


class ModelFormatVersionError(ModelFileError):
    """A model file was written by a newer CharLSTM Studio than this one."""


class CorpusMismatchError(CharLSTMError):
    """A text has characters the model cannot represent (continuing or scoring a model on it);
    ``missing`` lists them, sorted by code point."""

    def __init__(self, message: str, *, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.missing = tuple(missing)


class TrainingDiverged(CharLSTMError):
    """The loss or gradient became non-finite; the model keeps the weights of the last good step."""

    def __init__(self, message: str, *, step: int) -> None:
        super().__init__(message)
        self.step = step


class DeviceUnavailableError(CharLSTMError):
    """The GPU was asked for but cannot be used (no CuPy, no device, driver too old)."""


class GpuMemoryError(CharLSTMError):
    """The GPU ran out of memory; the message names the setting to lower."""


class DeviceLostError(CharLSTMError):
    """The GPU stopped answering mid-run; ``saved_step`` is the step of the weights kept on disk."""

    def __init__(self, message: str, *, saved_step: int | None = None) -> None:
        super().__init__(message)
        self.saved_step = saved_step


class OutputFileError(CharLSTMError):
    """A file cannot be written where asked (``charlstm_core.files.writer``): the path is a
    folder, device, FIFO, a protected input or a file of another kind, is read-only, or the
    write itself failed. ``path`` is the path as given. A model save raises ModelFileError and
    the run store RunStoreError instead, for the same reasons."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class RunStoreError(CharLSTMError):
    """The runs database cannot be opened, read or written (corrupt, locked, read-only, newer)."""


class RunNotFoundError(RunStoreError):
    """No run has the id asked for."""


class ClusterError(CharLSTMError):
    """A Dask cluster cannot run a sweep: Dask missing, scheduler unreachable, no worker, a
    worker without the project or with another version of it, no worker with a GPU."""
