"""An order book and the matching engine that proposes deals from it (DESIGN.md section 4).

The book is one node's view of open orders, built from gossip: it keeps orders whose signature verifies,
once each, in arrival order. The engine proposes for each request order the cheapest compatible set of
app, dataset and workerpool orders (ties go to the earliest arrivals), and keeps track of the volume its own
proposals consume so two proposals in one block never count on the same remaining volume. `explain` tells a
requester, for every candidate, which rules it breaks.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from protocols.crypto import ZERO_ADDRESS, SignatureVerifier
from protocols.ledger.transactions import MatchOrders
from protocols.matching import MarketView, MatchTerms, Violation, check_match, match_violations
from protocols.orders import AppOrder, DatasetOrder, Order, RequestOrder, WorkerpoolOrder, order_price

# How many (app, dataset, workerpool) combinations the engine examines per request order before giving up:
# bounds the work a flood of incompatible orders can cause one proposer.
MAX_CANDIDATES_PER_REQUEST = 2_000
# How many orders the book holds at most; the oldest are dropped first (they are re-announced if still live).
MAX_BOOK_ORDERS = 100_000


@dataclass(frozen=True)
class BookEntry:
    order: Order
    seq: int  # arrival position in this book: the tie-break after price


@dataclass(frozen=True)
class CandidateReport:
    app_order: AppOrder
    dataset_order: DatasetOrder | None
    workerpool_order: WorkerpoolOrder
    violations: tuple[Violation, ...]


class OrderBook:
    def __init__(self, verifier: SignatureVerifier, capacity: int = MAX_BOOK_ORDERS) -> None:
        self.verifier = verifier
        self.capacity = capacity
        self._entries: dict[bytes, BookEntry] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, order_hash: bytes) -> bool:
        return order_hash in self._entries

    def add(self, order: Order) -> str | None:
        """Add an order; return None, or why it was not added ("duplicate", "bad-signature")."""
        order_hash = order.payload_digest
        if order_hash in self._entries:
            return "duplicate"
        if not self.verifier.verify(order):
            return "bad-signature"
        self._seq += 1
        self._entries[order_hash] = BookEntry(order, self._seq)
        if len(self._entries) > self.capacity:
            del self._entries[next(iter(self._entries))]
        return None

    def remove(self, order_hash: bytes) -> None:
        self._entries.pop(order_hash, None)

    def prune(self, view: MarketView) -> int:
        """Drop orders with no volume left on the ledger; return how many."""
        spent = [h for h, e in self._entries.items() if view.consumed(h) >= e.order.volume]
        for order_hash in spent:
            del self._entries[order_hash]
        return len(spent)

    def entries(self, kind: type) -> Iterator[BookEntry]:
        return (e for e in self._entries.values() if type(e.order) is kind)

    def requests(self) -> list[RequestOrder]:
        return [e.order for e in self.entries(RequestOrder)]  # type: ignore[misc]


class _PendingConsumption:
    """A MarketView that adds the volume consumed by matches proposed earlier in the same batch."""

    def __init__(self, view: MarketView) -> None:
        self.view = view
        self.pending: dict[bytes, int] = {}

    def asset_owner(self, kind: str, address: bytes) -> bytes | None:
        return self.view.asset_owner(kind, address)

    def category_exists(self, category: int) -> bool:
        return self.view.category_exists(category)

    def consumed(self, order_hash: bytes) -> int:
        return self.view.consumed(order_hash) + self.pending.get(order_hash, 0)

    def consume(self, orders: Iterable[Order | None], volume: int) -> None:
        for order in orders:
            if order is not None:
                self.pending[order.payload_digest] = self.pending.get(order.payload_digest, 0) + volume


def _candidates(
    request: RequestOrder, book: OrderBook
) -> Iterator[tuple[AppOrder, DatasetOrder | None, WorkerpoolOrder]]:
    """Plausible combinations for a request, cheapest total first, then earliest arrivals."""
    apps = [e for e in book.entries(AppOrder) if e.order.app == request.app]
    if request.dataset == ZERO_ADDRESS:
        datasets: list[BookEntry | None] = [None]
    else:
        datasets = [e for e in book.entries(DatasetOrder) if e.order.dataset == request.dataset]
    pools = [
        e
        for e in book.entries(WorkerpoolOrder)
        if e.order.category == request.category and request.workerpool in (ZERO_ADDRESS, e.order.workerpool)
    ]
    combos = itertools.islice(itertools.product(apps, datasets, pools), MAX_CANDIDATES_PER_REQUEST)

    def rank(combo: tuple[BookEntry, BookEntry | None, BookEntry]) -> tuple[int, list[int]]:
        present = [e for e in combo if e is not None]
        return sum(order_price(e.order) for e in present), sorted((e.seq for e in present), reverse=True)

    for app, dataset, pool in sorted(combos, key=rank):
        yield app.order, dataset.order if dataset else None, pool.order  # type: ignore[misc]


def best_match(
    request: RequestOrder, book: OrderBook, view: MarketView, verifier: SignatureVerifier
) -> tuple[MatchOrders, MatchTerms] | None:
    for app, dataset, pool in _candidates(request, book):
        terms = check_match(app, dataset, pool, request, view, verifier)
        if isinstance(terms, MatchTerms):
            return MatchOrders(app, dataset, pool, request), terms
    return None


def propose_matches(
    book: OrderBook, view: MarketView, verifier: SignatureVerifier, limit: int
) -> list[MatchOrders]:
    """Up to `limit` matches, one per request order in arrival order, none counting on the same volume."""
    pending = _PendingConsumption(view)
    proposals: list[MatchOrders] = []
    for request in book.requests():
        if len(proposals) >= limit:
            break
        found = best_match(request, book, pending, verifier)
        if found is not None:
            match, terms = found
            pending.consume((match.app_order, match.dataset_order, match.workerpool_order, request), terms.volume)
            proposals.append(match)
    return proposals


def explain(
    request: RequestOrder, book: OrderBook, view: MarketView, verifier: SignatureVerifier
) -> list[CandidateReport]:
    """For every candidate combination in the book, the rules it breaks (empty for a valid match).

    Unlike the engine this does not pre-filter by app, dataset or category, so a requester also learns why
    an order for another app or category is not a candidate.
    """
    apps = [e.order for e in book.entries(AppOrder)]
    datasets: list[DatasetOrder | None] = [e.order for e in book.entries(DatasetOrder)] or [None]  # type: ignore[misc]
    if request.dataset == ZERO_ADDRESS:
        datasets = [None]
    pools = [e.order for e in book.entries(WorkerpoolOrder)]
    reports = []
    for app, dataset, pool in itertools.islice(itertools.product(apps, datasets, pools), MAX_CANDIDATES_PER_REQUEST):
        violations = tuple(match_violations(app, dataset, pool, request, view, verifier))  # type: ignore[arg-type]
        reports.append(CandidateReport(app, dataset, pool, violations))  # type: ignore[arg-type]
    return reports
