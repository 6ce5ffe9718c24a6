"""The interface between the node and its role plugins.

A role is an agent: it reacts to committed blocks (and runs its own loop if it needs one) with actions
through the small `NodeAPI`: read the ledger, submit a transaction, publish an order. Policies inside a
role (prices, volumes) are plain objects that can be replaced.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from node.blobs import BlobStore
from node.directory import Directory
from node.metrics import NodeMetrics
from node.net.host import P2PHost
from node.net.streams import RequestHandler
from protocols.chain import CommittedBlock
from protocols.crypto import Keypair, SignatureVerifier
from protocols.genesis import Genesis
from protocols.ledger.market import LedgerMarketView
from protocols.ledger.state import StateView
from protocols.ledger.transactions import Transaction, TxBody
from protocols.orderbook import OrderBook
from protocols.orders import OrderT

log = logging.getLogger(__name__)


class NodeAPI(Protocol):
    keypair: Keypair
    genesis: Genesis
    verifier: SignatureVerifier
    host: P2PHost
    blobs: BlobStore
    directory: Directory
    data_dir: Path
    metrics: NodeMetrics

    def ledger_view(self) -> StateView:
        """A read-only view of the committed ledger state."""
        ...

    @property
    def height(self) -> int: ...

    @property
    def block_time(self) -> int:
        """The last committed block's time (ms): the ledger's clock, by which deadlines are judged."""
        ...

    @property
    def order_book(self) -> OrderBook: ...

    def proposer_rank(self) -> int | None:
        """0 if this node proposes the next height's first round, k if it proposes round k; None if it is
        not a validator. Managers use it to take turns submitting matches."""
        ...

    async def submit(self, body: TxBody) -> Transaction:
        """Sign with the next nonce, admit to the mempool and gossip; raises ValueError with the reason if
        the mempool refuses it."""
        ...

    async def publish_order(self, order: OrderT) -> OrderT:
        """Sign, add to the book, gossip, and keep re-announcing until consumed; returns the signed order."""
        ...


def market_view(api: NodeAPI) -> LedgerMarketView:
    """The committed ledger as the matching rules read it (owners, consumed volumes, the genesis's categories)."""
    return LedgerMarketView(api.ledger_view(), {c.id: c for c in api.genesis.categories})


class Role(Protocol):
    name: str

    async def start(self, api: NodeAPI) -> None:
        """Called once the node has caught up with the chain (or at once with no peers)."""
        ...

    async def on_block(self, api: NodeAPI, height: int, committed: CommittedBlock) -> None:
        """Called after each committed block, in height order. Must not block for long."""
        ...

    async def tick(self, api: NodeAPI, now: float) -> None:
        """Called every few hundred milliseconds (`now` is trio's monotonic clock): time-driven work."""
        ...

    async def run(self, api: NodeAPI) -> None:
        """A long-running loop of the role's own, in the node's nursery (a worker's execution loop)."""
        ...

    def request_handlers(self, api: NodeAPI) -> dict[str, RequestHandler]:
        """Stream protocols the role serves (a manager's pool, a provider's key release)."""
        ...

    def notes(self, api: NodeAPI) -> list[str]:
        """Lines for `pocnet status`: what the role is doing, or why it cannot and what to do about it."""
        ...


class BaseRole:
    """The part of `Role` most roles leave as it is: nothing to do on blocks or ticks, no loop of their own,
    no stream protocols, nothing to say in `pocnet status`. A role overrides what it needs."""

    name = "role"

    async def start(self, api: NodeAPI) -> None:
        log.info("event=role-started role=%s", self.name)

    async def on_block(self, api: NodeAPI, height: int, committed: CommittedBlock) -> None:
        return None

    async def tick(self, api: NodeAPI, now: float) -> None:
        return None

    async def run(self, api: NodeAPI) -> None:
        return None

    def request_handlers(self, api: NodeAPI) -> dict[str, RequestHandler]:
        return {}

    def notes(self, api: NodeAPI) -> list[str]:
        return []
