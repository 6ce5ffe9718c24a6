"""Operator mistakes through the CLI, as typed: each is one line on stderr and exit status 2, never a
traceback, never harm to a running node, and after the repair a restart has every committed transaction.

Each test commits history on a one-validator chain, stops the node, breaks one thing, runs `pocnet node`
and reads its answer, repairs, restarts and finds the history intact.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from node.datadir import LOCK_FILE
from tests.node.operator import SoloChain, assert_final_line, assert_one_line, unlink_quietly, write_solo_genesis

pytestmark = pytest.mark.slow  # each test starts `pocnet node` processes (a second or two each)

STORE = "node.db"
KEY = "node.key"


@pytest.fixture
def chain(tmp_path: Path) -> SoloChain:
    return SoloChain.create(tmp_path)


@pytest.fixture
def history(chain: SoloChain) -> Iterator[tuple[bytes, int]]:
    """A committed transfer (its id and height) in the chain's stopped node."""
    node = chain.start()
    try:
        committed = node.commit_transfer(os.urandom(20))
    finally:
        node.stop()
    yield committed


def assert_history_kept(chain: SoloChain, committed: tuple[bytes, int]) -> None:
    """A restart serves the committed transfer at its height, and the chain goes on."""
    tx_id, height = committed
    node = chain.start()
    try:
        result = node.result(tx_id)
        assert (result.height, result.code) == (height, "ok"), result
        assert node.status().height >= height
        node.commit_transfer(os.urandom(20))
    finally:
        node.stop()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_key_file_is_one_line(chain: SoloChain, history: tuple[bytes, int], damage: str) -> None:
    key = chain.data_dir / KEY
    good = key.read_bytes()
    key.write_bytes({"truncated": good[:11], "garbage": os.urandom(100), "empty": b""}[damage])
    assert_one_line(chain.run_refused(), "node key", str(key), "damaged", "restore it")
    assert key.stat().st_size != len(good), "the damaged key must be left for the operator, not replaced"
    key.write_bytes(good)
    assert_history_kept(chain, history)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_database_is_one_line(chain: SoloChain, history: tuple[bytes, int], damage: str) -> None:
    store = chain.data_dir / STORE
    backup = chain.root / "node.db.backup"
    shutil.copyfile(store, backup)
    with open(store, "r+b") as file:
        if damage == "truncated":
            file.truncate(store.stat().st_size // 2)
        else:
            file.write(os.urandom(store.stat().st_size))
    before = store.read_bytes()
    assert_one_line(chain.run_refused(), "node database", "damaged", "restore it from a backup")
    assert store.read_bytes() == before, "a refused node must not write into the damaged store"
    unlink_quietly(chain.data_dir / (STORE + "-wal"), chain.data_dir / (STORE + "-shm"))
    shutil.copyfile(backup, store)
    assert_history_kept(chain, history)


def test_a_data_directory_of_another_chain_is_one_line(chain: SoloChain, history: tuple[bytes, int]) -> None:
    other = chain.root / "other.json"
    write_solo_genesis(other, chain.keypair, "another-chain")
    assert_one_line(chain.run_refused(genesis=other), "belongs to genesis", "another --data-dir")
    assert_history_kept(chain, history)


def test_a_second_node_on_a_running_data_directory_is_refused(chain: SoloChain) -> None:
    first = chain.start()
    try:
        tx_id, height = first.commit_transfer(os.urandom(20))
        line = assert_one_line(chain.run_refused(), "in use by another pocnet node", f"pid {first.process.pid}")
        assert str(chain.data_dir) in line
        assert (chain.data_dir / "control.sock").exists() and (chain.data_dir / "node.addr").exists()
        assert first.result(tx_id).height == height  # the first node still serves, undisturbed
        first.commit_transfer(os.urandom(20))
    finally:
        first.stop()
    assert (chain.data_dir / LOCK_FILE).exists()
    assert_history_kept(chain, (tx_id, height))  # and its lock went with it


def test_listening_on_a_port_in_use_is_refused(chain: SoloChain, tmp_path: Path) -> None:
    """py-libp2p sets SO_REUSEPORT: without our check both nodes would listen and share connections."""
    first = chain.start()
    try:
        port = first.status().listen_addrs[0].split("/tcp/")[1].split("/")[0]
        listen = f"/ip4/127.0.0.1/tcp/{port}"
        second = SoloChain.create(tmp_path / "second")
        assert_one_line(second.run_refused("--listen", listen), "cannot listen on", listen, "Address already in use")
        assert not (second.data_dir / "node.addr").exists()
        first.commit_transfer(os.urandom(20))
    finally:
        first.stop()


def test_a_validators_consensus_links_listen_where_told_and_a_taken_port_is_refused(chain: SoloChain, tmp_path: Path) -> None:
    """`--link-listen` puts the validator's consensus links (a connection apart from gossip) on a port an
    operator can open in a firewall; `pocnet status` shows it. A port in use is refused like --listen's."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    first = chain.start("--link-listen", f"/ip4/127.0.0.1/tcp/{free_port}")
    try:
        [link_addr] = first.status().link_addrs
        assert link_addr.startswith(f"/ip4/127.0.0.1/tcp/{free_port}/p2p/")
        taken = f"/ip4/127.0.0.1/tcp/{free_port}"
        second = SoloChain.create(tmp_path / "second")
        assert_one_line(second.run_refused("--link-listen", taken), "cannot listen on", taken, "--link-listen")
        assert not (second.data_dir / "node.addr").exists()
        not_a_manager = second.run_refused("--role", "requester", "--link-listen", taken)
        assert_one_line(not_a_manager, "--link-listen is for managers")
        first.commit_transfer(os.urandom(20))
    finally:
        first.stop()


def can_remount_read_only() -> bool:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not can_remount_read_only(), reason="a read-only mount needs root and unshare --mount")
def test_a_read_only_data_directory_is_one_line(chain: SoloChain, history: tuple[bytes, int]) -> None:
    """The directory is remounted read-only in a private mount namespace of the node's process only: the
    test's file system is untouched (root ignores permission bits, so chmod would prove nothing)."""
    directory = str(chain.data_dir)
    remount = ("unshare", "--mount", "sh", "-c",
               f'mount --bind "{directory}" "{directory}" && mount -o remount,ro,bind "{directory}" && exec "$@"', "-")
    line = assert_one_line(chain.run_refused(prefix=remount), "not writable", directory)
    assert "Read-only file system" in line, line
    assert_history_kept(chain, history)


def mount_small_disk(path: Path, size_kib: int) -> None:
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0700", "pocnet-faults-tmpfs", str(path)],
                   check=True, capture_output=True)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; returns it (delete it to free the space)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)  # unbuffered: nothing left to flush on close
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_while_running_is_one_line_and_loses_nothing(tmp_path: Path) -> None:
    """The data directory lives on a small tmpfs the test mounts (and unmounts); once the node runs and has
    committed, the test fills the disk and submits one more transfer."""
    disk = tmp_path / "disk"
    mount_small_disk(disk, 16 * 1024)
    try:
        chain = SoloChain.create(disk)
        chain.root = tmp_path  # logs outside the full disk
        node = chain.start()
        try:
            committed = node.commit_transfer(os.urandom(20))
            filler = fill(disk)
            node.submit_transfer(os.urandom(20))
            code = node.wait_exit(timeout_s=60)
        finally:
            if node.process.poll() is None:
                node.stop()
        assert_final_line(code, node.log(), "the disk holding", "is full", "nothing committed was lost")
        filler.unlink()
        assert_history_kept(chain, committed)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_genesis_of_another_chain_than_the_peers_is_one_line(chain: SoloChain, tmp_path: Path) -> None:
    """A fresh node started with a genesis other than its peers' would sit at height 0 for ever, logging
    only that certificates do not verify: it must say its peers are on another chain."""
    first = chain.start()
    try:
        committed = first.commit_transfer(os.urandom(20))
        join = (chain.data_dir / "node.addr").read_text().split()[0]
        stranger = SoloChain.create(tmp_path / "stranger", chain_id="another-chain")
        result = stranger.run_refused("--join", join)
        line = assert_final_line(result.returncode, result.stderr, "--join are on chain 'operator-test'",
                                 "--genesis is chain 'another-chain'")
        assert "their genesis file" in line
        first.commit_transfer(os.urandom(20))  # the peer it asked is unharmed
    finally:
        first.stop()
    assert_history_kept(chain, committed)
