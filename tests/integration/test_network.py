"""Real nodes on loopback agree: a transfer and a market deal reach every node, the chain survives a
crashed manager, and nodes that were down or started late catch up by sync to the same chain."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from node.control import (
    ControlClient,
    SubmitRequest,
    TxResultInfo,
    TxResultRequest,
    TxSubmitted,
)
from protocols.crypto import ZERO_ADDRESS
from protocols.genesis import NRLC_PER_RLC
from protocols.ledger.market import asset_address
from protocols.ledger.transactions import RegisterApp, RegisterDataset, Transfer
from protocols.matching import deal_id_for
from protocols.orders import (
    NO_TAG,
    AppOrder,
    DatasetOrder,
    RequestOrder,
    WorkerpoolOrder,
)
from tests.integration.support import START_BALANCE, Cluster

# Real nodes on a shared 2-core machine: py-libp2p gossip timing under load occasionally needs another
# try (see the closing notes of issue 4); a failure that repeats is a real one.
pytestmark = [pytest.mark.slow, pytest.mark.flaky(reruns=1)]


async def test_transfers_through_a_follower_reach_every_node(network: Cluster) -> None:
    """A follower is not a validator: its transactions must travel by gossip to the managers, and the block
    back to every follower. Both entry points are used: the node API and the control socket."""
    await network.transfer("f0", "f1", 7 * NRLC_PER_RLC)

    client = ControlClient(network.members["f1"].data_dir, timeout_s=5)
    submitted = await trio.to_thread.run_sync(
        client.call, SubmitRequest(Transfer(network.members["m2"].address, 5))
    )
    assert isinstance(submitted, TxSubmitted)
    await network.wait_until(
        lambda: all(
            n.store.tx_result(submitted.tx_id) is not None for n in network.running
        ),
        "the control-API transfer",
    )
    result = await trio.to_thread.run_sync(
        client.call, TxResultRequest(submitted.tx_id)
    )
    assert (
        isinstance(result, TxResultInfo) and result.code == "ok" and result.height > 0
    )

    fee_free_f1 = START_BALANCE + 7 * NRLC_PER_RLC - 5
    for node in network.running:
        assert (
            node.ledger_view().account(network.members["f1"].address).balance
            == fee_free_f1
        )
        assert (
            node.ledger_view().account(network.members["f0"].address).balance
            == START_BALANCE - 7 * NRLC_PER_RLC
        )
    network.assert_agree()
    # Once linked, the managers' votes go straight to each other too, not only by gossip (consensus_link.py).
    links = [n.links for n in network.running if n.links is not None]
    assert len(links) == 4
    await network.wait_until(lambda: all(len(link.linked) == 3 for link in links), "every manager linked to the others")
    before = [link.delivered for link in links]
    await network.transfer("f0", "f1")
    # Each manager hears the height's messages over its links, though not necessarily before the commit the
    # transfer waited for: a quorum decides without the slowest manager's copies (gossip may win the race).
    await network.wait_until(
        lambda: all(link.delivered > count for link, count in zip(links, before)), "consensus messages over every link"
    )


async def test_gossiped_orders_are_matched_into_a_deal_on_every_node(
    network: Cluster,
) -> None:
    """The market end to end: a provider's assets and orders, the managers' workerpool offers and a
    follower's request all meet in the managers' order books, and the proposer's match becomes a deal that
    every node's ledger holds."""
    app = (await network.commit("f0", RegisterApp("word-count", b"\x01" * 32))).tx_id
    app = network["f0"].store.tx_result(app).created  # type: ignore[union-attr]
    dataset = (
        await network.commit("f0", RegisterDataset("novels", b"\x02" * 32))
    ).tx_id
    dataset = network["f0"].store.tx_result(dataset).created  # type: ignore[union-attr]
    provider = network["f0"]
    await provider.publish_order(
        AppOrder(
            app,
            NRLC_PER_RLC,
            1_000,
            NO_TAG,
            ZERO_ADDRESS,
            ZERO_ADDRESS,
            ZERO_ADDRESS,
            os.urandom(16),
        )
    )
    await provider.publish_order(
        DatasetOrder(
            dataset,
            NRLC_PER_RLC,
            1_000,
            NO_TAG,
            ZERO_ADDRESS,
            ZERO_ADDRESS,
            ZERO_ADDRESS,
            os.urandom(16),
        )
    )
    # A pool offers tasks only for ready workers, and this cluster runs none: its owner offers by hand, as
    # `pocnet order publish workerpool` would.
    manager = network["m0"]
    pool = asset_address(manager.keypair.address, "workerpool", 0)  # a manager's first transaction
    await network.wait_until(lambda: manager.ledger_view().workerpool(pool) is not None, "m0's workerpool")
    await manager.publish_order(
        WorkerpoolOrder(pool, NRLC_PER_RLC, 10, NO_TAG, 0, 5, ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, os.urandom(16))
    )
    requester = network["f1"]
    # The request can only match once the requester's book (and so the managers') has every side.
    await network.wait_until(
        lambda: (
            {type(o) for o in requester.order_book.orders()}
            >= {AppOrder, DatasetOrder, WorkerpoolOrder}
        ),
        "app, dataset and workerpool orders at the requester",
    )
    request = await requester.publish_order(
        RequestOrder(
            app=app,
            app_max_price=NRLC_PER_RLC,
            dataset=dataset,
            dataset_max_price=NRLC_PER_RLC,
            workerpool=ZERO_ADDRESS,
            workerpool_max_price=5 * NRLC_PER_RLC,
            requester=requester.keypair.address,
            volume=1,
            tag=NO_TAG,
            category=0,
            trust=1,
            beneficiary=requester.keypair.address,
            callback=ZERO_ADDRESS,
            params="",
            salt=os.urandom(16),
        )
    )
    deal_id = deal_id_for(request.payload_digest, 0)
    await network.wait_until(
        lambda: all(n.ledger_view().deal(deal_id) is not None for n in network.running),
        "the deal on every node",
    )
    deals = {n.ledger_view().deal(deal_id) for n in network.running}
    assert len(deals) == 1
    (deal,) = deals
    assert deal.requester == requester.keypair.address and deal.app.pointer == app  # type: ignore[union-attr]
    # The spent request leaves every book once the block is in.
    await network.wait_until(
        lambda: all(
            request.payload_digest not in n.order_book for n in network.running
        ),
        "the request pruned",
    )
    network.assert_agree()


async def test_chain_keeps_committing_without_one_manager(network: Cluster) -> None:
    """Four managers tolerate one fault (f = 1): with a manager gone, the three left still form a quorum,
    also in heights where the dead one would have proposed (a round change)."""
    await network.stop("m3")
    alive = [name for name in network.members if name != "m3"]
    for _ in range(
        3
    ):  # three heights: the proposer rotates, so one of them is likely the dead manager's
        await network.transfer("f0", "f1", on=alive)
    network.assert_agree(alive)


async def test_a_late_node_catches_up_by_sync(tmp_path: Path) -> None:
    """Blocks are only made when there are transactions: a node started after several blocks gets them from
    its peers' stores over /pocnet/sync/1, then follows the chain like everyone else."""
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery, tmp_path, managers=4, followers=2)
        for name in ("m0", "m1", "m2", "m3", "f0"):
            await cluster.start(name)
        await cluster.wait_for_mesh()
        for _ in range(3):
            await cluster.transfer("f0", "m1")
        tip = cluster["m0"].height
        assert tip >= 3
        await cluster.start(
            "f1", join=("m1", "f0")
        )  # never ran: its whole chain comes from sync
        await cluster.transfer(
            "f0", "m2"
        )  # its gossip tells f1 the height, if its catch-up missed the peers
        assert [h for h, _ in cluster["f1"].store.block_hashes()] == list(
            range(1, tip + 2)
        )
        cluster.assert_agree()
        nursery.cancel_scope.cancel()


async def test_a_restarted_manager_catches_up_and_votes_again(tmp_path: Path) -> None:
    """A manager stopped while the others go on restarts on the same data directory (its signed-message
    log included), fetches the blocks it missed by sync, and takes part in consensus again."""
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery, tmp_path, managers=4, followers=1)
        await cluster.start_all()
        await cluster.transfer("f0", "m0")
        await cluster.stop("m3")
        survivors = ["m0", "m1", "m2", "f0"]
        for _ in range(3):
            await cluster.transfer("f0", "m1", on=survivors)
        tip = cluster["m0"].height
        await cluster.start("m3", join=("m1", "m2"))
        assert cluster["m3"].height == tip  # caught up before it serves: the fetched blocks are applied
        await cluster.transfer("f0", "m2")
        assert cluster["m3"].height == tip + 1
        await cluster.stop("m0")  # the quorum is now m1, m2 and the restarted m3
        await cluster.transfer("f0", "m2", on=["m1", "m2", "m3", "f0"])
        cluster.assert_agree()
        nursery.cancel_scope.cancel()
