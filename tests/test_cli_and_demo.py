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


def test_genesis_check_rejects_a_bad_file_with_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "genesis.json"
    path.write_text('{"chain_id": "Bad Chain"}')
    result = run("-m", "node.cli", "genesis", "check", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "genesis" in result.stderr
    missing = run("-m", "node.cli", "genesis", "check", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


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
