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
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from protocols.crypto import ZERO_ADDRESS, SignatureVerifier
from protocols.ledger.transactions import MatchOrders
from protocols.matching import MarketView, MatchTerms, Violation, check_match, match_violations
from protocols.orders import AppOrder, DatasetOrder, Order, RequestOrder, WorkerpoolOrder, order_price

# How many (app, dataset, workerpool) combinations the engine examines per request order before giving up:
# bounds the work a flood of incompatible orders can cause one proposer.
MAX_CANDIDATES_PER_REQUEST = 2_000
# How many orders the book holds at most; the oldest are dropped first (they are re-announced if still live).
MAX_BOOK_ORDERS = 100_000


# The kind of order an entry holds: each index of the book holds one kind.
OrderT = TypeVar("OrderT", bound=Order, covariant=True)


class BookEntry(NamedTuple, Generic[OrderT]):
    """Sorted as a plain tuple by (price, seq); seq is unique, so `order` is never compared. A tuple and
    not a dataclass because comparisons happen on every insertion into the sorted indexes."""

    price: int
    seq: int  # arrival position in this book: the tie-break after price
    order: OrderT


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
        self._entries: dict[bytes, BookEntry[Order]] = {}
        # Each sorted index holds the one kind of order its accessor below names.
        self._apps: dict[bytes, list[BookEntry[Any]]] = {}
        self._datasets: dict[bytes, list[BookEntry[Any]]] = {}
        self._pools: dict[int, list[BookEntry[Any]]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, order_hash: bytes) -> bool:
        return order_hash in self._entries

    def _index(self, order: Order) -> list[BookEntry[Any]] | None:
        """The sorted list an order lives in (requests live only in `_entries`, in arrival order)."""
        indexes: dict[Any, list[BookEntry[Any]]]
        key: Any
        if isinstance(order, WorkerpoolOrder):
            indexes, key = self._pools, order.category
        elif isinstance(order, AppOrder):
            indexes, key = self._apps, order.app
        elif isinstance(order, DatasetOrder):
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

    def prune(self, view: MarketView) -> int:
        """Drop orders with no volume left on the ledger; return how many."""
        spent = [h for h, e in self._entries.items() if view.consumed(h) >= e.order.volume]
        for order_hash in spent:
            self.remove(order_hash)
        return len(spent)

    def orders(self) -> Iterator[Order]:
        return (e.order for e in self._entries.values())

    def find(self, prefix: bytes) -> list[Order]:
        """The orders whose id starts with `prefix` (a full id, or the start of one a person copied)."""
        if len(prefix) == 32:
            entry = self._entries.get(prefix)
            return [entry.order] if entry else []
        return [e.order for h, e in self._entries.items() if h.startswith(prefix)]

    def requests(self) -> list[RequestOrder]:
        return [e.order for e in self._entries.values() if isinstance(e.order, RequestOrder)]

    def app_entries(self, app: bytes) -> list[BookEntry[AppOrder]]:
        return self._apps.get(app, [])

    def dataset_entries(self, dataset: bytes) -> list[BookEntry[DatasetOrder]]:
        return self._datasets.get(dataset, [])

    def pool_entries(self, category: int) -> list[BookEntry[WorkerpoolOrder]]:
        return self._pools.get(category, [])


EntryT = TypeVar("EntryT", AppOrder, DatasetOrder, WorkerpoolOrder)


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

    It also keeps, per sorted index of the book, how many leading entries are spent: volume only grows
    within a batch, so those stay spent, and every walk starts after them. The cheapest orders are the
    first used, so without this each request of a batch would walk past all that earlier ones used up.
    """

    def __init__(self, view: MarketView) -> None:
        self._consumed = _ReadThrough(view.consumed)
        self.consumed: Callable[[bytes], int] = self._consumed.__getitem__
        self._owners = _ReadThrough(lambda key: view.asset_owner(*key))
        self.category_exists = view.category_exists
        self._spent_prefix: dict[int, int] = {}  # by id() of an index list: the book does not change in a batch

    def asset_owner(self, kind: str, address: bytes) -> bytes | None:
        return self._owners[kind, address]  # type: ignore[no-any-return]

    def consume(self, orders: Iterable[Order | None], volume: int) -> None:
        known = self._consumed
        for order in orders:
            if order is not None:
                known[order.payload_digest] += volume

    def unspent(self, entries: list[BookEntry[EntryT]]) -> Iterator[BookEntry[EntryT]]:
        """The entries of a sorted index that have volume left, in order; from the first walk that finds
        spent entries at its head, later walks start after them."""
        consumed = self._consumed
        start = self._spent_prefix.get(id(entries), 0)
        head = True
        for position in range(start, len(entries)):
            entry = entries[position]  # by position: walks start after the spent prefix
            order = entry.order
            if consumed[order.payload_digest] < order.volume:
                head = False
                yield entry
            elif head:
                self._spent_prefix[id(entries)] = position + 1

    def unspent_list(self, entries: list[BookEntry[EntryT]]) -> list[BookEntry[EntryT]]:
        """`unspent` as a list; an index of one order (an app or dataset usually has one) without a generator."""
        consumed = self._consumed
        if len(entries) == 1:
            order = entries[0].order
            return [entries[0]] if consumed[order.payload_digest] < order.volume else []
        return list(self.unspent(entries))


Combo = tuple[AppOrder, DatasetOrder | None, WorkerpoolOrder]


def _live_pools(request: RequestOrder, book: OrderBook, view: _PendingConsumption) -> Iterator[BookEntry[WorkerpoolOrder]]:
    """The request's category's pool orders it may use and that have volume left, in (price, seq) order."""
    wanted = request.workerpool
    candidates = view.unspent(book.pool_entries(request.category))
    if wanted == ZERO_ADDRESS:
        return itertools.islice(candidates, MAX_CANDIDATES_PER_REQUEST)
    return (e for e in itertools.islice(candidates, MAX_CANDIDATES_PER_REQUEST) if e.order.workerpool == wanted)


def _merged(
    apps: list[BookEntry[AppOrder]],
    datasets: list[BookEntry[DatasetOrder]] | list[None],
    pools: Iterator[BookEntry[WorkerpoolOrder]],
) -> Iterator[Combo]:
    """Every combination of the live orders, cheapest total first, then earliest."""
    pool_list = list(pools)

    def walk(app: BookEntry[AppOrder], dataset: BookEntry[DatasetOrder] | None) -> Iterator[tuple[int, list[int], Combo]]:
        fixed = app.price + (dataset.price if dataset else 0)
        for pool in pool_list:
            seqs = sorted((app.seq, dataset.seq if dataset else 0, pool.seq), reverse=True)
            yield fixed + pool.price, seqs, (app.order, dataset.order if dataset else None, pool.order)

    merged = heapq.merge(*(walk(a, d) for a in apps for d in datasets), key=lambda item: (item[0], item[1]))
    for _, _, combo in itertools.islice(merged, MAX_CANDIDATES_PER_REQUEST):
        yield combo


def best_match(
    request: RequestOrder, book: OrderBook, view: MarketView, verifier: SignatureVerifier
) -> tuple[MatchOrders, MatchTerms] | None:
    """The cheapest (then earliest) orders that match `request`, with the terms of their deal; or None."""
    return _best_match(request, book, _PendingConsumption(view), verifier)


def _best_match(
    request: RequestOrder, book: OrderBook, view: _PendingConsumption, verifier: SignatureVerifier
) -> tuple[MatchOrders, MatchTerms] | None:
    """Candidates are walked cheapest first, then earliest; the first that passes every rule wins."""
    apps = view.unspent_list(book.app_entries(request.app))
    datasets: list[BookEntry[DatasetOrder]] | list[None] = (
        [None] if request.dataset == ZERO_ADDRESS else view.unspent_list(book.dataset_entries(request.dataset))
    )
    if not apps or not datasets:
        return None
    pools = _live_pools(request, book, view)
    if len(apps) == 1 and len(datasets) == 1:
        # The common case: one app order and one dataset order (or none); pools are walked lazily, as
        # usually the first live one matches.
        app, dataset = apps[0].order, datasets[0]
        dataset_order = dataset.order if dataset is not None else None
        for pool in pools:
            terms = check_match(app, dataset_order, pool.order, request, view, verifier)
            if isinstance(terms, MatchTerms):
                return MatchOrders(app, dataset_order, pool.order, request), terms
        return None
    for app, dataset_order, pool_order in _merged(apps, datasets, pools):
        terms = check_match(app, dataset_order, pool_order, request, view, verifier)
        if isinstance(terms, MatchTerms):
            return MatchOrders(app, dataset_order, pool_order, request), terms
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
        if pending.consumed(request.payload_digest) >= request.volume:
            continue
        found = _best_match(request, book, pending, verifier)
        if found is None:
            continue
        match, terms = found
        proposals.append(match)
        pending.consume((match.app_order, match.dataset_order, match.workerpool_order, request), terms.volume)
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
