"""The user-facing entry points: the demo prints a deal, `pocnet genesis check` validates files."""

from __future__ import annotations

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
