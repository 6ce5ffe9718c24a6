"""A transaction a node accepted survives the node's restart: it is re-admitted and re-announced, and the
node does not sign another one with its nonce.

The chaos runner found the loss: a transfer accepted by a node killed a moment later (before its gossip
went out) was gone after the restart, the node answered "unknown transaction" about it, and signed its
next transfer with the same nonce."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from node.control import TxResultInfo, TxResultRequest
from protocols.ledger.transactions import Transfer
from tests.integration.support import Cluster

pytestmark = pytest.mark.slow


async def test_a_pending_transaction_survives_a_restart_and_commits(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery, tmp_path, managers=1, followers=1)
        follower = await cluster.start("f0", join=())  # alone: what it accepts cannot leave it
        tx = await follower.submit(Transfer(cluster.members["m0"].address, 1))
        assert await follower.handle_control(TxResultRequest(tx.tx_id)) == TxResultInfo(0, "pending", b"")
        await cluster.stop("f0")

        await cluster.start("m0", join=())
        follower = await cluster.start("f0", join=("m0",))
        assert await follower.handle_control(TxResultRequest(tx.tx_id)) == TxResultInfo(0, "pending", b""), (
            "the restarted node forgot the transaction it had accepted")
        await cluster.wait_until(lambda: follower.store.tx_result(tx.tx_id) is not None, "the restored transaction to commit")
        assert follower.store.load_outbox() == []  # the block that committed it took it out
        following = await follower.submit(Transfer(cluster.members["m0"].address, 1))
        assert following.nonce == tx.nonce + 1
        nursery.cancel_scope.cancel()
