"""The devnet demo: a real multi-process network where managers match gossiped orders into a deal.

A provider registers an app and a dataset and publishes their orders; every manager has registered a
workerpool and offers it; a requester on a follower node publishes a request order; the next block
proposer's matching engine submits the match, the managers agree on the block, and the deal appears on
every node. The demo prints each step with the time it took, then stops the network.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from devnet.network import Devnet, DevnetError, NodeSpec
from node.control import (
    AccountInfo,
    AccountRequest,
    ControlClient,
    DealInfo,
    DealRequest,
    OrderbookRequest,
    OrderList,
    PublishOrderRequest,
    SubmitRequest,
    TxResultInfo,
    TxResultRequest,
    TxSubmitted,
)
from protocols.crypto import ZERO_ADDRESS, hex_address
from protocols.genesis import NRLC_PER_RLC
from protocols.ledger.transactions import RegisterApp, RegisterDataset, TxBody
from protocols.matching import deal_id_for
from protocols.orders import NO_TAG, AppOrder, DatasetOrder, RequestOrder, WorkerpoolOrder

T = TypeVar("T")
STEP_TIMEOUT_S = 60.0


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = STEP_TIMEOUT_S) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.05)
    raise DevnetError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class Participant:
    """One node of the devnet, driven through its control socket."""

    def __init__(self, devnet: Devnet, node: NodeSpec) -> None:
        self.name = node.name
        self.client = ControlClient(devnet.node_dir(node.name))
        self.address = self.client.call(AccountRequest(b"")).address  # type: ignore[attr-defined]

    def transact(self, body: TxBody) -> bytes:
        submitted = self.client.call(SubmitRequest(body))
        assert isinstance(submitted, TxSubmitted)

        def committed() -> TxResultInfo | None:
            result = self.client.call(TxResultRequest(submitted.tx_id))
            assert isinstance(result, TxResultInfo)
            if result.height == 0 and result.code != "pending":
                raise DevnetError(f"{self.name}: {type(body).__name__} not committed: {result.code}")
            return result if result.height else None

        return wait_for(f"{type(body).__name__} by {self.name}", committed).created

    def orders(self, kind: str) -> tuple:  # type: ignore[type-arg]
        answer = self.client.call(OrderbookRequest(kind))
        assert isinstance(answer, OrderList)
        return answer.orders

    def deal(self, deal_id: bytes) -> DealInfo:
        answer = self.client.call(DealRequest(deal_id))
        assert isinstance(answer, DealInfo)
        return answer

    def balance(self) -> int:
        info = self.client.call(AccountRequest(b""))
        assert isinstance(info, AccountInfo)
        return info.balance


def step(text: str) -> float:
    print(f"\n== {text}")
    return time.monotonic()


def done(started: float, text: str) -> None:
    print(f"   {text} ({(time.monotonic() - started) * 1000:.0f} ms)")


def run_demo(root: Path, managers: int, followers: int) -> None:
    devnet = Devnet(root)
    nodes = devnet.create(managers, max(followers, 1), extra=[("provider-0", "provider")])
    t = step(f"starting {len(nodes)} nodes ({managers} managers) on 127.0.0.1")
    try:
        devnet.start(nodes)
        devnet.wait_for_height(nodes, 1, STEP_TIMEOUT_S)
        done(t, "every node is up and the chain has its first block")
        demo_story(devnet, nodes)
    finally:
        killed = devnet.stop(nodes)
        print(f"\nnetwork stopped{' (killed: ' + ', '.join(killed) + ')' if killed else ''}; logs remain in {root}")


def demo_story(devnet: Devnet, nodes: list[NodeSpec]) -> None:
    by_name = {n.name: n for n in nodes}
    everyone = [Participant(devnet, n) for n in nodes]
    provider = Participant(devnet, by_name["provider-0"])
    requester = Participant(devnet, by_name["follower-0"])

    t = step("the provider registers an app and a dataset")
    app = provider.transact(RegisterApp("word-count", hashlib.sha256(b"word-count bundle").digest()))
    dataset = provider.transact(RegisterDataset("novels", hashlib.sha256(b"encrypted novels").digest()))
    done(t, f"app {hex_address(app)}, dataset {hex_address(dataset)}")

    t = step("the provider publishes app and dataset orders; the managers offer their workerpools")
    provider.client.call(PublishOrderRequest(AppOrder(
        app, NRLC_PER_RLC, 1_000_000, NO_TAG, ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, os.urandom(16))))
    provider.client.call(PublishOrderRequest(DatasetOrder(
        dataset, 2 * NRLC_PER_RLC, 1_000_000, NO_TAG, ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, os.urandom(16))))
    pools = wait_for(
        "workerpool orders at the requester",
        lambda: (o := requester.orders("workerpool")) and len(o) >= len([n for n in nodes if "manager" in n.roles]) and o or None,
    )
    wait_for("app and dataset orders at the requester", lambda: requester.orders("app") and requester.orders("dataset") or None)
    cheapest = min(pools, key=lambda o: o.workerpool_price)
    assert isinstance(cheapest, WorkerpoolOrder)
    done(t, f"{len(pools)} workerpool orders, cheapest {cheapest.workerpool_price / NRLC_PER_RLC} RLC per task")

    t = step(f"{requester.name} publishes a request order (trust 1, one task)")
    request = RequestOrder(
        app=app, app_max_price=NRLC_PER_RLC, dataset=dataset, dataset_max_price=2 * NRLC_PER_RLC,
        workerpool=ZERO_ADDRESS, workerpool_max_price=5 * NRLC_PER_RLC, requester=requester.address,
        volume=1, tag=NO_TAG, category=0, trust=1, beneficiary=requester.address, callback=ZERO_ADDRESS,
        params='{"iexec_args": "--count words"}', salt=os.urandom(16),
    )
    published = requester.client.call(PublishOrderRequest(request))
    request_hash = published.order_hash  # type: ignore[attr-defined]
    deal_id = deal_id_for(request_hash, 0)
    deal = wait_for("the deal on the requester's node", lambda: requester.deal(deal_id).deal)
    done(t, f"matched into deal 0x{deal_id.hex()[:16]}... at height {requester.deal(deal_id).height}")

    t = step("every node agrees on the deal")
    for participant in everyone:
        wait_for(f"the deal on {participant.name}", lambda p=participant: p.deal(deal_id).deal)
    done(t, f"the deal is on all {len(everyone)} nodes")

    print(f"\nDeal 0x{deal_id.hex()}")
    print(f"  app         {hex_address(deal.app.pointer)} at {deal.app.price / NRLC_PER_RLC} RLC")
    print(f"  dataset     {hex_address(deal.dataset.pointer)} at {deal.dataset.price / NRLC_PER_RLC} RLC")
    print(f"  workerpool  {hex_address(deal.workerpool.pointer)} at {deal.workerpool.price / NRLC_PER_RLC} RLC")
    print(f"  requester   {requester.name} {hex_address(deal.requester)}")
    print(f"  tasks       {deal.bot_size}, trust {deal.trust}, escrow {deal.task_price / NRLC_PER_RLC} RLC locked")
    print()
    from devnet.__main__ import print_table

    print_table(devnet, nodes)
