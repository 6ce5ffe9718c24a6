"""Transactions waiting for a block: deduplicated by hash, checked against the state, bounded.

The proposer takes them in arrival order (DESIGN.md section 5). After every committed block the pool
drops what the block included and re-checks the rest against the new state, so a transaction that the
block made invalid (a spent nonce, a consumed order) does not sit in the pool for ever.

The re-check is resumable and never part of the commit itself. `update` only marks every pending
transaction unchecked; `recheck(n)` re-checks the next n in arrival order, and the shell runs it in slices
between consensus inputs. Re-checking a whole pool after every block inside the consensus step was the
longest stall of a burst under a CPU quota: 2,750 pending transfers took 0.37 s of CPU on an unloaded core,
every node re-checked at the same moment, and at 0.5 cores shared by 10 nodes that was ~7 s of wall time
per block in which no vote was handled. A re-check that the next block overtakes is simply restarted, so
a pool that commits faster than it re-checks does not pay for re-checks nobody reads.

Invariant: the transactions are the checked ones followed by the unchecked ones, in arrival order; the
application's pending view (its queued nonces) holds exactly the checked ones. A transaction added while
a re-check runs therefore waits behind the unchecked ones and is checked in its turn, and `reap` re-checks
just enough of them to fill the block it is asked for.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict

from protocols.chain_params import MAX_TX_BYTES
from protocols.consensus.application import Application

log = logging.getLogger(__name__)

# A few blocks' worth at the default block size: enough to ride out a burst, small enough that a
# spammer cannot grow a validator's memory without limit.
DEFAULT_MAX_TXS = 10_000
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
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
        max_tx_bytes: int = MAX_TX_BYTES,
    ) -> None:
        self._app = app
        self.max_txs = max_txs
        self.max_bytes = max_bytes
        self.max_tx_bytes = max_tx_bytes
        # hash -> tx, each in arrival order; every checked transaction arrived before every unchecked one.
        self._checked: OrderedDict[bytes, bytes] = OrderedDict()
        self._unchecked: OrderedDict[bytes, bytes] = OrderedDict()
        self._bytes = 0
        self._committed: OrderedDict[bytes, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._checked) + len(self._unchecked)

    def __contains__(self, tx: bytes) -> bool:
        h = tx_hash(tx)
        return h in self._checked or h in self._unchecked

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def unchecked(self) -> int:
        """How many transactions still wait to be re-checked against the last committed block."""
        return len(self._unchecked)

    def add(self, tx: bytes) -> str | None:
        """Admit `tx`: None if it is now in the pool, else the reason code it is not.

        While a re-check runs, a new transaction is only checked for size, duplicates and bounds here and
        against the state in its turn, after the transactions that arrived before it (it may spend a nonce
        they queue); call `recheck_all` first where the caller needs the state's verdict at once.
        """
        if len(tx) > self.max_tx_bytes:
            return TOO_LARGE
        h = tx_hash(tx)
        if h in self._checked or h in self._unchecked:
            return DUPLICATE
        if h in self._committed:
            return ALREADY_COMMITTED
        if len(self) >= self.max_txs or self._bytes + len(tx) > self.max_bytes:
            return FULL
        if self._unchecked:
            self._unchecked[h] = tx
        else:
            reason = self._app.check_tx(tx)
            if reason is not None:
                return reason
            self._checked[h] = tx
        self._bytes += len(tx)
        return None

    def reap(self, max_txs: int, max_bytes: int) -> tuple[bytes, ...]:
        """The oldest transactions, in arrival order, within the given bounds (only re-checks change the pool).

        Re-checks unchecked transactions only as far as the block needs them."""
        while self._unchecked and len(self._checked) < max_txs:
            self.recheck(max_txs - len(self._checked))
        out: list[bytes] = []
        total = 0
        for tx in self._checked.values():
            if len(out) >= max_txs or total + len(tx) > max_bytes:
                break
            out.append(tx)
            total += len(tx)
        return tuple(out)

    def remove(self, txs: tuple[bytes, ...]) -> None:
        for tx in txs:
            self._drop(tx_hash(tx))

    def update(self, committed: tuple[bytes, ...]) -> None:
        """After a block was committed: drop its transactions and mark the rest for a re-check.

        The application's pending view was reset by the commit, so the checked ones become unchecked,
        ahead of those that already were."""
        for tx in committed:
            h = tx_hash(tx)
            self._drop(h)
            self._committed[h] = None
        while len(self._committed) > RECENTLY_COMMITTED:
            self._committed.popitem(last=False)
        self._checked.update(self._unchecked)
        self._checked, self._unchecked = OrderedDict(), self._checked

    def recheck(self, max_txs: int) -> int:
        """Re-check up to `max_txs` unchecked transactions, oldest first; returns how many were evicted."""
        evicted = 0
        for _ in range(min(max_txs, len(self._unchecked))):
            h, tx = self._unchecked.popitem(last=False)
            if self._app.check_tx(tx) is None:
                self._checked[h] = tx
            else:
                self._bytes -= len(tx)
                evicted += 1
        if evicted:
            log.debug("mempool evicted=%d remaining=%d", evicted, len(self))
        return evicted

    def recheck_all(self) -> int:
        """Finish the re-check at once (a local submitter is owed the state's verdict); returns evictions."""
        return self.recheck(len(self._unchecked))

    def _drop(self, h: bytes) -> None:
        old = self._checked.pop(h, None)
        if old is None:
            old = self._unchecked.pop(h, None)
        if old is not None:
            self._bytes -= len(old)
