"""The chaos runner: a seeded schedule is the same for the same seed and never has two faults at once; a
short run on a real devnet keeps every invariant; and the checker does catch a fork and a changed supply.

`POCNET_CHAOS_RUNS=N` runs N seeded chaos runs (seeds 0..N-1) instead of one.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from devnet.chaos import FAULT_KINDS, Report, check_invariants, make_schedule, unavailable
from devnet.network import Devnet
from node.storage import Store
from protocols.encoding import encode
from protocols.ledger.records import Account
from protocols.ledger.state import ACCOUNT

MANAGERS = [f"manager-{i}" for i in range(4)]
FOLLOWERS = ["follower-0", "follower-1"]
# Long enough for a few faults and their recovery, short enough for the suite (about 40 s in all).
RUN_S = 25
RUNS = int(os.environ.get("POCNET_CHAOS_RUNS", "1"))


def test_the_same_seed_gives_the_same_schedule() -> None:
    kinds = ("kill", "restart", "pause")
    first = make_schedule(7, 180, kinds, MANAGERS, FOLLOWERS)
    assert first == make_schedule(7, 180, kinds, MANAGERS, FOLLOWERS)
    assert first != make_schedule(8, 180, kinds, MANAGERS, FOLLOWERS)
    assert len(first) >= 3 and {f.kind for f in first} <= set(kinds)
    for earlier, later in zip(first, first[1:]):
        assert earlier.at_s + earlier.duration_s < later.at_s, "two faults at once"
    assert first[0].at_s >= 180 * 0.15 and first[-1].at_s + first[-1].duration_s <= 180 * 0.8


def test_managers_are_spared_when_no_fault_is_tolerable() -> None:
    schedule = make_schedule(1, 120, ("kill",), MANAGERS[:3], FOLLOWERS)
    assert schedule and all(f.target in FOLLOWERS for f in schedule)
    assert make_schedule(1, 120, ("kill",), MANAGERS[:3], []) == []


def test_fault_kinds_this_runner_cannot_apply_say_why() -> None:
    everywhere = ("kill", "restart", "pause")
    assert all(unavailable(kind, netns=False) is None for kind in everywhere)
    assert all(unavailable(kind, netns=False) for kind in FAULT_KINDS if kind not in everywhere)
    assert unavailable("partition", netns=True) is None
    assert unavailable("twins", netns=True) and unavailable("byzantine", netns=True)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(RUNS))
def test_a_short_seeded_chaos_run_keeps_every_invariant(tmp_path: Path, seed: int) -> None:
    root = tmp_path / "devnet"
    result = subprocess.run(
        [sys.executable, "-m", "devnet", "--dir", str(root), "chaos", "--seed", str(seed), "--duration", str(RUN_S),
         "--faults", "kill,restart,pause,partition"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "chaos: every invariant holds" in result.stdout
    assert "fault kind partition skipped:" in result.stdout
    assert "committed transactions in the chain:" in result.stdout

    # The checker is not vacuous: a fork and a changed balance in one store are caught.
    devnet = Devnet(root)
    nodes = devnet.load()
    victim = devnet.node_dir(nodes[-1].name) / "node.db"
    db = sqlite3.connect(victim)
    with db:
        db.execute("UPDATE blocks SET block_id = ? WHERE height = 1", (b"\x00" * 32,))
        key = next(k for (k,) in db.execute("SELECT key FROM state") if bytes(k).startswith(ACCOUNT))
        db.execute("UPDATE state SET value = ? WHERE key = ?", (encode(Account(balance=1)), key))
    db.close()
    report = Report()
    check_invariants(devnet, nodes, {}, (0.0, 0.0), 60.0, report)
    assert any("different blocks at heights [1]" in v for v in report.violations), report.violations
    assert any("supply" in v for v in report.violations), report.violations
    assert Store(victim).block_hashes()[0][1] == b"\x00" * 32  # the store is readable, only wrong
