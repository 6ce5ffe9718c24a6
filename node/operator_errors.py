"""Mistakes an operator can fix, and how to say them in one line (DESIGN.md section 9).

A node that cannot start or go on because of its surroundings (a damaged key or database, another chain's
data directory, a directory it cannot write, a full disk, a port in use, peers on another chain) must say
what is wrong and what to do, in one line, and exit with status 2: never a traceback. Such errors surface
inside trio's nurseries, wrapped in (nested) exception groups, so `explain` looks at every leaf of the
group and turns the first it recognises into that line. Whatever it does not recognise stays a bug and is
re-raised by the caller with its traceback.
"""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

# What the operator can do about a disk that filled up: the node stopped before committing anything half.
_FULL_ADVICE = "free some space, then start the node again (nothing committed was lost)"


class OperatorError(Exception):
    """A problem with the node's surroundings the operator can fix. The message is one complete line:
    what is wrong, with the value at fault, and what to do."""


def leaves(exc: BaseException) -> list[BaseException]:
    """The innermost exceptions of nested exception groups, in order."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def explain(exc: BaseException, data_dir: Path) -> str | None:
    """The one line to print for `exc` (a group or a single exception), or None if it is a bug.

    An `OperatorError` anywhere in the group wins: it was raised on purpose with its own message; the
    other leaves are usually the cancellations it caused."""
    found = leaves(exc)
    for leaf in found:
        if isinstance(leaf, OperatorError):
            return str(leaf)
    for leaf in found:
        line = _explain_leaf(leaf, data_dir)
        if line is not None:
            return line
    return None


def database_problem(path: Path, error: sqlite3.DatabaseError) -> str:
    """What a SQLite error on the node database means for the operator. sqlite3 gives no errno: SQLITE_FULL
    reads "database or disk is full", a read-only file or file system "attempt to write a readonly
    database"; anything else is a file that is not (or no longer) a sound database."""
    text = str(error)
    if "full" in text:
        return f"the disk holding {path} is full (the node database cannot grow): {_FULL_ADVICE}"
    if "readonly" in text:
        return f"the node database at {path} is read-only ({text}): make it and its directory writable, then start the node again"
    return (
        f"the node database at {path} is damaged ({text}): restore it from a backup, "
        "or move it away to resynchronise the chain from peers"
    )


def _explain_leaf(leaf: BaseException, data_dir: Path) -> str | None:
    if isinstance(leaf, sqlite3.DatabaseError):
        return database_problem(data_dir, leaf)
    if isinstance(leaf, OSError):
        code = leaf.errno
        reason = leaf.strerror or str(leaf)
        if code in (errno.ENOSPC, errno.EDQUOT):
            return f"the disk holding {data_dir} is full ({reason}): {_FULL_ADVICE}"
        if code in (errno.EROFS, errno.EACCES, errno.EPERM) and _within(leaf, data_dir):
            return f"--data-dir {data_dir} is not writable ({reason}): make it writable by this user, or use another --data-dir"
    return None


def _within(error: OSError, data_dir: Path) -> bool:
    """Whether the failed path is in the data directory (a permission error elsewhere is not ours to explain)."""
    if error.filename is None:
        return False
    try:
        Path(error.filename).resolve().relative_to(data_dir.resolve())
    except ValueError:
        return False
    return True
