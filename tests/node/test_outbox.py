"""The outbox: our transactions take consecutive nonces, are re-announced with back-off while pending, and a
transaction a block made invalid is reported as dropped; our orders are re-announced until spent."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from node.admission import Admission
from node.net.bulk_lane import BulkLane
from node.outbox import DROPPED, PENDING, REANNOUNCE_MAX_S, REANNOUNCE_S, UNKNOWN, Outbox
from node.storage import Store
from node.topics import Topics
from protocols.chain import LedgerApplication
from protocols.consensus.mempool import Mempool
from protocols.encoding import encode
from protocols.ledger.transactions import Transfer
from tests.support import CHAIN_ID, RLC, Market


class Gossip:
    """What the outbox uses of a host: publishing one item on a topic, and the bulk lane."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.bulk_lane = BulkLane()

    async def publish_item(self, topic: str, item: bytes) -> None:
        self.sent.append((topic, item))


def outbox_of(market: Market, name: str, store: Store) -> tuple[Outbox, Gossip, Mempool, LedgerApplication]:
    app = LedgerApplication(market.ledger, last_block_time=market.now)
    mempool = Mempool(app)
    gossip = Gossip()
    outbox = Outbox(
        market.wallets[name].keypair, Topics(CHAIN_ID), gossip, mempool,  # type: ignore[arg-type]
        Admission(backlog_s=30, floor=100, window_s=30), lambda: market.ledger.state.view(), lambda: None,
        store, app.decode,
    )
    return outbox, gossip, mempool, app


async def test_pending_transactions_take_consecutive_nonces_and_back_off(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    market = Market.create()
    outbox, gossip, _, _ = outbox_of(market, "w1", Store(tmp_path / "node.db"))
    first = await outbox.submit(Transfer(market.addr("poor"), RLC))
    second = await outbox.submit(Transfer(market.addr("poor"), RLC))
    assert second.nonce == first.nonce + 1
    assert outbox.status(first.tx_id) == PENDING and outbox.status(b"\x00" * 32) == UNKNOWN
    txs = Topics(CHAIN_ID).txs
    assert gossip.sent == [(txs, encode(first)), (txs, encode(second))]
    gossip.sent.clear()
    announced_at: list[float] = []  # when each round of re-announcements went out
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outbox.run)
        while trio.current_time() < 200:
            before = len(gossip.sent)
            await trio.sleep(REANNOUNCE_S)
            if len(gossip.sent) > before:
                announced_at.append(trio.current_time())
        nursery.cancel_scope.cancel()
    gaps = [b - a for a, b in zip(announced_at, announced_at[1:])]
    assert gaps == sorted(gaps) and max(gaps) <= REANNOUNCE_MAX_S + REANNOUNCE_S and gaps[-1] > 2 * REANNOUNCE_S
    outbox.committed([first.tx_id, second.tx_id], [])
    assert outbox.status(first.tx_id) == UNKNOWN and not outbox.is_pending(second.tx_id)


async def test_a_transaction_a_block_made_invalid_is_reported_dropped(tmp_path: Path) -> None:
    market = Market.create()
    outbox, _, mempool, app = outbox_of(market, "w1", Store(tmp_path / "node.db"))
    tx = await outbox.submit(Transfer(market.addr("poor"), RLC))
    rival = market.signed("w1", Transfer(market.addr("appdev"), RLC))  # the same nonce, sent elsewhere
    app.commit_block((encode(rival),), market.now + 1)
    mempool.update((encode(rival),))
    mempool.recheck_all()
    assert outbox.status(tx.tx_id) == DROPPED
    assert (await outbox.submit(Transfer(market.addr("poor"), RLC))).nonce == rival.nonce + 1


async def test_a_restart_keeps_pending_transactions_and_the_reasons_of_dropped_ones(tmp_path: Path) -> None:
    """What the outbox held survives the process: a pending transaction is admitted and announced again, a
    dropped one is still explained, and the next transaction does not reuse a pending one's nonce."""
    market = Market.create()
    outbox, _, mempool, app = outbox_of(market, "w1", Store(tmp_path / "node.db"))
    dropped = await outbox.submit(Transfer(market.addr("poor"), RLC))
    rival = market.signed("w1", Transfer(market.addr("appdev"), RLC))  # takes `dropped`'s nonce in a block
    app.commit_block((encode(rival),), market.now + 1)
    mempool.update((encode(rival),))
    mempool.recheck_all()
    pending = await outbox.submit(Transfer(market.addr("poor"), RLC))
    assert outbox.status(dropped.tx_id) == DROPPED

    restarted, gossip, _, _ = outbox_of(market, "w1", Store(tmp_path / "node.db"))
    restarted.restore()
    assert restarted.status(pending.tx_id) == PENDING and restarted.status(dropped.tx_id) == DROPPED
    assert (await restarted.submit(Transfer(market.addr("poor"), RLC))).nonce == pending.nonce + 1
