"""An order book and the matching engine that proposes deals from it (DESIGN.md section 4).

The book is one node's view of open orders, built from gossip: it keeps orders whose signature verifies,
once each, indexed so that the candidates for a request are found without scanning the book: app orders by
app, dataset orders by dataset, workerpool orders by category, each list sorted by (price, arrival).

The engine proposes for each request order the cheapest compatible set of app, dataset and workerpool
orders, ties going to the earliest arrivals. It walks candidates lazily in price order and stops at the
first that passes every rule, so a deep book costs a request only the candidates cheaper than its match.
It tracks the volume its own proposals consume, so two proposals in one block never count on the same
remaining volume. `explain` tells a requester, for every candidate, which rules it breaks.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from protocols.crypto import ZERO_ADDRESS, SignatureVerifier
from protocols.ledger.transactions import MatchOrders
from protocols.matching import MarketView, MatchTerms, Violation, check_match, match_violations
from protocols.orders import AppOrder, DatasetOrder, Order, RequestOrder, WorkerpoolOrder, order_price

# How many (app, dataset, workerpool) combinations the engine examines per request order before giving up:
# bounds the work a flood of incompatible orders can cause one proposer.
MAX_CANDIDATES_PER_REQUEST = 2_000
# How many orders the book holds at most; the oldest are dropped first (they are re-announced if still live).
MAX_BOOK_ORDERS = 100_000


class BookEntry(NamedTuple):
    """Sorted as a plain tuple by (price, seq); seq is unique, so `order` is never compared. A tuple and
    not a dataclass because comparisons happen on every insertion into the sorted indexes."""

    price: int
    seq: int  # arrival position in this book: the tie-break after price
    order: Order


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
        self._apps: dict[bytes, list[BookEntry]] = {}
        self._datasets: dict[bytes, list[BookEntry]] = {}
        self._pools: dict[int, list[BookEntry]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, order_hash: bytes) -> bool:
        return order_hash in self._entries

    def _index(self, order: Order) -> list[BookEntry] | None:
        """The sorted list an order lives in (requests live only in `_entries`, in arrival order)."""
        kind = type(order)
        if kind is WorkerpoolOrder:
            indexes, key = self._pools, order.category
        elif kind is AppOrder:
            indexes, key = self._apps, order.app
        elif kind is DatasetOrder:
            indexes, key = self._datasets, order.dataset
        else:
            return None
        index = indexes.get(key)
        if index is None:
            index = indexes[key] = []
        return index

    def add(self, order: Order) -> str | None:
        """Add an order; return None, or why it was not added ("duplicate", "bad-signature")."""
        order_hash = order.payload_digest
        if order_hash in self._entries:
            return "duplicate"
        if not self.verifier.verify(order):
            return "bad-signature"
        self._seq += 1
        entry = BookEntry(order_price(order), self._seq, order)
        self._entries[order_hash] = entry
        index = self._index(order)
        if index is not None:
            bisect.insort(index, entry)
        if len(self._entries) > self.capacity:
            self.remove(next(iter(self._entries)))
        return None

    def remove(self, order_hash: bytes) -> None:
        entry = self._entries.pop(order_hash, None)
        if entry is None:
            return
        index = self._index(entry.order)
        if index is not None:
            index.pop(bisect.bisect_left(index, entry))

    @contextmanager
    def hiding(self) -> Iterator[Callable[[Order], None]]:
        """Within the block, `hide(order)` takes an app, dataset or workerpool order out of the candidate
        indexes; on exit every hidden order is back. The engine hides what its own proposals used up, so the
        next requests of a batch do not walk past spent orders (which would make a batch quadratic)."""
        hidden: list[BookEntry] = []

        def hide(order: Order) -> None:
            entry = self._entries.get(order.payload_digest)
            index = self._index(order)
            if entry is not None and index is not None:
                position = bisect.bisect_left(index, entry)
                if position < len(index) and index[position] is entry:
                    index.pop(position)
                    hidden.append(entry)

        try:
            yield hide
        finally:
            # Put every hidden entry back with one sort per index: Timsort merges the appended run in linear
            # time, where an insort per entry would shift the whole list each time.
            touched: dict[int, list[BookEntry]] = {}
            for entry in hidden:
                index = self._index(entry.order)
                if index is not None and entry.order.payload_digest in self._entries:
                    index.append(entry)
                    touched[id(index)] = index
            for index in touched.values():
                index.sort()

    def prune(self, view: MarketView) -> int:
        """Drop orders with no volume left on the ledger; return how many."""
        spent = [h for h, e in self._entries.items() if view.consumed(h) >= e.order.volume]
        for order_hash in spent:
            self.remove(order_hash)
        return len(spent)

    def orders(self) -> Iterator[Order]:
        return (e.order for e in self._entries.values())

    def requests(self) -> list[RequestOrder]:
        return [e.order for e in self._entries.values() if isinstance(e.order, RequestOrder)]

    def app_entries(self, app: bytes) -> list[BookEntry]:
        return self._apps.get(app, [])

    def dataset_entries(self, dataset: bytes) -> list[BookEntry]:
        return self._datasets.get(dataset, [])

    def pool_entries(self, category: int) -> list[BookEntry]:
        return self._pools.get(category, [])


class _ReadThrough(dict):  # type: ignore[type-arg]
    """A dict that fills a missing key from `source(key)`: a hit is one C-level subscript."""

    def __init__(self, source: Callable[[Any], Any]) -> None:
        super().__init__()
        self.source = source

    def __missing__(self, key: Any) -> Any:
        value = self[key] = self.source(key)
        return value


class _PendingConsumption:
    """A MarketView that adds the volume consumed by matches proposed earlier in the same batch.

    The ledger does not change during a batch, so what it says is read once per order or asset: the engine
    asks for an order's consumed volume several times per candidate. `consumed` is the cache's own
    subscript, the cheapest call Python has, as it runs about ten times per request order.
    """

    def __init__(self, view: MarketView) -> None:
        self._consumed = _ReadThrough(view.consumed)
        self.consumed: Callable[[bytes], int] = self._consumed.__getitem__
        self._owners = _ReadThrough(lambda key: view.asset_owner(*key))
        self.category_exists = view.category_exists

    def asset_owner(self, kind: str, address: bytes) -> bytes | None:
        return self._owners[kind, address]  # type: ignore[no-any-return]

    def consume(self, orders: Iterable[Order | None], volume: int) -> list[Order]:
        """Count `volume` more against each order; return those that have none left."""
        known = self._consumed
        spent = []
        for order in orders:
            if order is not None:
                total = known[order.payload_digest] = known[order.payload_digest] + volume
                if total >= order.volume:
                    spent.append(order)
        return spent


Combo = tuple[AppOrder, DatasetOrder | None, WorkerpoolOrder]


def _live(entries: list[BookEntry], view: MarketView) -> list[BookEntry]:
    return [e for e in entries if view.consumed(e.order.payload_digest) < e.order.volume]


def _live_pools(request: RequestOrder, book: OrderBook, view: MarketView) -> Iterator[BookEntry]:
    """The request's category's pool orders it may use and that have volume left, in (price, seq) order."""
    wanted = request.workerpool
    for count, entry in enumerate(book.pool_entries(request.category)):
        if count == MAX_CANDIDATES_PER_REQUEST:
            return
        pool = entry.order
        if (wanted == ZERO_ADDRESS or wanted == pool.workerpool) and view.consumed(pool.payload_digest) < pool.volume:
            yield entry


def _candidates(request: RequestOrder, book: OrderBook, view: MarketView) -> Iterator[Combo]:
    """Combinations for a request that are not already spent, cheapest total first, then earliest."""
    apps = _live(book.app_entries(request.app), view)
    if request.dataset == ZERO_ADDRESS:
        pairs: list[tuple[BookEntry, BookEntry | None]] = [(a, None) for a in apps]
    else:
        pairs = [(a, d) for a in apps for d in _live(book.dataset_entries(request.dataset), view)]
    pools = _live_pools(request, book, view)
    if len(pairs) == 1:
        # The common case: one app order and one dataset order; pools are walked lazily, as usually the
        # first live one matches.
        app, dataset = pairs[0]
        app_order, dataset_order = app.order, dataset.order if dataset else None
        for pool in pools:
            yield app_order, dataset_order, pool.order
        return
    pool_list = list(pools)

    def walk(app: BookEntry, dataset: BookEntry | None) -> Iterator[tuple[int, list[int], Combo]]:
        fixed = app.price + (dataset.price if dataset else 0)
        for pool in pool_list:
            seqs = sorted((app.seq, dataset.seq if dataset else 0, pool.seq), reverse=True)
            yield fixed + pool.price, seqs, (app.order, dataset.order if dataset else None, pool.order)

    merged = heapq.merge(*(walk(a, d) for a, d in pairs), key=lambda item: (item[0], item[1]))
    for _, _, combo in itertools.islice(merged, MAX_CANDIDATES_PER_REQUEST):
        yield combo


def best_match(
    request: RequestOrder, book: OrderBook, view: MarketView, verifier: SignatureVerifier
) -> tuple[MatchOrders, MatchTerms] | None:
    for app, dataset, pool in _candidates(request, book, view):
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
    with book.hiding() as hide:
        for request in book.requests():
            if len(proposals) >= limit:
                break
            if pending.consumed(request.payload_digest) >= request.volume:
                continue
            found = best_match(request, book, pending, verifier)
            if found is None:
                continue
            match, terms = found
            proposals.append(match)
            used = (match.app_order, match.dataset_order, match.workerpool_order, request)
            for order in pending.consume(used, terms.volume):
                if order is not request:
                    hide(order)
    return proposals


def explain(
    request: RequestOrder, book: OrderBook, view: MarketView, verifier: SignatureVerifier
) -> list[CandidateReport]:
    """For every combination of orders in the book, the rules it breaks with this request (none: a match).

    Unlike the engine this does not pre-filter by app, dataset or category, so a requester also learns why
    an order for another app or category is not a candidate.
    """
    orders = list(book.orders())
    apps = [o for o in orders if isinstance(o, AppOrder)]
    pools = [o for o in orders if isinstance(o, WorkerpoolOrder)]
    datasets: list[DatasetOrder | None] = [o for o in orders if isinstance(o, DatasetOrder)]
    if request.dataset == ZERO_ADDRESS or not datasets:
        datasets = [None]
    reports = []
    for app, dataset, pool in itertools.islice(itertools.product(apps, datasets, pools), MAX_CANDIDATES_PER_REQUEST):
        violations = tuple(match_violations(app, dataset, pool, request, view, verifier))
        reports.append(CandidateReport(app, dataset, pool, violations))
    return reports
