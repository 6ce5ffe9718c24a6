"""Ledger transactions of the market: envelope checks, transfer, registration, MatchOrders, CancelOrder."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocols.crypto import Keypair
from protocols.ledger.ledger import Ledger, apply
from protocols.ledger.market import WORKERPOOL_STAKE_RATIO, asset_address
from protocols.ledger.state import APP
from protocols.ledger.transactions import CancelOrder, MatchOrders, RegisterApp, Transaction, Transfer
from protocols.wallet import Wallet
from tests.support import (
    APP_PRICE,
    DATASET_PRICE,
    POOL_PRICE,
    RLC,
    START_BALANCE,
    Market,
    make_genesis,
    total_supply,
)


@pytest.fixture
def market() -> Market:
    return Market.create()


def test_genesis_allocations_are_the_initial_balances() -> None:
    ledger = Ledger.from_genesis(make_genesis())
    assert total_supply(ledger) == make_genesis().total_supply


def test_transfer_moves_funds_and_advances_the_nonce(market: Market) -> None:
    market.ok("w1", Transfer(market.addr("poor"), 5 * RLC))
    assert market.account("poor").balance == 5 * RLC
    assert market.account("w1").balance == START_BALANCE - 5 * RLC
    assert market.account("w1").nonce == 1


@pytest.mark.parametrize(
    "amount, code", [(0, "zero-amount"), (START_BALANCE + 1, "insufficient-balance")]
)
def test_transfer_rejections_change_nothing(market: Market, amount: int, code: str) -> None:
    digest = market.ledger.state.digest()
    assert market.submit("w1", Transfer(market.addr("poor"), amount)).code == code
    assert market.ledger.state.digest() == digest


def test_wrong_nonce_is_rejected(market: Market) -> None:
    tx = market.wallets["w1"].tx(Transfer(market.addr("poor"), 1))
    market.ledger.apply(tx, market.now)
    outcome = market.ledger.apply(tx, market.now)  # a replay
    assert outcome.code == "bad-nonce"


def test_forged_and_foreign_chain_signatures_are_rejected(market: Market) -> None:
    tx = market.signed("w1", Transfer(market.addr("poor"), 1))
    forged = replace(tx, body=Transfer(market.addr("w2"), 1))
    assert market.ledger.apply(forged, market.now).code == "bad-signature"
    foreign = Wallet(Keypair.from_name("w2"), "other-chain", market.wallets["w2"].entropy)
    assert market.ledger.apply(foreign.tx(Transfer(market.addr("poor"), 1)), market.now).code == "bad-signature"


def test_apply_is_pure_until_writes_are_committed(market: Market) -> None:
    digest = market.ledger.state.digest()
    outcome = apply(market.ledger.rules, market.ledger.state, market.signed("w1", Transfer(market.addr("poor"), 1)), 0)
    assert outcome.ok and outcome.writes
    assert market.ledger.state.digest() == digest


def test_registration_derives_the_asset_address(market: Market) -> None:
    nonce = market.wallets["appdev"].nonce
    created = market.ok("appdev", RegisterApp("second", b"\x33" * 32)).created
    assert created == asset_address(market.addr("appdev"), "app", nonce)
    record = market.ledger.state.get(APP + created)
    assert record.owner == market.addr("appdev") and record.measurement == b"\x33" * 32


def test_match_orders_creates_deal_locks_escrow_and_consumes_volume(market: Market) -> None:
    supply = total_supply(market.ledger)
    deal_id = market.match(trust=1, volume=2)
    deal = market.deal(deal_id)
    assert deal.bot_first == 0 and deal.bot_size == 2
    assert deal.start_time == market.now
    price = APP_PRICE + DATASET_PRICE + POOL_PRICE
    assert market.account("requester").frozen == 2 * price
    assert market.account("manager").frozen == 2 * POOL_PRICE * WORKERPOOL_STAKE_RATIO // 100
    assert deal.worker_stake == POOL_PRICE * 30 // 100
    assert total_supply(market.ledger) == supply


def test_second_deal_from_one_request_continues_the_bot(market: Market) -> None:
    request = market.request_order(volume=3)
    first = market.ok("requester", MatchOrders(market.app_order(), market.dataset_order(), market.pool_order(volume=2), request))
    second = market.ok("requester", MatchOrders(market.app_order(), market.dataset_order(), market.pool_order(volume=5), request))
    assert market.deal(first.created).bot_size == 2
    assert market.deal(second.created).bot_first == 2 and market.deal(second.created).bot_size == 1
    again = market.submit("requester", MatchOrders(market.app_order(), market.dataset_order(), market.pool_order(), request))
    assert again.code == "volume-exhausted"


def test_match_rejected_when_requester_cannot_pay(market: Market) -> None:
    request = market.request_order(by="poor", requester=market.addr("poor"), beneficiary=market.addr("poor"))
    body = MatchOrders(market.app_order(), market.dataset_order(), market.pool_order(), request)
    digest = market.ledger.state.digest()
    assert market.submit("requester", body).code == "requester-balance-too-low"
    assert market.ledger.state.digest() == digest  # consumed volume written before the lock is dropped too


def test_match_rejected_when_pool_owner_cannot_stake(market: Market) -> None:
    market.ok("manager", Transfer(market.addr("w4"), market.account("manager").balance))
    body = MatchOrders(market.app_order(), market.dataset_order(), market.pool_order(), market.request_order())
    assert market.submit("requester", body).code == "workerpool-stake-too-low"


def test_match_rule_violation_is_reported_by_the_ledger(market: Market) -> None:
    body = MatchOrders(market.app_order(), market.dataset_order(), market.pool_order(trust=0), market.request_order(trust=2))
    assert market.submit("requester", body).code == "trust-too-low"


def test_owner_cancels_order_and_it_can_no_longer_match(market: Market) -> None:
    app_order = market.app_order()
    assert market.submit("w1", CancelOrder(app_order)).code == "not-order-owner"
    assert market.ok("appdev", CancelOrder(app_order)).created == app_order.payload_digest
    body = MatchOrders(app_order, market.dataset_order(), market.pool_order(), market.request_order())
    assert market.submit("requester", body).code == "volume-exhausted"


def test_requester_cancels_its_request(market: Market) -> None:
    request = market.request_order()
    market.ok("requester", CancelOrder(request))
    body = MatchOrders(market.app_order(), market.dataset_order(), market.pool_order(), request)
    assert market.submit("requester", body).code == "volume-exhausted"


def test_cancel_of_unregistered_asset_order(market: Market) -> None:
    order = market.wallets["appdev"].app_order(b"\x99" * 20, 1)
    assert market.submit("appdev", CancelOrder(order)).code == "app-not-registered"


def test_transaction_roundtrips_through_the_wire(market: Market) -> None:
    from protocols.encoding import decode, encode

    tx = market.signed("requester", MatchOrders(market.app_order(), None, market.pool_order(), market.request_order()))
    back = decode(Transaction, encode(tx))
    assert back == tx and back.tx_id == tx.tx_id
