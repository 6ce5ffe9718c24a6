"""`pocnet/<chain>/orders` and the node's order book: orders from gossip and our own are admitted if the
ledger does not already rule them out, kept in the store across restarts, and pruned once blocks spend them
(DESIGN.md section 4)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from node.consensus_driver import wall_ms
from node.net.gossip import Rejected
from node.outbox import Outbox
from node.storage import Store
from protocols.crypto import Keypair, SignatureVerifier, sign
from protocols.encoding import DecodeError, decode
from protocols.ledger.market import LedgerMarketView
from protocols.matching import order_violations
from protocols.orderbook import OrderBook
from protocols.orders import Order, OrderT

log = logging.getLogger(__name__)


class OrderTopic:
    batched = True

    def __init__(
        self,
        order_book: OrderBook,
        store: Store,
        market_view: Callable[[], LedgerMarketView],
        verifier: SignatureVerifier,
        caught_up: Callable[[], bool],
        keypair: Keypair,
        outbox: Outbox,
    ) -> None:
        """`market_view` is the committed ledger as the matching rules read it; `caught_up` says whether the
        node's start-up catch-up is over (see `refusal`); our own orders are signed with `keypair` and
        gossiped by `outbox`. The book is restored from the store."""
        self._book = order_book
        self._keypair = keypair
        self._outbox = outbox
        self._store = store
        self._market_view = market_view
        self._verifier = verifier
        self._caught_up = caught_up
        for order, _ in store.load_orders():
            self._book.add(order)

    def validate(self, peer: str, data: bytes) -> Order | Rejected:
        try:
            order = decode(Order, data)
        except DecodeError as exc:
            return Rejected(f"undecodable order: {exc.reason}")
        reason = self.refusal(order, judge_unknown_assets=self._caught_up())
        return order if reason is None else Rejected(reason)

    def refusal(self, order: Order, judge_unknown_assets: bool = True) -> str | None:
        """Why the ledger already rules `order` out (its signature, its asset's owner, its category), or
        None: such an order is neither admitted to a book nor relayed. While the node is still catching
        up, an asset it does not know yet may well be registered in a block it has not seen: an order for
        it is then passed on (not admitted: `handle` asks again), since a rejection would count against
        honest relays, and a node syncing a long chain would end up banning all of them."""
        found = order_violations(order, self._market_view(), self._verifier)
        if not judge_unknown_assets:
            found = [v for v in found if not v.code.endswith("-not-registered")]
        return f"{found[0].code}: {found[0].detail}" if found else None

    async def handle(self, peer: str, order: Order) -> None:
        if self.refusal(order) is not None:
            return  # passed on while we caught up, for an asset still unknown here: its owner announces it again
        if self._market_view().consumed(order.payload_digest) >= order.volume:
            return  # an old announcement of a spent order
        if self._book.add(order) is None:
            self._store.save_orders([(order, wall_ms())])

    async def publish(self, order: OrderT) -> OrderT:
        """Sign `order`, admit it to our book and the store, and hand it to the outbox for gossip until spent.
        Raises ValueError with the reason the ledger rules it out."""
        signed = sign(self._keypair, self._verifier.chain_id, order)
        reason = self.refusal(signed) or self._book.add(signed)
        if reason not in (None, "duplicate"):
            raise ValueError(reason)
        self._store.save_orders([(signed, wall_ms())])
        await self._outbox.announce_order(signed)
        log.info("event=order-published kind=%s hash=%s", type(order).__name__, signed.payload_digest.hex()[:16])
        return signed

    def prune(self) -> set[bytes]:
        """After a block: drop the orders it spent or made invalid, here and in the store; their hashes."""
        before = {o.payload_digest for o in self._book.orders()}
        self._book.prune(self._market_view())
        spent = before - {o.payload_digest for o in self._book.orders()}
        if spent:
            self._store.delete_orders(spent)
        return spent
