"""`explain`: the one line for an error found inside trio's nested exception groups, or None for a bug."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from node.datadir import DataDirError, lock_data_dir
from node.net.ports import ListenError, ensure_listen_address_free
from node.operator_errors import OperatorError, explain

DATA = Path("/srv/node")


def group(*errors: BaseException) -> BaseExceptionGroup[BaseException]:
    return BaseExceptionGroup("outer", [BaseExceptionGroup("inner", list(errors))])


def test_an_operator_error_wins_over_the_other_leaves() -> None:
    other = OSError(errno.ENOSPC, "No space left on device")  # would be explained too, but comes second
    line = explain(group(other, OperatorError("the key is damaged: restore it")), DATA)
    assert line == "the key is damaged: restore it"


def test_file_system_and_database_errors_are_worded_for_the_operator() -> None:
    full = explain(group(sqlite3.OperationalError("database or disk is full")), DATA)
    assert full is not None and "is full" in full and "nothing committed was lost" in full
    nospace = explain(OSError(errno.ENOSPC, "No space left on device", str(DATA / "node.db-wal")), DATA)
    assert nospace is not None and "is full" in nospace
    readonly = explain(OSError(errno.EROFS, "Read-only file system", str(DATA / "node.lock")), DATA)
    assert readonly is not None and "not writable" in readonly and str(DATA) in readonly
    damaged = explain(sqlite3.DatabaseError("database disk image is malformed"), DATA)
    assert damaged is not None and "damaged" in damaged


def test_anything_else_is_a_bug() -> None:
    assert explain(group(ValueError("oops")), DATA) is None
    elsewhere = OSError(errno.EACCES, "Permission denied", "/etc/shadow")
    assert explain(elsewhere, DATA) is None, "a permission error outside the data directory is not ours"


def test_the_data_directory_lock_is_exclusive(tmp_path: Path) -> None:
    with lock_data_dir(tmp_path):
        try:
            with lock_data_dir(tmp_path):
                raise AssertionError("a second lock was granted")
        except DataDirError as exc:
            assert "in use by another pocnet node" in str(exc)
    with lock_data_dir(tmp_path):  # released on exit
        pass


def test_a_listen_port_in_use_is_found_although_libp2p_would_share_it() -> None:
    import socket

    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as py-libp2p's listener does
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            ensure_listen_address_free(f"/ip4/127.0.0.1/tcp/{port}")
            raise AssertionError("the port in use was not found")
        except ListenError as exc:
            assert "Address already in use" in str(exc) and f"tcp/{port}" in str(exc)
    ensure_listen_address_free("/ip4/127.0.0.1/tcp/0")
    try:  # a bind only: nothing is sent to an address that is not ours
        ensure_listen_address_free("/ip4/192.0.2.1/tcp/0")
        raise AssertionError("a foreign address was accepted")
    except ListenError as exc:
        assert "Cannot assign requested address" in str(exc)
