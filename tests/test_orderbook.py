"""The order book and the matching engine: cheapest first, then earliest; volume tracked across a batch."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocols.crypto import SignatureVerifier
from protocols.ledger.market import LedgerMarketView
from protocols.orderbook import OrderBook, best_match, explain, propose_matches
from tests.support import CHAIN_ID, POOL_PRICE, Market


@pytest.fixture
def market() -> Market:
    return Market.create()


def view_of(market: Market) -> LedgerMarketView:
    return LedgerMarketView(market.ledger.state.view(), market.ledger.rules.categories)


def book_with(market: Market, *orders: object) -> OrderBook:
    book = OrderBook(SignatureVerifier(CHAIN_ID))
    for order in orders:
        assert book.add(order) is None  # type: ignore[arg-type]
    return book


def test_duplicates_and_bad_signatures_are_refused(market: Market) -> None:
    order = market.app_order()
    book = book_with(market, order)
    assert book.add(order) == "duplicate"
    assert book.add(replace(order, app_price=0)) == "bad-signature"
    assert len(book) == 1


def test_cheapest_workerpool_wins(market: Market) -> None:
    cheap = market.pool_order(workerpool_price=POOL_PRICE // 2)
    dear = market.pool_order()
    request = market.request_order()
    book = book_with(market, market.app_order(), market.dataset_order(), dear, cheap, request)
    found = best_match(request, book, view_of(market), book.verifier)
    assert found is not None and found[0].workerpool_order == cheap


def test_earliest_wins_at_equal_price(market: Market) -> None:
    first, second = market.pool_order(), market.pool_order()
    request = market.request_order()
    book = book_with(market, market.app_order(), market.dataset_order(), first, second, request)
    found = best_match(request, book, view_of(market), book.verifier)
    assert found is not None and found[0].workerpool_order == first


def test_incompatible_cheaper_candidates_are_skipped(market: Market) -> None:
    low_trust = market.pool_order(workerpool_price=1, trust=0)
    ok = market.pool_order()
    request = market.request_order(trust=2)
    book = book_with(market, market.app_order(), market.dataset_order(), low_trust, ok, request)
    found = best_match(request, book, view_of(market), book.verifier)
    assert found is not None and found[0].workerpool_order == ok


def test_batch_never_counts_on_the_same_volume_twice(market: Market) -> None:
    pool = market.pool_order(volume=1)
    requests = [market.request_order() for _ in range(3)]
    book = book_with(market, market.app_order(), market.dataset_order(), pool, *requests)
    proposals = propose_matches(book, view_of(market), book.verifier, limit=10)
    assert len(proposals) == 1 and proposals[0].request_order == requests[0]
    # the proposal is valid on the ledger
    assert market.submit("manager", proposals[0]).ok


def test_engine_respects_the_limit_and_the_ledger_state(market: Market) -> None:
    requests = [market.request_order() for _ in range(4)]
    book = book_with(market, market.app_order(), market.dataset_order(), market.pool_order(volume=10), *requests)
    assert len(propose_matches(book, view_of(market), book.verifier, limit=2)) == 2
    for proposal in propose_matches(book, view_of(market), book.verifier, limit=10):
        assert market.submit("manager", proposal).ok
    assert book.prune(view_of(market)) == 4  # every request fully consumed
    assert propose_matches(book, view_of(market), book.verifier, limit=10) == []


def test_request_without_candidates_gets_no_match(market: Market) -> None:
    request = market.request_order()
    book = book_with(market, market.app_order(), request)
    assert best_match(request, book, view_of(market), book.verifier) is None


def test_explain_names_every_broken_rule(market: Market) -> None:
    request = market.request_order(trust=4, workerpool_max_price=1)
    book = book_with(market, market.app_order(), market.dataset_order(), market.pool_order(trust=1), request)
    [report] = explain(request, book, view_of(market), book.verifier)
    codes = {v.code for v in report.violations}
    assert codes == {"trust-too-low", "workerpool-price-too-high"}


def test_explain_reports_a_valid_candidate_with_no_violation(market: Market) -> None:
    request = market.request_order()
    book = book_with(market, market.app_order(), market.dataset_order(), market.pool_order(), request)
    [report] = explain(request, book, view_of(market), book.verifier)
    assert report.violations == ()


def test_capacity_drops_the_oldest(market: Market) -> None:
    book = OrderBook(SignatureVerifier(CHAIN_ID), capacity=2)
    orders = [market.pool_order() for _ in range(3)]
    for order in orders:
        book.add(order)
    assert orders[0].payload_digest not in book
    assert len(book) == 2
    request = market.request_order()
    book.add(request)
    assert [e.order for e in book.pool_entries(0)] == [orders[2]]
