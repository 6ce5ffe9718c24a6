"""The chaos runner: a seeded schedule is the same for the same seed and never has two faults at once; a
short run on a real devnet keeps every invariant; and the checker does catch a fork and a changed supply.

`POCNET_CHAOS_RUNS=N` runs N seeded chaos runs (seeds 0..N-1) instead of one.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from devnet.chaos import (
    FAULT_KINDS,
    Report,
    Submitted,
    account_for,
    check_deals,
    check_invariants,
    make_schedule,
    unavailable,
)
from devnet.network import Devnet
from node.storage import Store
from protocols.encoding import decode, encode
from protocols.ledger.records import Account, Task, TaskStatus
from protocols.ledger.state import ACCOUNT, TASK, LedgerState
from protocols.ledger.transactions import Claim, ContributeAndFinalize
from tests.support import Market

MANAGERS = [f"manager-{i}" for i in range(4)]
FOLLOWERS = ["follower-0", "follower-1"]
# Long enough for a few faults and their recovery, short enough for the suite (about 40 s in all).
RUN_S = 25
RUNS = int(os.environ.get("POCNET_CHAOS_RUNS", "1"))
# POCNET_CHAOS_NETNS=1 (root): the runs put each node in its own namespace and add partitions and loss.
NETNS = os.environ.get("POCNET_CHAOS_NETNS") == "1"
ALL_FAULTS = "kill,restart,pause,partition,loss,twins,byzantine"


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


def test_twins_and_byzantine_faults_are_for_managers_only() -> None:
    schedule = [f for seed in range(10) for f in make_schedule(seed, 600, ("twins", "byzantine", "pause"), MANAGERS, FOLLOWERS)]
    assert {f.kind for f in schedule} == {"twins", "byzantine", "pause"}
    assert all(f.target in MANAGERS for f in schedule if f.kind != "pause")
    assert make_schedule(3, 600, ("twins", "byzantine"), MANAGERS[:3], FOLLOWERS) == []


def test_fault_kinds_this_runner_cannot_apply_say_why() -> None:
    everywhere = ("kill", "restart", "pause", "twins", "byzantine")
    assert all(unavailable(kind, netns=False) is None for kind in everywhere)
    assert all(unavailable(kind, netns=False) for kind in FAULT_KINDS if kind not in everywhere)
    assert all(unavailable(kind, netns=True) is None for kind in FAULT_KINDS if kind != "loss")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(RUNS))
def test_a_short_seeded_chaos_run_keeps_every_invariant(tmp_path: Path, seed: int) -> None:
    root = tmp_path / "devnet"
    netns = ["--netns"] if NETNS else []
    result = subprocess.run(
        [sys.executable, "-m", "devnet", "--dir", str(root), "chaos", "--seed", str(seed), "--duration", str(RUN_S),
         "--faults", ALL_FAULTS, *netns],
        capture_output=True, text=True, timeout=300,
    )
    print(result.stdout)  # the figures, for `pytest -s` and long series
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "chaos: every invariant holds" in result.stdout
    assert ("fault kind partition skipped:" in result.stdout) != NETNS
    assert "committed transactions in the chain:" in result.stdout
    assert re.search(rf"^summary seed={seed} .*\blost=0\b.*\binvariants=yes$", result.stdout, re.M), result.stdout
    assert re.search(r"^transactions: \d+ submitted, .* 0 lost$", result.stdout, re.M), result.stdout
    deals = re.search(r"^deals: (\d+), tasks: (\d+): (\d+) completed, (\d+) failed", result.stdout, re.M)
    assert deals and int(deals[1]) > 0, "the requester ran no app: " + result.stdout
    assert int(deals[3]) + int(deals[4]) == int(deals[2])

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
    store = Store(victim)
    assert store.block_hashes()[0][1] == b"\x00" * 32  # the store is readable, only wrong
    store.close()

    # ...and so is a task left open in the reference store (the first node's).
    db = sqlite3.connect(devnet.node_dir(nodes[0].name) / "node.db")
    with db:
        key, value = next((k, v) for k, v in db.execute("SELECT key, value FROM state") if bytes(k).startswith(TASK))
        task = decode(Task, bytes(value))
        db.execute("UPDATE state SET value = ? WHERE key = ?", (encode(replace(task, status=TaskStatus.ACTIVE)), key))
    db.close()
    report = Report()
    check_invariants(devnet, nodes, {}, (0.0, 0.0), 60.0, report)
    assert any("ACTIVE, neither completed nor failed" in v for v in report.violations), report.violations


def test_every_submitted_transaction_is_accounted_for() -> None:
    signer = b"\x01" * 20

    def tx(n: int) -> Submitted:
        return Submitted(bytes([n]) * 32, "follower-0", signer, n)

    committed = {tx(0).tx_id: 1}
    unresolved = {
        tx(1): "pending",  # reported pending, but found in a block: committed
        tx(2): "pending",  # still in its node's mempool
        tx(3): "dropped from the mempool: no longer valid",
        tx(4): "unknown transaction",  # forgotten by its node: lost, and its nonce was taken
        tx(5): "its node did not answer (timed out)",  # lost
    }
    block_txs = {1: {tx(0).tx_id}, 2: {tx(1).tx_id, b"\x09" * 32}}
    nonces = {(signer, 0): tx(0).tx_id, (signer, 1): tx(1).tx_id, (signer, 4): b"\x09" * 32}
    report = Report()
    figure = account_for(committed, unresolved, block_txs, nonces, report)
    assert figure == ("transactions: 6 submitted, 2 committed (1 found in the chain only), 1 rejected "
                      "(1 x dropped from the mempool: no longer valid), 1 pending in their node's mempool at the end, "
                      "2 lost")
    assert len(report.violations) == 1 and "2 submitted transaction(s) lost" in report.violations[0]
    assert f"nonce 4: unknown transaction, its nonce taken by 0x{'09' * 8}" in report.violations[0]


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")
def test_a_netns_devnet_runs_off_loopback_and_down_removes_everything(tmp_path: Path) -> None:
    root = tmp_path / "devnet"

    def devnet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "devnet", "--dir", str(root), *args],
                              capture_output=True, text=True, timeout=180)

    up = devnet("up", "--netns", "--managers", "4", "--followers", "0")
    try:
        assert up.returncode == 0, up.stdout + up.stderr[-3000:]
        tag = json.loads((root / "netns.json").read_text())["tag"]
        for i in range(4):
            address = (root / f"manager-{i}" / "node.addr").read_text().split()[0]
            assert address.startswith(f"/ip4/10.77.0.{i + 1}/tcp/"), address
        assert sum(f"pocnet-{tag}-" in line for line in namespaces()) == 5  # the managers and authority-0
    finally:
        down = devnet("down")
    assert down.returncode == 0, down.stderr
    assert not any(f"pocnet-{tag}-" in line for line in namespaces())
    assert subprocess.run(["ip", "link", "show", f"pnbr{tag}"], capture_output=True).returncode != 0
    assert not (root / "netns.json").exists()


def namespaces() -> list[str]:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.splitlines()


def test_the_deal_check_wants_each_failed_task_claimed_after_its_final_deadline_and_refunded() -> None:
    market = Market.create()
    done = market.start_task(trust=1)
    market.ok("w1", ContributeAndFinalize(done, b"\x01" * 32, b"where", *contribution_proof(market, done)))
    failed = market.start_task(trust=1)
    task = market.task(failed)
    market.now = task.final_deadline
    market.ok("requester", Claim(task.deal_id, task.index))
    claims = {failed: [(market.addr("requester"), task.final_deadline)]}

    report = Report()
    figure = check_deals(market.ledger.state, claims, report)
    assert report.violations == []
    assert figure == ("deals: 2, tasks: 2: 1 completed, 1 failed and refunded by claim after the final deadline "
                      "(0 claimed by the pool, 1 by the requester), 0 neither")

    early = {failed: [(market.addr("manager"), task.final_deadline - 1)]}  # the ledger would refuse it: the check too
    report = Report()
    check_deals(market.ledger.state, early, report)
    assert report.violations == [f"deal 0x{task.deal_id.hex()[:16]} task 0: FAILED without a claim in a block at or "
                                 "after its final deadline"]

    requester = market.account("requester")
    state = LedgerState(dict(market.ledger.state.items()))
    state.apply_writes({ACCOUNT + market.addr("requester"): replace(requester, frozen=requester.frozen + 1)})
    report = Report()
    check_deals(state, claims, report)
    assert len(report.violations) == 1 and "escrow not refunded" in report.violations[0]


def contribution_proof(market: Market, task_id: bytes) -> tuple[bytes, bytes, bytes]:
    """What ContributeAndFinalize takes after the digest and result location: the enclave's challenge, its
    attestation and the pool's authorization (as tests/test_ledger_poco.py builds them)."""
    c = market.contribution("w1", task_id, b"\x01" * 32)
    return c.enclave_challenge, c.attestation, c.authorization
