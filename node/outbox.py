"""What this node sends on its own account, until the ledger has it: our transactions (signed with the next
nonce, admitted, gossiped, then re-announced with back-off while pending) and our orders (re-announced until
consumed or expired). Gossip is lossy (DESIGN.md section 8); this is the part of the node that repairs the
loss for what we originate. Relaying what others send is the topic handlers' job (node/topic_handlers/).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import trio

from node.admission import Admission
from node.net.host import P2PHost
from node.storage import Store
from node.topics import Topics
from protocols.consensus.mempool import Mempool
from protocols.crypto import Keypair, sign
from protocols.encoding import encode
from protocols.ledger.state import StateView
from protocols.ledger.transactions import Transaction, TxBody
from protocols.orders import Order

log = logging.getLogger(__name__)

# Gossip loses messages: our own orders are announced again at this interval until the ledger consumes
# them. A pending transaction of ours is announced again when the chain, since its last announcement, has
# committed as many transactions as our mempool held then (all that may rightly go first) and OVERDUE_BLOCKS
# blocks more without it: a proposer that had it would have taken it. Counted in blocks, not seconds: a
# slower chain keeps transactions waiting longer, rightly, and at a fixed 3 s every transaction of the
# 3,000-transfer burst at --cpu-limit 0.5 went out again once or twice, each copy read by every node
# (bench/liveness.py: 12.7 ms of CPU per committed transaction, 10.3 ms without the copies). On a chain
# that commits nothing (idle, or stalled), where no block can show the loss, it goes out again after
# REANNOUNCE_S of that silence, then after doubling intervals up to REANNOUNCE_MAX_S (DESIGN.md section 8).
REANNOUNCE_S = 3.0
REANNOUNCE_MAX_S = 60.0
OVERDUE_BLOCKS = 2
# At most this many of our pending transactions go out again per round: every receiver decodes and checks
# each one, so re-sending a whole backlog at once costs the network more than the loss it repairs.
REANNOUNCE_MAX_TXS = 200
PENDING = "pending"
UNKNOWN = "unknown transaction"
DROPPED = "dropped from the mempool: no longer valid"


@dataclass
class PendingTx:
    """One of our transactions not yet in a block, and what the chain did since we last announced it."""

    nonce: int
    data: bytes
    announced_at: float  # trio clock
    ahead: int  # transactions in our mempool at that announcement: all that may commit before this one
    interval: float = REANNOUNCE_S  # the silence (no block at all) after which it goes out again
    committed_since: int = 0  # transactions committed since that announcement
    blocks_past_ahead: int = 0  # blocks committed without it once those ahead could all have been

    def on_block(self, txs: int) -> None:
        """A block of `txs` transactions committed without this one."""
        if self.committed_since >= self.ahead:
            self.blocks_past_ahead += 1
        self.committed_since += txs

    def due(self, now: float, last_commit: float) -> bool:
        """Whether to announce it again: blocks passed it by, or the chain has been silent long enough."""
        if self.blocks_past_ahead >= OVERDUE_BLOCKS:
            return True
        return now - self.announced_at >= self.interval and now - last_commit >= self.interval

    def reannounced(self, now: float, ahead: int) -> None:
        """The interval doubles when silence called for it: a transaction still pending after several is
        waiting for a stalled chain, not for a lost message, and re-sending a backlog at a fixed pace is
        what keeps an overloaded network overloaded (a 30-node devnet on 2 cores never recovered that way)."""
        if self.blocks_past_ahead < OVERDUE_BLOCKS:
            self.interval = min(2 * self.interval, REANNOUNCE_MAX_S)
        self.announced_at, self.ahead, self.committed_since, self.blocks_past_ahead = now, ahead, 0, 0


class Outbox:
    """Our transactions and orders on their way to the ledger.

    Inputs: `restore` once at start, `submit` and `announce_order` (the roles and the control API),
    `committed` after each block, `run` in the node's nursery for the re-announcements. `status` answers what
    became of a transaction we sent. The mempool is shared with consensus: a transaction of ours that a block
    made invalid is evicted there by a re-check, and the outbox learns it by looking (`forget_dropped`).

    Our transactions are also kept in the store (its outbox table) from before they are gossiped until a block
    commits them (the store removes them with the block) or they are dropped (the reason is kept): a node
    killed right after accepting a transaction used to lose it, answer "unknown transaction" about it, and
    sign its next one with the same nonce."""

    def __init__(
        self,
        keypair: Keypair,
        topics: Topics,
        host: P2PHost,
        mempool: Mempool,
        admission: Admission,
        ledger_view: Callable[[], StateView],
        wake: Callable[[], None],
        store: Store,
        decode: Callable[[bytes], Transaction],
    ) -> None:
        """`wake` tells consensus that the mempool has something new (a waiting height may start)."""
        self._store = store
        self._decode = decode
        self._keypair = keypair
        self._topics = topics
        self._host = host
        self._mempool = mempool
        self._admission = admission
        self._ledger_view = ledger_view
        self._wake = wake
        self._own_orders: dict[bytes, Order] = {}
        # Ours, not yet committed, by tx id.
        self._pending_txs: dict[bytes, PendingTx] = {}
        self._rejected_txs: dict[bytes, str] = {}
        self._last_commit = -math.inf  # trio clock

    def restore(self) -> None:
        """Our transactions accepted before a restart and not committed since go back into the mempool and the
        re-announce queue; those dropped before it keep their reason."""
        for tx_id, data, dropped in self._store.load_outbox():
            if dropped is not None:
                self._rejected_txs[tx_id] = dropped
            elif self._store.tx_result(tx_id) is None:  # (a committed one left the table with its block)
                reason = self._mempool.add(data)
                if reason is None:
                    # never announced by this process: due at the first round, unless blocks come first
                    self._pending_txs[tx_id] = PendingTx(self._decode(data).nonce, data, -math.inf, len(self._mempool))
                else:
                    self._drop(tx_id, f"dropped after a restart: {reason}")
        if self._pending_txs:
            log.info("event=outbox-restored txs=%d", len(self._pending_txs))

    def _drop(self, tx_id: bytes, reason: str) -> None:
        self._rejected_txs[tx_id] = reason
        self._store.reject_outbox(tx_id, reason)

    def _next_nonce(self) -> int:
        """After the committed nonce and after every transaction of ours still pending. Taking the maximum
        (not committed + pending count) stays right in the moment between a block's commit and the
        cleaning of `_pending_txs`, when a just-committed transaction would otherwise count twice."""
        committed = self._ledger_view().account(self._keypair.address).nonce
        return max([committed, *(pending.nonce + 1 for pending in self._pending_txs.values())])

    async def submit(self, body: TxBody) -> Transaction:
        """Sign, admit and gossip one transaction of ours. Raises ValueError with the reason it was refused."""
        overloaded = self._admission.refuse(len(self._mempool), trio.current_time())
        if overloaded is not None:
            raise ValueError(overloaded)
        async with self._host.bulk_lane.turn():  # bulk work, like a gossiped transaction's check
            # The submitter is owed the state's verdict now, which needs every transaction before theirs checked.
            self._mempool.recheck_all()
            self.forget_dropped()
            tx = sign(self._keypair, self._topics.chain_id, Transaction(self._next_nonce(), body))
            data = encode(tx)
            reason = self._mempool.add(data)
            if reason is not None:
                raise ValueError(reason)
            self._store.save_outbox(tx.tx_id, data)  # before anyone hears of it: a restart must not lose it
        self._pending_txs[tx.tx_id] = PendingTx(tx.nonce, data, trio.current_time(), len(self._mempool))
        await self._host.publish_item(self._topics.txs, data)
        self._wake()
        log.info("event=tx-submitted tx=%s kind=%s nonce=%d", tx.tx_id.hex()[:16], type(body).__name__, tx.nonce)
        return tx

    def is_pending(self, tx_id: bytes) -> bool:
        return tx_id in self._pending_txs

    def status(self, tx_id: bytes) -> str:
        """What became of a transaction not (yet) in a block: PENDING, the reason it never will be, or UNKNOWN
        (not ours, or older than this process)."""
        self.forget_dropped()
        if tx_id in self._pending_txs:
            return PENDING
        return self._rejected_txs.get(tx_id, UNKNOWN)

    async def announce_order(self, order: Order) -> None:
        """Gossip a signed order of ours now and again every REANNOUNCE_S until `committed` says it is spent."""
        self._own_orders[order.payload_digest] = order
        await self._host.publish_item(self._topics.orders, encode(order))

    def committed(self, tx_ids: Iterable[bytes], spent_orders: Iterable[bytes]) -> None:
        """After a block: its transactions and the orders it used up need no more announcing, and each of our
        pending transactions counts the block."""
        count = 0
        for tx_id in tx_ids:
            self._pending_txs.pop(tx_id, None)
            count += 1
        self._last_commit = trio.current_time()
        for pending in self._pending_txs.values():
            pending.on_block(count)
        self.forget_dropped()
        for order_hash in spent_orders:
            self._own_orders.pop(order_hash, None)

    def forget_dropped(self) -> None:
        """Our pending transactions that a block made invalid (evicted by a mempool re-check) will never
        commit: say so to whoever asks. The re-check runs after the commit, in slices, so this is also done
        before answering about a transaction and before a submit picks the next nonce."""
        for tx_id, pending in list(self._pending_txs.items()):
            if pending.data not in self._mempool:
                self._pending_txs.pop(tx_id)
                self._drop(tx_id, DROPPED)

    async def run(self) -> None:
        """Gossip is lossy: re-send our live orders and our pending transactions until the ledger has them."""
        while True:
            await trio.sleep(REANNOUNCE_S)
            for order in list(self._own_orders.values()):
                await self._host.publish_item(self._topics.orders, encode(order))
            now = trio.current_time()
            due = [pending for pending in self._pending_txs.values() if pending.due(now, self._last_commit)]
            for pending in due[:REANNOUNCE_MAX_TXS]:
                pending.reannounced(now, len(self._mempool))
                await self._host.publish_item(self._topics.txs, pending.data)
