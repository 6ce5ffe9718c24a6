"""The node's SQLite store: blocks, state and outcomes survive a reopen; another chain's directory is refused."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from node.storage import Store, StoreError
from protocols.chain import LedgerApplication
from protocols.consensus.messages import Block, Certificate, Step, block_id
from protocols.crypto import Keypair
from protocols.encoding import encode
from protocols.ledger.ledger import Ledger
from protocols.ledger.state import LedgerState
from protocols.ledger.transactions import Transfer
from tests.consensus.helpers import vote
from tests.support import RLC, Market


def decided(height: int, txs: tuple[bytes, ...], time: int) -> tuple[Block, Certificate]:
    block = Block(height, time, bytes(32), bytes(32), txs, None)
    return block, Certificate(height, 0, block_id(block), ())


def test_committed_block_and_state_survive_a_reopen(tmp_path: Path) -> None:
    market = Market.create()
    app = LedgerApplication(market.ledger, last_block_time=market.now)
    tx = market.signed("w1", Transfer(market.addr("poor"), RLC))
    store = Store(tmp_path / "node.db")
    store.bind_genesis(b"g" * 32)
    store.write_genesis_state(market.ledger.state.items())
    block, cert = decided(1, (encode(tx),), market.now + 1)
    committed = app.commit_block(block.txs, block.time)
    store.commit_block(block, cert, committed, [tx.tx_id])
    store.close()

    reopened = Store(tmp_path / "node.db")
    reopened.bind_genesis(b"g" * 32)
    tip = reopened.tip()
    assert tip is not None and tip.height == 1 and tip.block_id == block_id(block)
    state = LedgerState(dict(reopened.load_state()))
    assert state.digest() == market.ledger.state.digest()
    result = reopened.tx_result(tx.tx_id)
    assert result is not None and result.code == "ok" and result.height == 1
    assert reopened.decided_block(1) == (block, cert)


def test_another_chains_directory_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "node.db")
    store.bind_genesis(b"a" * 32)
    with pytest.raises(StoreError, match="another --data-dir"):
        store.bind_genesis(b"b" * 32)


def test_orders_and_signed_messages_round_trip(tmp_path: Path) -> None:
    market = Market.create()
    store = Store(tmp_path / "node.db")
    orders = [(market.app_order(), 5), (market.request_order(), 7)]
    store.save_orders(orders)
    assert store.load_orders() == orders
    store.delete_orders([orders[0][0].payload_digest])
    assert store.load_orders() == orders[1:]


def test_failed_block_write_leaves_nothing(tmp_path: Path) -> None:
    market = Market.create()
    store = Store(tmp_path / "node.db")
    block, cert = decided(1, (), 5)
    committed = LedgerApplication(Ledger(market.ledger.rules, LedgerState()), 0).commit_block((), 5)
    store.commit_block(block, cert, committed, [])
    with pytest.raises(sqlite3.IntegrityError):
        store.commit_block(block, cert, committed, [])  # same height twice: the insert fails
    assert store.block_hashes() == [(1, block_id(block))]


def test_the_outbox_keeps_pending_transactions_until_committed_and_the_reason_of_dropped_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    market = Market.create()
    app = LedgerApplication(market.ledger, last_block_time=market.now)
    store = Store(tmp_path / "node.db")
    txs = [market.signed("w1", Transfer(market.addr("poor"), RLC)) for _ in range(3)]
    for tx in txs:
        store.save_outbox(tx.tx_id, encode(tx))
    store.reject_outbox(txs[1].tx_id, "dropped from the mempool: no longer valid")
    block, cert = decided(1, (encode(txs[0]),), market.now + 1)
    store.commit_block(block, cert, app.commit_block(block.txs, block.time), [txs[0].tx_id])
    store.close()

    reopened = Store(tmp_path / "node.db")
    assert reopened.load_outbox() == [
        (txs[1].tx_id, b"", "dropped from the mempool: no longer valid"),
        (txs[2].tx_id, encode(txs[2]), None),
    ]
    monkeypatch.setattr("node.storage.MAX_REJECTED_KEPT", 1)
    reopened.reject_outbox(txs[2].tx_id, "dropped after a restart: bad-nonce")
    assert reopened.load_outbox() == [(txs[2].tx_id, b"", "dropped after a restart: bad-nonce")]
    reopened.close()


def test_signed_messages_saved_from_a_worker_thread_survive_a_reopen(tmp_path: Path) -> None:
    """The consensus driver stores what it signed from a worker thread (its own connection) while the event
    loop keeps using the main one; a block's commit removes the messages of its height and below."""
    keypair = Keypair.generate()
    store = Store(tmp_path / "node.db")
    first = [vote(keypair, 1, 0, Step.PREVOTE), vote(keypair, 1, 0, Step.PRECOMMIT)]
    later = [vote(keypair, 2, 0, Step.PREVOTE)]
    worker = threading.Thread(target=store.save_signed, args=(first,))
    worker.start()
    worker.join()
    store.save_signed(later)
    assert store.signed_messages() == first + later
    store.close()
    reopened = Store(tmp_path / "node.db")
    assert reopened.signed_messages() == first + later
    block, certificate = decided(1, (), 1)
    market = Market.create()
    reopened.commit_block(block, certificate, LedgerApplication(Ledger(market.ledger.rules, LedgerState()), 0).commit_block((), 1), [])
    assert reopened.signed_messages() == later
