"""The user-facing entry points: the demo prints a deal, `pocnet genesis check` validates files."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from protocols.genesis import genesis_to_json
from tests.support import make_genesis


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60)


def test_demo_matches_orders_into_a_deal() -> None:
    result = run("-m", "devnet", "match-demo")
    assert result.returncode == 0, result.stderr
    assert "Matching engine proposes 1 match(es)" in result.stdout
    assert "Deal 0x" in result.stdout
    assert "trust-too-low" in result.stdout  # explain() for the request that cannot match


def test_genesis_check_accepts_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_text(genesis_to_json(make_genesis()))
    result = run("-m", "node.cli", "genesis", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert f"0x{make_genesis().genesis_hash.hex()}" in result.stdout
    assert "max_block_txs=250" in result.stdout


def test_genesis_check_refuses_chain_params_beyond_the_hard_bounds(tmp_path: Path) -> None:
    doc = json.loads(genesis_to_json(make_genesis()))
    doc["chain_params"]["max_tx_bytes"] = 1 << 20
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(doc))
    result = run("-m", "node.cli", "genesis", "check", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "chain_params.max_tx_bytes must be an integer from 1 to 65536" in result.stderr


def test_genesis_check_rejects_a_bad_file_with_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_text('{"chain_id": "Bad Chain"}')
    result = run("-m", "node.cli", "genesis", "check", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "genesis" in result.stderr
    missing = run("-m", "node.cli", "genesis", "check", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_devnet_takes_its_directory_before_or_after_the_command(tmp_path: Path) -> None:
    for argv in (("--dir", str(tmp_path / "x"), "status"), ("status", "--dir", str(tmp_path / "x"))):
        result = run("-m", "devnet", *argv)
        assert result.returncode == 2
        assert result.stderr == f"devnet: no devnet in {tmp_path / 'x'} (start one with `python -m devnet up`)\n"


def test_commands_that_need_a_node_say_how_to_start_one(tmp_path: Path) -> None:
    for argv in (("worker", "certify"), ("order", "explain", "0x" + "ab" * 8), ("wallet", "address")):
        result = run("-m", "node.cli", *argv, "--data-dir", str(tmp_path))
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "start it with `pocnet node`" in result.stderr


def test_order_ids_are_checked_before_asking_the_node(tmp_path: Path) -> None:
    result = run("-m", "node.cli", "order", "explain", "0xnothex", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "not hexadecimal" in result.stderr
    result = run("-m", "node.cli", "order", "cancel", "0xabcd", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "at least 8 hex digits" in result.stderr


def test_an_unreaped_exited_node_counts_as_stopped() -> None:
    """`devnet down` from another shell: the nodes are not its children, and where init does not reap them
    they linger as zombies that signals still reach; stopping them must not wait for them, or kill them."""
    import time

    from devnet.network import _zombie

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while not _zombie(process.pid):  # exited, not reaped: we have not waited for it yet
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.wait()
    assert not _zombie(process.pid)


def test_a_bad_or_busy_http_address_is_one_line_and_exit_2(tmp_path: Path) -> None:
    genesis = tmp_path / "genesis.json"
    genesis.write_text(genesis_to_json(make_genesis()))
    node = ("-m", "node.cli", "node", "--role", "requester", "--genesis", str(genesis), "--data-dir")
    bad = run(*node, str(tmp_path / "a"), "--http", "somewhere:http")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--http 'somewhere:http'" in bad.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = run(*node, str(tmp_path / "b"), "--http", f"127.0.0.1:{port}", "--log-level", "error")
    assert taken.returncode == 2, taken.stderr
    assert taken.stderr.strip().splitlines()[-1].startswith(f"pocnet: --http 127.0.0.1:{port}: cannot listen")
    assert "Traceback" not in taken.stderr


def test_json_output_of_a_command_without_a_node(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_text(genesis_to_json(make_genesis()))
    result = run("-m", "node.cli", "genesis", "check", str(path), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["genesis_hash"] == f"0x{make_genesis().genesis_hash.hex()}" and document["total_supply"] > 0
    missing = run("-m", "node.cli", "status", "--data-dir", str(tmp_path), "--json")
    assert missing.returncode == 2 and missing.stdout == ""
    assert "no node is running" in json.loads(missing.stderr)["error"]
