"""Process-level locking primitives shared by the model-file lock
(charlstm_core.files.modelfile.lock),
the stale-temporary-file clean-up (charlstm_core.files.modelfile.write) and the run store's
liveness locks
(charlstm_core.runs.store): a non-blocking exclusive file lock and a "does this process still run"
test.
"""

from __future__ import annotations

import errno
import os


def try_lock(fd: int, *, unsupported: bool) -> bool:
    """Take an exclusive lock on the open file ``fd`` without waiting; False if another open
    file holds it. On a file system that cannot lock (some network mounts) the answer is
    ``unsupported``: True where a lock must never block work, False where only a real lock
    may be trusted. ``flock`` on POSIX, ``msvcrt.locking`` of the first byte on Windows."""
    if os.name == "nt":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return False
        return unsupported
    return True


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (this process: True; pid <= 0: False).
    On Windows there is no cheap test (``os.kill(pid, 0)`` would end the process): True."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True
