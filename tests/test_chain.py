"""The ledger behind consensus: mempool checks, block dry runs, commits and deadlines."""

from __future__ import annotations

import pytest

from protocols.chain import LedgerApplication
from protocols.encoding import encode
from protocols.ledger.records import TaskStatus
from protocols.ledger.transactions import InitializeTask, MatchOrders, Transfer
from tests.support import RLC, T_MS, Market
from tests.test_ledger_poco import contribute_and_finalize


@pytest.fixture
def market() -> Market:
    return Market.create()


def app_of(market: Market) -> LedgerApplication:
    return LedgerApplication(market.ledger, last_block_time=market.now)


def transfer(market: Market, sender: str, amount: int = RLC) -> bytes:
    return encode(market.signed(sender, Transfer(market.addr("poor"), amount)))


def test_mempool_admits_consecutive_nonces_of_one_sender(market: Market) -> None:
    app = app_of(market)
    first, second = transfer(market, "w1"), transfer(market, "w1")
    assert app.check_tx(first) is None
    assert app.check_tx(second) is None  # nonce n+1 is valid on top of the admitted n
    assert app.check_tx(first) == "bad-nonce"


def test_mempool_rejects_garbage_and_invalid_transactions(market: Market) -> None:
    app = app_of(market)
    assert app.check_tx(b"\x93\x01\x02").startswith("undecodable")
    assert app.check_tx(transfer(market, "poor")) == "insufficient-balance"


def test_block_with_a_failing_transaction_is_invalid(market: Market) -> None:
    app = app_of(market)
    good = transfer(market, "w1")
    spent = transfer(market, "w2", amount=10**20 // 10**3)
    assert app.validate_block_txs((good,), market.now + 1) is None
    assert app.validate_block_txs((good, spent), market.now + 1) == "tx 1 rejected: insufficient-balance"
    assert app.validate_block_txs((good,), market.now) == "block-time-not-increasing"
    assert app.validate_block_txs((b"junk",), market.now + 1).startswith("tx 0 undecodable")


def test_commit_applies_the_block_and_resets_the_mempool_view(market: Market) -> None:
    app = app_of(market)
    tx = transfer(market, "w1")
    digest = app.state_digest()
    assert app.validate_block_txs((tx,), market.now + 5) is None
    committed = app.commit_block((tx,), market.now + 5)
    assert committed.outcomes[0].ok and committed.writes
    assert app.state_digest() != digest
    assert app.last_block_time == market.now + 5
    assert market.account("poor").balance == RLC
    assert app.check_tx(tx) == "bad-nonce"  # now committed


def test_deadlines_of_open_tasks_ask_for_empty_blocks(market: Market) -> None:
    app = app_of(market)
    assert app.next_deadline() is None
    body = MatchOrders(market.app_order(), market.dataset_order(), market.pool_order(), market.request_order())
    deal_tx = encode(market.signed("requester", body))
    committed = app.commit_block((deal_tx,), market.now + 1)
    deal_id = committed.outcomes[0].created
    init = encode(market.signed("w1", InitializeTask(deal_id, 0)))
    app.commit_block((init,), market.now + 2)
    start = market.deal(deal_id).start_time
    assert app.next_deadline() == start + 7 * T_MS
    app.commit_block((), start + 7 * T_MS)
    assert app.next_deadline() == start + 10 * T_MS
    assert market.task(market.task_id(deal_id)).status == TaskStatus.ACTIVE


def test_a_transaction_above_the_chains_size_limit_is_undecodable(market: Market) -> None:
    """The chain's max_tx_bytes (ChainParams), not only the hard bound, limits what the application decodes."""
    tx = transfer(market, "w1")
    small = LedgerApplication(market.ledger, last_block_time=market.now, max_tx_bytes=len(tx) - 1)
    assert "exceeds the limit" in str(small.check_tx(tx))
    assert app_of(market).check_tx(tx) is None


def test_a_completed_tasks_deadlines_ask_for_no_empty_block_on_any_node(market: Market) -> None:
    """Whether an empty block is valid depends on the state only: a node that watched a task end and a node
    started since (which loads only the open tasks) agree, else the restarted node rejects a certified empty
    block while syncing and never catches up (the chaos runner with app runs found this)."""
    task_id = market.start_task(trust=1)
    live = app_of(market)  # tracks the open task's deadlines
    assert live.next_deadline() == market.task(task_id).contribution_deadline
    done = encode(market.signed("w1", contribute_and_finalize(market, "w1", task_id, b"\x01" * 32)))
    live.commit_block((done,), market.now + 1)
    assert market.task(task_id).status == TaskStatus.COMPLETED
    restarted = LedgerApplication(market.ledger, last_block_time=live.last_block_time)
    assert live.next_deadline() == restarted.next_deadline() is None
