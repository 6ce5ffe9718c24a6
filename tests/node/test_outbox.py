"""The outbox: our transactions take consecutive nonces, are re-announced with back-off while pending, and a
transaction a block made invalid is reported as dropped; our orders are re-announced until spent."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from node.admission import Admission
from node.net.bulk_lane import BulkLane
from node.outbox import DROPPED, OVERDUE_BLOCKS, PENDING, REANNOUNCE_MAX_S, REANNOUNCE_S, UNKNOWN, Outbox, PendingTx
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


def test_on_a_busy_chain_a_pending_transaction_waits_for_blocks_not_seconds() -> None:
    """500 transactions were ahead of it: it goes out again only once blocks of 250 committed those and
    OVERDUE_BLOCKS more without it, however long that took; the silence back-off does not apply meanwhile."""
    pending = PendingTx(nonce=0, data=b"tx", announced_at=0.0, ahead=500)
    blocks_until_due = 0
    now = 0.0
    while not pending.due(now, last_commit=now):
        now += 5.0  # a slow chain: a block every 5 s, longer than REANNOUNCE_S
        pending.on_block(250)
        blocks_until_due += 1
    assert blocks_until_due == 2 + OVERDUE_BLOCKS
    pending.reannounced(now, ahead=10)
    assert pending.interval == REANNOUNCE_S and not pending.due(now + 1, last_commit=now)


def test_on_a_silent_chain_a_pending_transaction_goes_out_again_with_back_off() -> None:
    pending = PendingTx(nonce=0, data=b"tx", announced_at=0.0, ahead=0)
    assert not pending.due(REANNOUNCE_S - 0.1, last_commit=-1e9) and pending.due(REANNOUNCE_S, last_commit=-1e9)
    pending.reannounced(REANNOUNCE_S, ahead=0)
    assert pending.interval == 2 * REANNOUNCE_S
    assert not pending.due(2 * REANNOUNCE_S, last_commit=-1e9)


async def test_a_pending_transaction_the_blocks_pass_by_is_announced_again(
    autojump_clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    market = Market.create()
    outbox, gossip, _, _ = outbox_of(market, "w1", Store(tmp_path / "node.db"))
    tx = await outbox.submit(Transfer(market.addr("poor"), RLC))  # the mempool holds it alone
    gossip.sent.clear()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outbox.run)
        await trio.sleep(0.5)  # (no block at the same instant as one of the outbox's rounds, every 3 s)
        for _ in range(1 + OVERDUE_BLOCKS):  # others' blocks, one a second, none longer apart than 3 s
            assert gossip.sent == []
            outbox.committed([b"\x01" * 32], [])
            await trio.sleep(1.0)
        await trio.sleep(REANNOUNCE_S - trio.current_time() + 0.5)  # the first round after the blocks
        nursery.cancel_scope.cancel()
    assert gossip.sent == [(Topics(CHAIN_ID).txs, encode(tx))]


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
