"""The workerpool manager: owns a workerpool, offers it with a workerpool order, and, when it is the next
block proposer, puts the matching engine's proposals into the mempool as MatchOrders transactions.

Validation and proposing blocks are the consensus driver's job; this role only decides what to sell and
which matches to submit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from node.roles.base import NodeAPI
from protocols.chain import CommittedBlock
from protocols.crypto import ZERO_ADDRESS, hex_address
from protocols.genesis import NRLC_PER_RLC
from protocols.ledger.market import LedgerMarketView
from protocols.ledger.state import WORKERPOOL
from protocols.ledger.transactions import RegisterWorkerpool
from protocols.orderbook import propose_matches
from protocols.orders import NO_TAG, WorkerpoolOrder

log = logging.getLogger(__name__)

# MatchOrders transactions a manager submits per block it proposes: keeps a block's dry run short.
MAX_MATCHES_PER_BLOCK = 50


@dataclass(frozen=True)
class ManagerPolicy:
    """What the pool sells: price per task (nRLC), how many tasks per order, trust offered, category, tag."""

    price: int = NRLC_PER_RLC
    volume: int = 1_000
    trust: int = 5
    category: int = 0
    tag: bytes = NO_TAG


class ManagerRole:
    name = "manager"

    def __init__(self, policy: ManagerPolicy | None = None) -> None:
        self.policy = policy or ManagerPolicy()
        self.workerpool: bytes | None = None
        self.offer: WorkerpoolOrder | None = None
        self._registering = False

    async def start(self, api: NodeAPI) -> None:
        await self._ensure_workerpool(api)

    async def on_block(self, api: NodeAPI, height: int, committed: CommittedBlock) -> None:
        if self.workerpool is None:
            await self._ensure_workerpool(api)
        elif self.offer is None or self._spent(api, self.offer):
            await self._publish_offer(api)
        if api.is_next_proposer():
            await self._submit_matches(api)

    def _own_workerpool(self, api: NodeAPI) -> bytes | None:
        view = api.ledger_view()
        for key, pool in view.base.items_with_prefix(WORKERPOOL):
            if pool.owner == api.keypair.address:
                return key[len(WORKERPOOL):]
        return None

    async def _ensure_workerpool(self, api: NodeAPI) -> None:
        self.workerpool = self._own_workerpool(api)
        if self.workerpool is not None:
            log.info("event=workerpool-ready workerpool=%s", hex_address(self.workerpool))
            self._registering = False
            await self._publish_offer(api)
        elif not self._registering:
            self._registering = True
            await api.submit(RegisterWorkerpool(f"pool of {hex_address(api.keypair.address)}"))
            log.info("event=workerpool-registering")

    async def _publish_offer(self, api: NodeAPI) -> None:
        assert self.workerpool is not None
        p = self.policy
        unsigned = WorkerpoolOrder(
            self.workerpool, p.price, p.volume, p.tag, p.category, p.trust, ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS,
            salt=api.height.to_bytes(8, "big"),
        )
        self.offer = await api.publish_order(unsigned)
        log.info("event=workerpool-order-published price=%d volume=%d trust=%d", p.price, p.volume, p.trust)

    def _spent(self, api: NodeAPI, order: WorkerpoolOrder) -> bool:
        return api.ledger_view().consumed(order.payload_digest) >= order.volume

    async def _submit_matches(self, api: NodeAPI) -> None:
        view = LedgerMarketView(api.ledger_view(), {c.id: c for c in api.genesis.categories})
        book = api.order_book
        for match in propose_matches(book, view, book.verifier, MAX_MATCHES_PER_BLOCK):
            try:
                await api.submit(match)
            except ValueError as exc:
                log.info("event=match-not-submitted request=%s reason=%s", match.request_order.payload_digest.hex()[:16], exc)
                continue
            log.info(
                "event=match-submitted request=%s workerpool=%s",
                match.request_order.payload_digest.hex()[:16],
                hex_address(match.workerpool_order.workerpool),
            )
