"""The order book and the matching engine: cheapest first, then earliest; volume tracked across a batch."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.crypto import ZERO_ADDRESS, SignatureVerifier
from protocols.ledger.market import LedgerMarketView
from protocols.ledger.transactions import MatchOrders
from protocols.matching import MatchTerms, check_match
from protocols.orderbook import OrderBook, best_match, explain, propose_matches
from protocols.orders import AppOrder, DatasetOrder, Order, RequestOrder, WorkerpoolOrder, order_price
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


# --- the engine against a brute-force oracle ---------------------------------------------------------------


class _WithPending:
    """The ledger's view plus the volume consumed by earlier proposals of the oracle's batch."""

    def __init__(self, view: LedgerMarketView) -> None:
        self.view = view
        self.extra: dict[bytes, int] = {}

    def asset_owner(self, kind: str, address: bytes) -> bytes | None:
        return self.view.asset_owner(kind, address)

    def category_exists(self, category: int) -> bool:
        return self.view.category_exists(category)

    def consumed(self, order_hash: bytes) -> int:
        return self.view.consumed(order_hash) + self.extra.get(order_hash, 0)


def brute_force_matches(arrivals: list[Order], view: LedgerMarketView, verifier: SignatureVerifier) -> list[MatchOrders]:
    """Every request in arrival order takes the first combination that passes every rule, trying all of
    them sorted by total price, then by arrival (the latest arrival among the three orders, then the next)."""
    pending = _WithPending(view)
    seq = {id(order): position + 1 for position, order in enumerate(arrivals)}
    apps = [o for o in arrivals if isinstance(o, AppOrder)]
    datasets = [o for o in arrivals if isinstance(o, DatasetOrder)]
    pools = [o for o in arrivals if isinstance(o, WorkerpoolOrder)]
    proposals = []
    for request in (o for o in arrivals if isinstance(o, RequestOrder)):
        combos = []
        for app in (a for a in apps if a.app == request.app):
            wanted = [None] if request.dataset == ZERO_ADDRESS else [d for d in datasets if d.dataset == request.dataset]
            for dataset in wanted:
                for pool in (p for p in pools if p.category == request.category):
                    total = order_price(app) + (order_price(dataset) if dataset else 0) + order_price(pool)
                    arrival = sorted((seq[id(app)], seq[id(dataset)] if dataset else 0, seq[id(pool)]), reverse=True)
                    combos.append((total, arrival, app, dataset, pool))
        for _, _, app, dataset, pool in sorted(combos, key=lambda c: (c[0], c[1])):
            terms = check_match(app, dataset, pool, request, pending, verifier)
            if isinstance(terms, MatchTerms):
                proposals.append(MatchOrders(app, dataset, pool, request))
                for order in (app, dataset, pool, request):
                    if order is not None:
                        pending.extra[order.payload_digest] = pending.extra.get(order.payload_digest, 0) + terms.volume
                break
    return proposals


small_volumes = st.integers(1, 3)


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(data=st.data())
def test_engine_proposes_what_a_brute_force_search_finds(data: st.DataObject) -> None:
    """Random books (several app, dataset and pool orders at a few prices and volumes, requests with and
    without a dataset, trust needs and pool restrictions) in random arrival order: the engine's batch is
    exactly the oracle's, and every proposal applies on the ledger in turn."""
    market = Market.create()
    draw = data.draw
    prices = st.sampled_from([1, 2, 3])
    orders: list[Order] = [
        *(market.app_order(app_price=draw(prices), volume=draw(small_volumes)) for _ in range(draw(st.integers(1, 2)))),
        *(market.dataset_order(dataset_price=draw(prices), volume=draw(small_volumes)) for _ in range(draw(st.integers(0, 2)))),
        *(
            market.pool_order(workerpool_price=draw(prices), volume=draw(small_volumes), trust=draw(st.sampled_from([0, 3, 3])))
            for _ in range(draw(st.integers(1, 5)))
        ),
        *(
            market.request_order(
                volume=draw(small_volumes),
                trust=draw(st.sampled_from([0, 1, 3])),
                dataset=draw(st.sampled_from([market.dataset, ZERO_ADDRESS])),
                dataset_max_price=3,
                workerpool_max_price=draw(st.sampled_from([2, 3])),
                app_max_price=3,
                workerpool=draw(st.sampled_from([ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, market.pool, b"\x07" * 20])),
            )
            for _ in range(draw(st.integers(1, 5)))
        ),
    ]
    arrivals = draw(st.permutations(orders))
    book = book_with(market, *arrivals)
    expected = brute_force_matches(list(arrivals), view_of(market), book.verifier)
    assert propose_matches(book, view_of(market), book.verifier, limit=100) == expected
    for proposal in expected:
        assert market.submit("manager", proposal).ok
