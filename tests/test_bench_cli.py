"""Every benchmark starts from the installed package, as README says to run it (`python -m bench.NAME`), from
any directory: a bench that only ran from the repository root, or through `sys.path` edits, broke unnoticed."""

import subprocess
import sys

import pytest

BENCHES = ["consensus_sim", "devnet", "e2e", "explorer_cost", "gossip", "liveness", "matching", "raw_gossip", "worker_join"]


@pytest.mark.parametrize("name", BENCHES)
def test_bench_help_runs_from_anywhere(name: str, tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"bench.{name}", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:"), result.stdout
