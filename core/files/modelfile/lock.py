"""Locks: one writer per model file (:class:`ModelLock`), across processes (the CLI and the
app) and within one (two runs in the app); :func:`check_not_locked` is what a save asks first.
"""

from __future__ import annotations

import errno
import os
import threading

from ...errors import ModelFileError, ModelFileLocked
from ..proclock import try_lock

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
            if not try_lock(fd, unsupported=True):
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


def check_not_locked(path: str | os.PathLike, *, this_process: bool = False) -> None:
    """ModelFileLocked if a process other than this one holds ``path``'s ModelLock (with
    ``this_process``, this one too: a run in this program); a stale sidecar left by a killed
    holder is removed on the way."""
    real = os.path.realpath(os.fspath(path))
    with _HELD_GUARD:
        if real in _HELD:
            if this_process:
                shown = os.path.abspath(os.fspath(path))
                raise ModelFileLocked(
                    f"{shown} is in use by a run in this program. Stop that run first.",
                    path=shown,
                    pid=os.getpid(),
                )
            return
        lf = lock_path(real)
        try:
            fd = os.open(lf, os.O_RDWR | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return  # no sidecar: nobody holds it
        try:
            if not try_lock(fd, unsupported=True):
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
