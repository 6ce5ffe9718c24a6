"""Every matchOrders rule: the happy path, and each rule broken alone giving its own reason code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from protocols.crypto import ZERO_ADDRESS, Keypair, SignatureVerifier
from protocols.ledger.market import LedgerMarketView
from protocols.matching import (
    MatchTerms,
    Violation,
    check_match,
    deal_id_for,
    deal_tag,
    order_violations,
    task_id_for,
)
from protocols.orders import TEE_BIT, tag_bytes
from protocols.wallet import Wallet
from tests.support import APP_PRICE, CHAIN_ID, DATASET_PRICE, POOL_PRICE, Market

OTHER = b"\x77" * 20


@pytest.fixture
def market() -> Market:
    return Market.create()


def view_of(market: Market) -> LedgerMarketView:
    return LedgerMarketView(market.ledger.state.view(), market.ledger.rules.categories)


def orders(market: Market, app: dict[str, Any] | None = None, dataset: dict[str, Any] | None = None,
           pool: dict[str, Any] | None = None, request: dict[str, Any] | None = None) -> tuple[Any, ...]:
    return (
        market.app_order(**(app or {})),
        market.dataset_order(**(dataset or {})),
        market.pool_order(**(pool or {})),
        market.request_order(**(request or {})),
    )


def check(market: Market, combo: tuple[Any, ...]) -> MatchTerms | Violation:
    return check_match(*combo, view_of(market), SignatureVerifier(CHAIN_ID))


def test_compatible_orders_match_with_poco_terms(market: Market) -> None:
    terms = check(market, orders(market, pool={"volume": 5}, request={"volume": 3, "trust": 0}))
    assert isinstance(terms, MatchTerms)
    assert terms.volume == 3
    assert terms.trust == 1  # max(R.trust, 1)
    assert terms.app_owner == market.addr("appdev")
    assert terms.dataset_owner == market.addr("provider")
    assert terms.workerpool_owner == market.addr("manager")


def test_match_without_dataset(market: Market) -> None:
    app, _, pool, _ = orders(market)
    request = market.request_order(dataset=ZERO_ADDRESS, dataset_max_price=0)
    assert isinstance(check(market, (app, None, pool, request)), MatchTerms)


TEE = tag_bytes(TEE_BIT)
SCONE = tag_bytes(0x3)

RULES: list[tuple[str, Callable[[Market], tuple[Any, ...]]]] = [
    ("category-mismatch", lambda m: orders(m, request={"category": 1})),
    ("category-unknown", lambda m: orders(m, pool={"category": 9}, request={"category": 9})),
    ("trust-too-low", lambda m: orders(m, pool={"trust": 2}, request={"trust": 3})),
    ("app-price-too-high", lambda m: orders(m, request={"app_max_price": APP_PRICE - 1})),
    ("dataset-price-too-high", lambda m: orders(m, request={"dataset_max_price": DATASET_PRICE - 1})),
    ("workerpool-price-too-high", lambda m: orders(m, request={"workerpool_max_price": POOL_PRICE - 1})),
    ("tag-not-covered", lambda m: orders(m, app={"tag": TEE}, request={"tag": TEE})),
    ("tee-bit-mismatch", lambda m: orders(m, pool={"tag": TEE}, request={"tag": TEE})),
    ("app-mismatch", lambda m: orders(m, request={"app": OTHER})),
    ("dataset-mismatch", lambda m: orders(m, request={"dataset": OTHER})),
    ("app-dataset-restricted", lambda m: orders(m, app={"dataset_restrict": OTHER})),
    ("app-workerpool-restricted", lambda m: orders(m, app={"workerpool_restrict": OTHER})),
    ("app-requester-restricted", lambda m: orders(m, app={"requester_restrict": OTHER})),
    ("dataset-app-restricted", lambda m: orders(m, dataset={"app_restrict": OTHER})),
    ("dataset-workerpool-restricted", lambda m: orders(m, dataset={"workerpool_restrict": OTHER})),
    ("dataset-requester-restricted", lambda m: orders(m, dataset={"requester_restrict": OTHER})),
    ("workerpool-app-restricted", lambda m: orders(m, pool={"app_restrict": OTHER})),
    ("workerpool-dataset-restricted", lambda m: orders(m, pool={"dataset_restrict": OTHER})),
    ("workerpool-requester-restricted", lambda m: orders(m, pool={"requester_restrict": OTHER})),
    ("workerpool-restricted", lambda m: orders(m, request={"workerpool": OTHER})),
    ("app-not-registered", lambda m: (m.wallets["appdev"].app_order(OTHER, APP_PRICE), *orders(m, request={"app": OTHER})[1:])),
    ("dataset-not-registered", lambda m: orders(m, dataset={"dataset": OTHER}, request={"dataset": OTHER})),
    ("workerpool-not-registered", lambda m: orders(m, pool={"workerpool": OTHER})),
    ("app-bad-signature", lambda m: (m.wallets["w1"].app_order(m.app, APP_PRICE), *orders(m)[1:])),
    ("dataset-bad-signature", lambda m: (orders(m)[0], m.wallets["w1"].dataset_order(m.dataset, DATASET_PRICE), *orders(m)[2:])),
    ("workerpool-bad-signature", lambda m: (*orders(m)[:2], m.wallets["w1"].workerpool_order(m.pool, POOL_PRICE, 0, 3), orders(m)[3])),
    ("request-bad-signature", lambda m: (*orders(m)[:3], m.request_order(by="w1", requester=m.addr("requester")))),
]


@pytest.mark.parametrize("code, build", RULES, ids=[code for code, _ in RULES])
def test_each_rule_rejects_with_its_own_code(market: Market, code: str, build: Callable[[Market], tuple[Any, ...]]) -> None:
    result = check(market, build(market))
    assert isinstance(result, Violation), f"expected {code}, got a match"
    assert result.code == code, result.detail


def test_dataset_missing_when_request_names_one(market: Market) -> None:
    app, _, pool, request = orders(market)
    result = check(market, (app, None, pool, request))
    assert isinstance(result, Violation) and result.code == "dataset-missing"


def test_restriction_to_the_right_address_passes(market: Market) -> None:
    combo = orders(
        market,
        app={"dataset_restrict": market.dataset, "workerpool_restrict": market.pool, "requester_restrict": market.addr("requester")},
        dataset={"app_restrict": market.app, "workerpool_restrict": market.pool},
        pool={"app_restrict": market.app, "dataset_restrict": market.dataset, "requester_restrict": market.addr("requester")},
        request={"workerpool": market.pool},
    )
    assert isinstance(check(market, combo), MatchTerms)


def test_tee_deal_needs_tee_app_and_covering_pool(market: Market) -> None:
    combo = orders(market, app={"tag": SCONE}, pool={"tag": SCONE}, request={"tag": TEE})
    terms = check(market, combo)
    assert isinstance(terms, MatchTerms)
    assert terms.tag == SCONE


def test_dataset_framework_bits_are_ignored_in_the_deal_tag(market: Market) -> None:
    app, dataset, _, request = orders(market, app={"tag": TEE}, dataset={"tag": tag_bytes(0xF)})
    assert deal_tag(app, dataset, request) == 0x1


def test_volume_is_the_minimum_remaining(market: Market) -> None:
    combo = orders(market, app={"volume": 2}, pool={"volume": 7}, request={"volume": 5})
    terms = check(market, combo)
    assert isinstance(terms, MatchTerms) and terms.volume == 2


def test_signature_from_another_chain_is_rejected(market: Market) -> None:
    foreign = Wallet(Keypair.from_name("appdev"), "other-chain", market.wallets["appdev"].entropy)
    combo = (foreign.app_order(market.app, APP_PRICE), *orders(market)[1:])
    result = check(market, combo)
    assert isinstance(result, Violation) and result.code == "app-bad-signature"


def test_ids_are_deterministic_and_distinct() -> None:
    assert deal_id_for(b"r" * 32, 0) != deal_id_for(b"r" * 32, 1)
    assert task_id_for(b"d" * 32, 0) == task_id_for(b"d" * 32, 0)
    assert task_id_for(b"d" * 32, 0) != task_id_for(b"d" * 32, 1)


def test_the_requests_workerpool_restriction_is_checked_before_the_orders_restrictions(market: Market) -> None:
    """PoCo's 0x12 (the request's workerpool) comes before 0x13-0x1b: with both broken, it is the reason."""
    combo = orders(market, app={"dataset_restrict": OTHER}, pool={"requester_restrict": OTHER}, request={"workerpool": OTHER})
    result = check(market, combo)
    assert isinstance(result, Violation) and result.code == "workerpool-restricted"


def test_order_violations_are_what_the_ledger_already_rules_out(market: Market) -> None:
    """A gossiped order is checked alone against the ledger before any node admits or relays it."""
    m = market
    view, verifier = view_of(m), SignatureVerifier(CHAIN_ID)
    assert all(order_violations(o, view, verifier) == [] for o in orders(m))

    def codes(order: Any) -> list[str]:
        return [v.code for v in order_violations(order, view, verifier)]

    stranger = bytes(range(20))
    assert codes(m.app_order(app=stranger)) == ["app-not-registered"]
    assert codes(m.wallets["w1"].app_order(m.app, APP_PRICE)) == ["app-bad-signature"]
    assert codes(m.wallets["w1"].dataset_order(m.dataset, DATASET_PRICE)) == ["dataset-bad-signature"]
    assert codes(m.wallets["w1"].workerpool_order(m.pool, POOL_PRICE, 0, 3)) == ["workerpool-bad-signature"]
    assert codes(m.pool_order(category=99)) == ["category-unknown"]
    assert codes(m.request_order(by="w1", requester=m.addr("requester"))) == ["request-bad-signature"]
    assert codes(m.request_order(app=stranger, dataset=stranger, category=99)) == [
        "category-unknown", "app-not-registered", "dataset-not-registered"]
