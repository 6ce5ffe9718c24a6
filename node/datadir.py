"""One node per data directory: an exclusive lock held for the life of the process.

Two nodes on one directory would share a SQLite store and a key (two validators signing as one: a Byzantine
twin), and the second would remove the first one's `control.sock` and `node.addr` on start. So the node
takes an advisory `flock` on `node.lock` before it touches anything else in the directory; the kernel
drops the lock when the process dies, however it dies, so a crash never leaves a stale lock behind. The
lock file is never deleted (deleting it would let two processes lock two different files). Taking the lock
also proves the directory is writable, before a key or a database is created in it.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from node.operator_errors import OperatorError

log = logging.getLogger(__name__)

LOCK_FILE = "node.lock"


class DataDirError(OperatorError):
    """The data directory is in use by another node."""


@contextmanager
def lock_data_dir(data_dir: Path) -> Iterator[None]:
    """Hold the data directory's lock inside the block. Raises `DataDirError` if another process holds it,
    and the `OSError` of the file system if the directory cannot be written (`operator_errors.explain`
    words both for the operator)."""
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # an OSError here (read-only, full) explains itself
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise DataDirError(
                f"--data-dir {data_dir} is in use by another pocnet node (pid {holder}): stop it first, or use another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        log.debug("event=data-dir-locked path=%s", path)
        yield
    finally:
        os.close(fd)  # releases the lock
