"""The one guarded writer: what a file the project writes may replace, and writing it atomically.

Every writer (a model, the JSON-lines log, the inspect page, exported text, CSV and PNG, the run
store) names its :class:`Kind`, and :func:`check_target` alone decides whether a path may be
written by it. The rule, once:

- a writer replaces only a file of its own kind (a model over a model, a log over a log, a page
  over a page), an empty file, or a new name; never a file the caller protects (the training
  text, the other outputs of the same command), never a file of another kind (a model, the run
  store, a text), never a read-only file;
- a folder, a device, a socket or a FIFO is never replaced; a FIFO or a character device
  (``/dev/null``, ``/dev/stdout``) is written to only by a kind whose documented use is a stream
  (the log); a symlink is written through to its target, so the link stays a link;
- a name the save cannot write (a missing folder, a read-only folder, a name too long for the
  temporary file beside it) is refused before any work is done.

A file's kind is read from its first block (:func:`recognise`): a model is a zip whose
directory lists the model's entries, the run store an SQLite header, a log JSON lines with an
``"event"``, a page our generator marker, a loss CSV our header line, a PNG its signature; any
other file without NUL bytes is text.

:func:`write_atomic` writes a whole file: a temporary ``.NAME.PID.RANDOM.tmp`` in the target's
folder, flushed and fsynced, renamed over the target, the folder fsynced; a crash, ``kill -9``
or a full disk leaves the previous file whole, and the next write to that folder removes the
temporaries of dead processes (:func:`remove_stale_temps`). A model is never written while
another process holds its lock (``modelfile.lock``). :func:`open_log` opens the log, which
grows while training runs; :func:`remove` deletes a file only if it is of the kind expected.
"""

from __future__ import annotations

import enum
import json
import os
import re
import stat
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from ..errors import (
    CharLSTMError,
    ModelFileError,
    ModelFileLocked,
    OutputFileError,
    RunStoreError,
)
from .modelfile.lock import check_not_locked
from .modelfile.schema import K_META, K_VERSION
from .proclock import pid_alive
from .text import display_path

HEAD_BYTES = 8192  # how much of a file is read to tell its kind
LOSS_CSV_HEADER = ("step", "chars_seen", "train_loss", "train_loss_smoothed", "val_loss")
PAGE_MARKER = '<meta name="generator" content="CharLSTM Studio inspect">'
_SQLITE = b"SQLite format 3\x00"
_PNG = b"\x89PNG\r\n\x1a\n"
_ZIP_ENTRIES_MAX = 4096  # a model has about 70 entries; more is not one of ours
# pages written before PAGE_MARKER existed: their opening and their style, exactly
_OLD_PAGE = (b'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n<title>',
             b".text{font-family:monospace;white-space:pre-wrap;")  # fmt: skip
# names a command line may give for its own output streams
_STD_STREAM = re.compile(r"/dev/(stdout|stderr|fd/[0-9]+)|/proc/self/fd/[0-9]+")


class Kind(enum.Enum):
    """What a writer writes; each value is (noun, what writing it is called, error class)."""

    MODEL = ("a model file", "save the model to", ModelFileError)
    LOG = ("a training log (JSON lines)", "write the log to", OutputFileError)
    PAGE = ("a page written by charlstm inspect", "write the page to", OutputFileError)
    TEXT = ("a text file", "save the text to", OutputFileError)
    CSV = ("a loss CSV", "export the loss to", OutputFileError)
    PNG = ("a PNG image", "export the image to", OutputFileError)
    RUN_STORE = ("a runs database (SQLite)", "use the runs database", RunStoreError)

    @property
    def noun(self) -> str:
        return self.value[0]

    @property
    def doing(self) -> str:
        return self.value[1]

    @property
    def streams(self) -> bool:
        """Whether a FIFO or character device is a documented target (only the log)."""
        return self is Kind.LOG

    @property
    def atomic(self) -> bool:
        """Written whole through a temporary file (the log grows; SQLite writes in place)."""
        return self not in (Kind.LOG, Kind.RUN_STORE)

    def error(self, message: str, path: str = "") -> CharLSTMError:
        cls = self.value[2]
        return cls(message, path=path) if cls is OutputFileError else cls(message)


@dataclass(frozen=True)
class Target:
    """A path checked for a writer: ``path`` absolute as given, ``real`` the file written (a
    symlink resolved), ``exists`` whether it is there now, ``stream`` a FIFO or device to write
    to directly (only for a kind that ``streams``)."""

    path: str
    real: str
    exists: bool
    stream: bool = False


@dataclass(frozen=True)
class Output:
    """One file a command will write, for :func:`check_outputs`: ``label`` is how the front end
    names it (``"--out"``); ``path`` None when the command writes none."""

    label: str
    path: str | os.PathLike | None
    kind: Kind


# ---------------------------------------------------------------------------------- kinds


def _head(real: str) -> bytes:
    with open(real, "rb") as f:
        return f.read(HEAD_BYTES)


def _is_model_zip(real: str) -> bool:
    """A zip whose directory lists the model's version and meta entries (the directory is read,
    nothing is decompressed; a directory of thousands of entries is not ours)."""
    try:
        with open(real, "rb") as f:
            end = zipfile._EndRecData(f)  # private, but in every CPython 3 (modelfile.read too)
            if end is None or end[4] > _ZIP_ENTRIES_MAX:
                return False
            names = set(zipfile.ZipFile(f).namelist())
    except (OSError, zipfile.BadZipFile, ValueError, EOFError, IndexError, OverflowError):
        return False
    return {f"{K_VERSION}.npy", f"{K_META}.npy"} <= names


def _first_line(head: bytes) -> str | None:
    line, newline, _ = head.partition(b"\n")
    if not newline and len(head) >= HEAD_BYTES:
        return None  # longer than the block: not one of our short lines
    try:
        return line.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        return None


def _is_log(head: bytes) -> bool:
    line = _first_line(head)
    if not line:
        return False
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and "event" in record


def recognise(path: str | os.PathLike) -> Kind | None:
    """The kind of the existing regular file at ``path`` read from its first block, or None for
    a file of none of ours (binary, another zip) and for an empty one. OSError if unreadable."""
    real = os.fspath(path)
    head = _head(real)
    if not head:
        return None
    if head.startswith(_SQLITE):
        return Kind.RUN_STORE
    if head.startswith(_PNG):
        return Kind.PNG
    if head.startswith(b"PK"):
        return Kind.MODEL if _is_model_zip(real) else None
    if b"\0" in head:
        return None
    if PAGE_MARKER.encode() in head or (head.startswith(_OLD_PAGE[0]) and _OLD_PAGE[1] in head):
        return Kind.PAGE
    if _is_log(head):
        return Kind.LOG
    if _first_line(head) == ",".join(LOSS_CSV_HEADER):
        return Kind.CSV
    return Kind.TEXT


def _describe(real: str) -> str:
    """What the file at ``real`` is, as a noun phrase."""
    kind = recognise(real)
    if kind is not None:
        return kind.noun
    head = _head(real)
    if head.startswith(b"PK"):
        return "a zip archive that is not a model"
    return "a binary file"


# ---------------------------------------------------------------------------------- checking


def _same_file(a: str, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file (one inode, or one real path for a new name)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(os.fspath(b))


def _special(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def _name_max(folder: str) -> int:
    try:
        return int(os.pathconf(folder, "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255


def _sidecar_bytes(kind: Kind) -> int:
    """Bytes a writer of ``kind`` adds to the file's name for what it writes beside it: the
    temporary file ``.NAME.PID.XXXXXXXX.tmp`` (and a model's ``.NAME.lock``); the run store's
    ``NAME-journal`` and ``NAME.locks``."""
    if kind is Kind.RUN_STORE:
        return len("-journal")
    if not kind.atomic:
        return 0
    return len(f"..{os.getpid()}.xxxxxxxx.tmp")


def check_target(
    path: str | os.PathLike,
    kind: Kind,
    *,
    protect: Mapping[str, str | os.PathLike | None] | None = None,
) -> Target:
    """Whether ``path`` may be written by a writer of ``kind`` (the module's rule); the checked
    :class:`Target`, or ``kind``'s error (ModelFileError, RunStoreError, OutputFileError) saying
    why not and what to do. ``protect`` maps a description ("the training text") to a path that
    must not be written. A model held by another process's lock is ModelFileLocked."""
    given = os.fspath(path)
    shown = display_path(given) if given else "''"

    def refuse(reason: str) -> CharLSTMError:
        return kind.error(f"Cannot {kind.doing} {shown}: {reason}", path=given)

    if not given:
        raise refuse("no file name was given. Give a file name.")
    absolute = os.path.abspath(given)
    if given.endswith(os.sep) or (os.altsep and given.endswith(os.altsep)):
        if os.path.isdir(given):
            raise refuse("it is a folder. Choose a file name.")
        raise refuse(
            f"the name ends with {os.sep!r}, so it names a folder. Give a file name, such as "
            f"{display_path(os.path.join(given, 'name'))}."
        )
    if kind.streams and _STD_STREAM.fullmatch(given):
        return Target(absolute, absolute, True, stream=True)  # the documented use
    real = os.path.realpath(absolute)
    try:
        st: os.stat_result | None = os.stat(real)
    except FileNotFoundError:
        st = None
        folder = os.path.dirname(real)
        if not os.path.isdir(folder) and kind is not Kind.RUN_STORE:  # the store makes its own
            raise refuse(f"the folder {display_path(folder)} does not exist.") from None
    except OSError as e:  # a symlink loop, a file used as a folder, no permission
        raise refuse(f"{e.strerror or e}.") from None
    for what, other in (protect or {}).items():
        if other is not None and os.fspath(other) and _same_file(real, other):
            raise refuse(f"it is {what}; writing there would destroy it. Choose another file name.")
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise refuse("it is a folder. Choose a file name.")
        if not stat.S_ISREG(st.st_mode):
            if kind.streams and (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
                return Target(absolute, real, True, stream=True)
            raise refuse(
                f"it is {_special(st.st_mode)}, not a regular file, and writing there would "
                "replace it or block. Choose a file name."
            )
        _check_existing(real, st, kind, refuse)
    folder = os.path.dirname(real)
    if kind.atomic and not os.access(folder, os.W_OK):
        raise refuse(f"the folder {display_path(folder)} is not writable.")
    name = len(os.fsencode(os.path.basename(real)))
    extra, most = _sidecar_bytes(kind), _name_max(folder)
    if extra and name + extra > most:
        raise refuse(
            f"its name is {name} bytes long, and the file written beside it while saving needs "
            f"{extra} bytes more, past the {most} bytes a name may have here. Use a name of at "
            f"most {most - extra} bytes."
        )
    if kind is Kind.MODEL:
        check_not_locked(real)  # another process trains into it or saves it
    return Target(absolute, real, st is not None)


def _check_existing(
    real: str, st: os.stat_result, kind: Kind, refuse: Callable[[str], CharLSTMError]
) -> None:
    """An existing regular file: of ``kind`` (or empty) and writable."""
    if st.st_size > 0:
        try:
            found = recognise(real)
            noun = _describe(real) if found is None else found.noun
        except OSError as e:
            raise refuse(
                f"it exists and cannot be read to tell what it holds ({e.strerror or e}); "
                "choose another file name."
            ) from None
        if found is not kind:
            raise refuse(
                f"it is {noun}, not {kind.noun}, and writing there would destroy it. Choose "
                "another file name."
            )
    if kind is not Kind.RUN_STORE and (
        not st.st_mode & 0o222 or not os.access(real, os.W_OK)
    ):  # the mode too: root may write anything, a 0444 file says "keep me"
        raise refuse(
            "it is read-only. Make it writable (chmod u+w) if it may be replaced, or choose "
            "another file name."
        )


def check_outputs(
    outputs: Sequence[Output], inputs: Mapping[str, str | os.PathLike | None] | None = None
) -> dict[str, Target]:
    """Check every file a command will write before it reads or writes anything: each output by
    its kind's rule, none of them one of ``inputs`` (description -> path) or an earlier output.
    Returns the targets by label; raises the first output's error, its message led by the
    output's label."""
    checked: dict[str, Target] = {}
    for out in outputs:
        if out.path is None:
            continue
        protect = dict(inputs or {})
        for other in outputs[: outputs.index(out)]:  # a clash is told by the later one
            if other.path is not None:
                protect[f"also {other.label}, {other.kind.noun}"] = other.path
        try:
            checked[out.label] = check_target(out.path, out.kind, protect=protect)
        except ModelFileLocked:
            raise  # its message names the file and the process
        except CharLSTMError as e:
            raise out.kind.error(f"{out.label}: {e}", path=os.fspath(out.path)) from None
    return checked


# ---------------------------------------------------------------------------------- writing


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


# Temporary files are ".<name>.<pid>.<8 random characters>.tmp" beside the target: the pid
# tells a later write whether the writer is still alive.
_TEMP_NAME = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]{1,10})\.[a-z0-9_]{8}\.tmp")


def remove_stale_temps(folder: str) -> list[str]:
    """Delete the temporary files that writes of dead processes (kill -9, power loss) left in
    ``folder``; returns their paths. Only regular files named like ours whose pid no longer
    runs are touched. POSIX only (no-op on Windows)."""
    removed: list[str] = []
    if os.name != "posix":
        return removed
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_NAME.fullmatch(entry.name)
        if m is None or pid_alive(int(m["pid"])):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed.append(entry.path)
        except OSError:
            continue
    return removed


Content = bytes | str | Callable[[IO[bytes]], Any]


def write_atomic(
    path: str | os.PathLike,
    kind: Kind,
    content: Content,
    *,
    protect: Mapping[str, str | os.PathLike | None] | None = None,
) -> str:
    """Write ``content`` (bytes, a str written as UTF-8, or a function that writes to a binary
    file) to ``path`` as a file of ``kind``: checked by :func:`check_target`, then written to a
    temporary file in the same folder, fsynced and renamed over the target, keeping a replaced
    file's permissions. Returns the absolute path as given. A failure raises ``kind``'s error
    and leaves any previous file unchanged; KeyboardInterrupt removes the temporary file."""
    target = check_target(path, kind, protect=protect)
    if target.stream:
        raise kind.error(f"Cannot {kind.doing} {display_path(target.path)}: it is a stream.")
    real, folder = target.real, os.path.dirname(target.real)
    remove_stale_temps(folder)
    shown = display_path(target.path)
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f".{os.path.basename(real)}.{os.getpid()}.", suffix=".tmp", dir=folder
        )
    except OSError as e:
        raise kind.error(
            f"Cannot {kind.doing} {shown}: {e.strerror or e}. Check that the folder exists and "
            "is writable.",
            path=target.path,
        ) from None
    try:
        # Keep the permissions of the file being replaced; mkstemp's 0600 is for new files only.
        mode = os.stat(real).st_mode & 0o777 if target.exists else 0o644
        with os.fdopen(fd, "wb") as f:
            if callable(content):
                content(f)
            else:
                f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, real)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise kind.error(
                f"Cannot {kind.doing} {shown}: {e.strerror or e}. Check free disk space and "
                "write permission; any previous file there is unchanged.",
                path=target.path,
            ) from None
        raise
    _fsync_dir(folder)
    return target.path


def open_log(
    path: str | os.PathLike,
    *,
    append: bool = False,
    protect: Mapping[str, str | os.PathLike | None] | None = None,
) -> IO[str]:
    """The JSON-lines log at ``path`` opened for writing (``append``: after what it holds), once
    :func:`check_target` allows a log there; a FIFO or ``/dev/stdout`` is written as a stream.
    OutputFileError if it cannot be opened."""
    target = check_target(path, Kind.LOG, protect=protect)
    try:
        return open(target.path, "a" if append or target.stream else "w", encoding="utf-8")
    except OSError as e:
        raise Kind.LOG.error(
            f"Cannot write the log {display_path(target.path)}: {e.strerror or e}.",
            path=target.path,
        ) from None


def remove(path: str | os.PathLike, kind: Kind, *, check_only: bool = False) -> str:
    """Delete the file at ``path`` if it is a file of ``kind`` (a symlink: the link itself) and,
    for a model, no process (this one included) holds its lock; returns the path deleted
    (``check_only``: the path that would be, nothing deleted). ``kind``'s error (a
    ModelFileLocked for a held model) says why not; nothing is deleted then."""
    given = os.fspath(path)
    shown = display_path(given)

    def refuse(reason: str) -> CharLSTMError:
        return kind.error(f"Cannot delete {shown}: {reason}", path=given)

    real = os.path.realpath(given)
    try:
        st = os.stat(real)
    except OSError as e:
        raise refuse(f"{e.strerror or e}.") from None
    if not stat.S_ISREG(st.st_mode):
        raise refuse(f"it is {_special(st.st_mode)}, not a regular file.")
    if st.st_size == 0 or recognise(real) is not kind:
        raise refuse(f"it is no longer {kind.noun} (it is {_describe(real)}); it is kept.")
    if kind is Kind.MODEL:
        check_not_locked(real, this_process=True)
    if check_only:
        return given
    try:
        os.unlink(given)
    except OSError as e:
        raise refuse(f"{e.strerror or e}.") from None
    return given


def fresh_name(path: str | os.PathLike) -> str:
    """``path`` if nothing is there, else the first free ``STEM-2.EXT``, ``STEM-3.EXT``, ...: a
    name no earlier file holds (autosaves started within one second)."""
    path = os.fspath(path)
    stem, ext = os.path.splitext(path)
    n = 1
    while os.path.lexists(path):
        n += 1
        path = f"{stem}-{n}{ext}"
    return path
