"""One batch at a time per output folder.

Two runs on one folder would both do every item, clear each other's temporary files and
overwrite each other's table. A run therefore holds a lock file while it works, naming its
process, host and start. The lock is the operating system's (``flock`` on POSIX, a locked
byte on Windows), not the file's existence: it goes with the process that holds it however
that process ends (SIGKILL, a crash), so a dead run's lock is free without anyone breaking
it, and the file that remains only says who held it last.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import threading
import warnings
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from cochleaai.errors import CochleaAIError

if os.name == "nt":
    import msvcrt  # platform module: Windows only, where fcntl is missing
else:
    import fcntl  # platform module: POSIX only, where msvcrt is missing

#: Windows locks bytes, which nobody else may then read: lock one past the holder's text.
_WINDOWS_BYTE = 1 << 20
#: "Held by another process"; anything else (ENOLCK on an NFS without a lock daemon) means
#: the file system cannot lock at all.
_BUSY = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, errno.EDEADLK}
#: The locks each thread holds: a command holding one around run() and its table lets run() in.
_held = threading.local()


def _try_lock(fd: int) -> bool:
    """Take the lock of ``fd`` without waiting; False when another process holds it."""
    try:
        if os.name == "nt":
            os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in _BUSY:
            return False
        raise
    return True


def _unlock(fd: int) -> None:
    if os.name == "nt":          # POSIX releases the lock with the file, Windows wants it explicitly
        os.lseek(fd, _WINDOWS_BYTE, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"process {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a run that is just starting"          # it holds the lock, its text is not written yet


@contextmanager
def hold(path, folder):
    """Hold the lock file ``path`` for the block; a :class:`CochleaAIError` naming the
    holder when another run holds it (another process, or another thread of this one).
    ``folder`` is what the message calls the output."""
    path = Path(path).absolute()
    held = _held.__dict__.setdefault("paths", set())
    if path in held:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            locked = _try_lock(fd)
        except OSError as exc:
            warnings.warn(f"Cannot lock '{path}' ({exc}); the batch runs without its lock, so make sure "
                          "no other batch writes into the same folder.", RuntimeWarning, stacklevel=3)
            locked = None
        if locked is False:
            raise CochleaAIError(f"Another batch is writing into '{folder}' ({_holder(path)}); wait for it "
                                 "to end or stop it, then run again. One batch at a time can use an "
                                 "output folder.")
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(me).encode())
        held.add(path)
        try:
            yield
        finally:
            held.discard(path)
            os.ftruncate(fd, 0)          # nobody holds it now
            if locked:
                _unlock(fd)
    finally:
        os.close(fd)
