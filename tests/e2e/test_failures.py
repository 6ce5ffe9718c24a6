"""Failures on a real devnet (separate processes on 127.0.0.1): a worker lost mid-task, a provider offline.

Each test builds its own small devnet (one manager, one requester, the provider, one or two workers) in
a temporary directory and drives it through the control sockets with the demo's helpers; accounts of
stopped nodes are read from another node's ledger.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devnet.network import DEVNET_CATEGORIES, LOG_FILE, START_BALANCE, STATE_FILE, Devnet, NodeSpec
from devnet.network_demo import STEP_TIMEOUT_S, Participant, demo_nodes
from devnet.scenario import MAX_PRICE, open_market, request_task, result_text, supply, wait_deal, wait_settled
from node.control import AccountInfo, AccountRequest, DealInfo, DealRequest, FetchResultRequest, RunRequest, TaskRequest
from protocols.crypto import hex_address
from protocols.genesis import Category
from protocols.ledger.escrow import KITTY_ADDRESS
from protocols.ledger.records import TaskStatus
from protocols.matching import task_id_for

# Real nodes on a shared 2-core machine: py-libp2p gossip timing under load occasionally needs another try
# (see the closing notes of issue 4); a failure that repeats is a real one.
pytestmark = [pytest.mark.slow, pytest.mark.flaky(reruns=1)]


# T = 2 s: the final deadline (10T) passes 20 s after the deal; the other categories as the devnet's.
FAST_CATEGORIES = (Category(0, "XS", 2_000), *DEVNET_CATEGORIES[1:])
# The scheduler gives up on a silent replicate after 2T = 10 s (category 0 of the devnet, T = 5 s);
# the second worker must then still contribute before 7T = 35 s after the deal.
SETTLE_TIMEOUT_S = 100.0
LOG_POLL_S = 0.005


@pytest.fixture
def devnet(tmp_path: Path) -> Iterator[Devnet]:
    network = Devnet(tmp_path / "devnet")
    try:
        yield network
    finally:
        if (network.root / STATE_FILE).exists():
            network.stop(network.load())  # every node started, with the pids `start` recorded


def wait_for_line(path: Path, *needles: str, timeout_s: float = STEP_TIMEOUT_S) -> str:
    """The first line of a log holding every needle, read as it grows (a few ms behind the writer)."""
    deadline = time.monotonic() + timeout_s
    offset, partial = 0, ""
    while time.monotonic() < deadline:
        with open(path, errors="replace") as file:
            file.seek(offset)
            chunk = file.read()
            offset = file.tell()
        lines = (partial + chunk).split("\n")
        partial = lines.pop()
        for line in lines:
            if all(n in line for n in needles):
                return line
        time.sleep(LOG_POLL_S)
    raise AssertionError(f"no line with {needles} in {path} after {timeout_s:.0f} s")


def still_running(devnet: Devnet, nodes: list[NodeSpec]) -> Callable[[], None]:
    """A check for `wait_settled`: fail at once, with its log, when a node that should run has exited."""
    def check() -> None:
        for node in nodes:
            try:
                exited = os.waitpid(node.pid, os.WNOHANG)[0] == node.pid
            except ChildProcessError:
                exited = True
            if exited:
                raise AssertionError(f"{node.name} exited; its log ends with:\n{devnet.tail(node.name, 40)}")

    return check


def test_a_worker_killed_mid_task_is_replaced(devnet: Devnet) -> None:
    nodes = devnet.create(1, 1, extra=demo_nodes(2, dishonest=False))
    by_name = {n.name: n for n in nodes}
    first, second = by_name["worker-0"], by_name["worker-1"]
    early = [n for n in nodes if n is not second]
    devnet.start(early)
    devnet.wait_for_height(early, 1, STEP_TIMEOUT_S)
    manager, requester, provider = (Participant(devnet, by_name[n]) for n in ("manager-0", "follower-0", "provider-0"))
    market = open_market(provider, manager, [requester])
    addresses = [devnet.address_of(n.name) for n in nodes]
    assert supply(manager, addresses) == START_BALANCE * len(nodes)

    task_id = request_task(requester, market, trust=1)
    # Killed the moment the scheduler hands it the replicate: it can neither contribute nor say it left.
    wait_for_line(devnet.node_dir("manager-0") / LOG_FILE, "event=replicate-assigned", f"task={task_id.hex()[:16]}",
                  f"worker={hex_address(devnet.address_of(first.name))}")
    os.kill(first.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    survivors = [n for n in early if n is not first]
    devnet.start([second], running=survivors, also_join=("manager-0", "provider-0"))

    survivors.append(second)
    task = wait_settled(requester, task_id, SETTLE_TIMEOUT_S, still_running(devnet, survivors))
    assert task.status == TaskStatus.COMPLETED
    assert task.contributors == (devnet.address_of(second.name),)
    reassigned = wait_for_line(devnet.node_dir("manager-0") / LOG_FILE, "event=replicate-assigned",
                               f"task={task_id.hex()[:16]}", f"worker={hex_address(devnet.address_of(second.name))}")
    assert reassigned  # the scheduler gave the lost replicate to the newcomer
    assert time.monotonic() - killed_at < SETTLE_TIMEOUT_S
    assert '"words":36' in result_text(requester.call(FetchResultRequest(task_id)))

    height = requester.call(TaskRequest(task_id)).height
    devnet.wait_for_height(survivors, height, STEP_TIMEOUT_S)
    assert supply(manager, addresses) == START_BALANCE * len(nodes)  # no RLC created or lost
    assert supply(requester, addresses) == START_BALANCE * len(nodes)


def test_provider_offline_fails_the_task_and_claim_refunds_the_requester(devnet: Devnet) -> None:
    nodes = devnet.create(1, 1, extra=demo_nodes(1, dishonest=False), categories=FAST_CATEGORIES)
    by_name = {n.name: n for n in nodes}
    devnet.start(nodes)
    devnet.wait_for_height(nodes, 1, STEP_TIMEOUT_S)
    manager, requester, provider = (Participant(devnet, by_name[n]) for n in ("manager-0", "follower-0", "provider-0"))
    market = open_market(provider, manager, [requester])
    addresses = [devnet.address_of(n.name) for n in nodes]
    before: AccountInfo = requester.call(AccountRequest(b""))
    pool_owner_before, kitty_before = manager.holdings(), manager.holdings(KITTY_ADDRESS)

    started = requester.call(RunRequest(
        app=market.app, dataset=market.dataset, workerpool=market.pool, args="words", trust=1, category=0,
        max_price=MAX_PRICE))
    # Gone before the deal is even committed (the orders are in every book already): no worker can fetch
    # the bundle or the dataset, nor get the key.
    os.kill(by_name["provider-0"].pid, signal.SIGKILL)
    deal: DealInfo = wait_deal(requester, started.deal_id)
    assert deal.deal is not None
    frozen: AccountInfo = requester.call(AccountRequest(b""))
    assert frozen.frozen == before.frozen + started.task_price  # the escrow holds the task price

    # The manager's scheduler claims once the block time passes the final deadline (10T = 20 s).
    live = [n for n in nodes if n.name != "provider-0"]
    task = wait_settled(requester, task_id_for(started.deal_id, 0), SETTLE_TIMEOUT_S, still_running(devnet, live))
    assert task.status == TaskStatus.FAILED
    assert task.contributors == ()

    devnet.wait_for_height(live, requester.call(DealRequest(started.deal_id)).height, STEP_TIMEOUT_S)
    after: AccountInfo = requester.call(AccountRequest(b""))
    assert (after.balance, after.frozen) == (before.balance, before.frozen)  # refunded in full
    stake = deal.deal.pool_stake_per_task
    assert manager.holdings() == pool_owner_before - stake  # the pool's stake went to the kitty
    assert manager.holdings(KITTY_ADDRESS) == kitty_before + stake
    for observer in (manager, requester):
        assert supply(observer, addresses) == START_BALANCE * len(nodes)  # no RLC created or lost
