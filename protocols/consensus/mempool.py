"""Transactions waiting for a block: deduplicated by hash, checked against the state, bounded.

The proposer takes them in arrival order (DESIGN.md section 5). After every committed block the pool
drops what the block included and re-checks the rest against the new state, so a transaction that the
block made invalid (a spent nonce, a consumed order) does not sit in the pool for ever.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict

from protocols.consensus.application import Application

log = logging.getLogger(__name__)

# A few blocks' worth at the default block size: enough to ride out a burst, small enough that a
# spammer cannot grow a validator's memory without limit.
DEFAULT_MAX_TXS = 10_000
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
# One transaction: far above any ledger transaction (a MatchOrders with four orders is a few KiB).
DEFAULT_MAX_TX_BYTES = 64 * 1024
# Hashes of recently committed transactions, so a late gossip copy of one is not admitted again before
# the application's own replay protection (nonces) would reject it anyway.
RECENTLY_COMMITTED = 20_000

# Reason codes of `Mempool.add`.
DUPLICATE = "duplicate"
ALREADY_COMMITTED = "already-committed"
FULL = "mempool-full"
TOO_LARGE = "tx-too-large"


def tx_hash(tx: bytes) -> bytes:
    return hashlib.sha256(tx).digest()


class Mempool:
    def __init__(
        self,
        app: Application,
        max_txs: int = DEFAULT_MAX_TXS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_tx_bytes: int = DEFAULT_MAX_TX_BYTES,
    ) -> None:
        self._app = app
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.max_tx_bytes = max_tx_bytes
        self._txs: OrderedDict[bytes, bytes] = OrderedDict()  # hash -> tx, in arrival order
        self._bytes = 0
        self._committed: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx: bytes) -> bool:
        return tx_hash(tx) in self._txs

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def add(self, tx: bytes) -> str | None:
        """Admit `tx`: None if it is now in the pool, else the reason code it is not."""
        if len(tx) > self.max_tx_bytes:
            return TOO_LARGE
        h = tx_hash(tx)
        if h in self._txs:
            return DUPLICATE
        if h in self._committed:
            return ALREADY_COMMITTED
        if len(self._txs) >= self.max_txs or self._bytes + len(tx) > self.max_bytes:
            return FULL
        reason = self._app.check_tx(tx)
        if reason is not None:
            return reason
        self._txs[h] = tx
        self._bytes += len(tx)
        return None

    def reap(self, max_txs: int, max_bytes: int) -> tuple[bytes, ...]:
        """The oldest transactions, in arrival order, within the given bounds (the pool is unchanged)."""
        out: list[bytes] = []
        total = 0
        for tx in self._txs.values():
            if len(out) >= max_txs or total + len(tx) > max_bytes:
                break
            out.append(tx)
            total += len(tx)
        return tuple(out)

    def remove(self, txs: tuple[bytes, ...]) -> None:
        for tx in txs:
            old = self._txs.pop(tx_hash(tx), None)
            if old is not None:
                self._bytes -= len(old)

    def update(self, committed: tuple[bytes, ...]) -> int:
        """After a block was committed: drop its transactions, evict those now invalid. Returns evictions."""
        for tx in committed:
            h = tx_hash(tx)
            old = self._txs.pop(h, None)
            if old is not None:
                self._bytes -= len(old)
            self._committed[h] = None
        while len(self._committed) > RECENTLY_COMMITTED:
            self._committed.popitem(last=False)
        evicted = [h for h, tx in self._txs.items() if self._app.check_tx(tx) is not None]
        for h in evicted:
            self._bytes -= len(self._txs.pop(h))
        if evicted:
            log.debug("mempool evicted=%d remaining=%d", len(evicted), len(self._txs))
        return len(evicted)
