"""The `matching` target: an order book of mutated orders, the matching engine, and the ledger as judge."""

from __future__ import annotations

from typing import Any

from node.fuzz.mutators import pack_tree, unpack_tree
from node.fuzz.targets.base import Target, feature
from node.fuzz.targets.ledger import resigned_order
from protocols.encoding import DecodeError, decode, encode
from protocols.fuzz.market import scene, sign_next
from protocols.fuzz.oracles import check_apply, require
from protocols.ledger.market import LedgerMarketView
from protocols.orderbook import OrderBook, best_match, explain, propose_matches
from protocols.orders import Order

# Orders per input: enough for several requests competing for a few pools.
MAX_ORDERS = 16
# Matches the engine may propose per input, as a block proposer does (node/roles/manager.py caps at 50).
MAX_PROPOSALS = 8


def _order_variants() -> list[list[Any]]:
    """The scene's usual four orders, and books where they compete: cheaper and dearer pools, a request
    without dataset, restrictions, trust and volume that do or do not fit."""
    m = scene().market
    base = [m.app_order(salt=b"a"), m.dataset_order(salt=b"d"), m.pool_order(salt=b"p", volume=3), m.request_order(salt=b"r")]
    return [
        base,
        [*base, m.pool_order(salt=b"cheap", workerpool_price=1, volume=2), m.request_order(salt=b"r2", volume=2)],
        [m.app_order(salt=b"a"), m.pool_order(salt=b"p"), m.request_order(salt=b"nodata", dataset=bytes(20), dataset_max_price=0)],
        [*base, m.request_order(salt=b"trust", trust=5), m.pool_order(salt=b"t", trust=1)],
        [*base, m.app_order(salt=b"restricted", workerpool_restrict=bytes(20)), m.request_order(salt=b"r3", workerpool=m.pool)],
    ]


class MatchingTarget(Target):
    """The matching engine (`protocols/orderbook.py`) over a book of mutated orders re-signed by their owners.

    Input: a msgpack array of order trees. Each decodable order is signed again by the scene actor whose
    key signed it (so a changed price, volume or restriction is judged by the rules, not by its signature)
    and added to an empty book; the engine then proposes matches against the scene's ledger.
    Oracles, on every input:
    - every match the engine proposes is accepted by the ledger when applied in order (the engine and
      `matchOrders`' rules agree; no two proposals count on the same volume);
    - for every request in the book, `best_match` finds a match exactly when `explain` lists a candidate
      that breaks no rule;
    - the ledger's own oracles (see the `ledger` target) hold for each applied match.
    """

    name = "matching"
    focus = (0,)  # the first order of the book

    def seeds(self) -> list[bytes]:
        return [pack_tree([unpack_tree(encode(o)) for o in orders]) for orders in _order_variants()]

    def execute(self, data: bytes) -> set[str]:
        trees = unpack_tree(data)
        if not isinstance(trees, list):
            return {"not a list of orders"}
        s = scene()
        ledger = s.ledger()
        book = OrderBook(ledger.rules.signatures)
        features = set()
        for tree in trees[:MAX_ORDERS]:
            try:
                order = decode(Order, tree if type(tree) is bytes else pack_tree(tree))
            except (DecodeError, OverflowError, ValueError, TypeError) as exc:
                features.add(feature("undecodable", type(exc).__name__))
                continue
            features.add(feature("book", type(order).__name__, book.add(resigned_order(order)) or "added"))
        categories: dict[int, object] = dict(ledger.rules.categories)
        view = LedgerMarketView(ledger.state.view(), categories)
        for request in book.requests():
            found = best_match(request, book, view, ledger.rules.signatures)
            reports = explain(request, book, view, ledger.rules.signatures)
            clean = [r for r in reports if not r.violations]
            require((found is not None) == bool(clean),
                    f"best_match {'found' if found else 'found no'} match, explain lists {len(clean)} clean candidates")
            features |= {feature("violation", v.code) for r in reports for v in r.violations}
            features.add("request matched" if found else "request unmatched")
        for match in propose_matches(book, view, ledger.rules.signatures, MAX_PROPOSALS):
            outcome = check_apply(ledger, sign_next(ledger, "manager", match), s.market.now)
            require(outcome.ok, f"the engine proposed a match the ledger refuses: {outcome.code} {outcome.detail}")
            features.add("proposal applied")
        return features
