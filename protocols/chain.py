"""The ledger as consensus sees it: `LedgerApplication` implements `consensus.application.Application`.

Consensus moves opaque transaction bytes; this adapter decodes them, checks them for the mempool against
the committed state plus what the mempool already admitted (so a sender may queue nonces n, n+1, ...),
dry-runs blocks, commits them, and tells consensus when an empty block is worth making: when a task
deadline passes, because claims, reopens and late finalizations only become valid with block time.

A block is valid only if every one of its transactions applies successfully in order: the chain holds
no failed transactions, and proposers drop conflicting ones before proposing.
"""

from __future__ import annotations

import heapq
from collections import ChainMap, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeGuard

from protocols.chain_params import MAX_TX_BYTES
from protocols.encoding import DecodeError, decode
from protocols.ledger.ledger import Ledger, TxOutcome, apply
from protocols.ledger.records import Task, TaskStatus
from protocols.ledger.state import TASK, LedgerState, Writes
from protocols.ledger.transactions import Transaction

# Decoded transactions remembered: a few full mempools' worth.
DECODE_CACHE = 50_000


class _Overlay(LedgerState):
    """Pending writes layered over a committed state, for dry runs of several transactions in sequence."""

    def __init__(self, base: LedgerState) -> None:
        super().__init__()
        self._writes: dict[bytes, object] = {}
        self._entries = ChainMap(self._writes, base._entries)  # type: ignore[assignment]

    def apply_writes(self, writes: Writes) -> None:
        self._writes.update(writes)

    @property
    def writes(self) -> Writes:
        return self._writes


@dataclass(frozen=True)
class CommittedBlock:
    """What committing a block did: per-transaction outcomes and the state writes to persist."""

    time: int
    outcomes: tuple[TxOutcome, ...]
    writes: Writes


def decode_tx(data: bytes, max_tx_bytes: int = MAX_TX_BYTES) -> Transaction:
    """Decode a transaction of at most `max_tx_bytes` (by default the hard bound, for transactions already in
    blocks, which the chain's own limit was checked on)."""
    tx: Transaction = decode(Transaction, data, max_size=max_tx_bytes)
    return tx


def _open(task: object) -> TypeGuard[Task]:
    return isinstance(task, Task) and task.status in (TaskStatus.ACTIVE, TaskStatus.REVEALING)


def _task_deadlines(task: Task) -> tuple[int, int, int]:
    return task.contribution_deadline, task.reveal_deadline, task.final_deadline


class LedgerApplication:
    def __init__(self, ledger: Ledger, last_block_time: int = 0, max_tx_bytes: int = MAX_TX_BYTES) -> None:
        """`max_tx_bytes`: the chain's (ChainParams); a larger transaction is undecodable here, so gossip drops it."""
        self.ledger = ledger
        self.max_tx_bytes = max_tx_bytes
        self.last_block_time = last_block_time
        self._mempool_state = _Overlay(ledger.state)
        self._deadlines: list[tuple[int, bytes]] = []  # (deadline, task key), earliest first
        self._validated: tuple[tuple[bytes, ...], int, tuple[TxOutcome, ...], Writes] | None = None
        self._decoded: OrderedDict[bytes, Transaction] = OrderedDict()
        self.track_deadlines(ledger.state.items_with_prefix(TASK))

    # --- Application protocol --------------------------------------------------------------------

    def state_digest(self) -> bytes:
        return self.ledger.state.digest()

    def decode(self, tx: bytes) -> Transaction:
        """`decode_tx` with a bounded cache: a transaction is decoded on gossip, on admission, again on every
        mempool re-check after a block, and in the block's dry run; decoding it once saves most of that."""
        cached = self._decoded.get(tx)
        if cached is None:
            cached = decode_tx(tx, self.max_tx_bytes)
            self._decoded[tx] = cached
            if len(self._decoded) > DECODE_CACHE:
                self._decoded.popitem(last=False)
        return cached

    def check_tx(self, tx: bytes) -> str | None:
        try:
            transaction = self.decode(tx)
        except DecodeError as exc:
            return f"undecodable: {exc.reason}"
        outcome = apply(self.ledger.rules, self._mempool_state, transaction, self._mempool_time())
        if not outcome.ok:
            return outcome.code
        self._mempool_state.apply_writes(outcome.writes or {})
        return None

    def validate_block_txs(self, txs: tuple[bytes, ...], block_time: int) -> str | None:
        result = self._dry_run(txs, block_time)
        return result if isinstance(result, str) else None

    def next_deadline(self) -> int | None:
        """The earliest deadline after the last block of a task still open in the committed state.

        A pure function of the state: the deadlines of a task that has ended since it was tracked are
        skipped here. Keeping them (as this did) let a node that had watched the task live accept an empty
        block at a completed task's deadline that a node restarted since (which tracks only the open tasks
        it loads) refused, so the restarted node rejected a certified block while syncing and never caught
        up (found by the chaos runner with app runs)."""
        while self._deadlines:
            deadline, key = self._deadlines[0]
            task = self.ledger.state.get(key)
            if deadline > self.last_block_time and _open(task) and deadline in _task_deadlines(task):
                return deadline
            heapq.heappop(self._deadlines)
        return None

    def commit_block(self, txs: tuple[bytes, ...], block_time: int) -> CommittedBlock:
        """Apply a decided block; return what it did (consensus hands it to the node in the block's
        `Commit` action; the node stores the writes and reports the outcomes)."""
        result = self._dry_run(txs, block_time)
        if isinstance(result, str):
            # Consensus only decides blocks that validated; reaching here means the state diverged.
            raise AssertionError(f"committing an invalid block: {result}")
        outcomes, writes = result
        self.ledger.state.apply_writes(writes)
        self.last_block_time = block_time
        self._mempool_state = _Overlay(self.ledger.state)
        self._validated = None
        self.track_deadlines((k, v) for k, v in writes.items() if k.startswith(TASK))
        return CommittedBlock(block_time, outcomes, writes)

    # --- beyond the protocol ---------------------------------------------------------------------

    def track_deadlines(self, tasks: Iterable[tuple[bytes, object]]) -> None:
        """Remember the deadlines of open tasks (state key, record), each a time at which an empty block is
        worth making."""
        for key, task in tasks:
            if _open(task):
                for deadline in _task_deadlines(task):
                    if deadline > self.last_block_time:
                        heapq.heappush(self._deadlines, (deadline, key))

    def _mempool_time(self) -> int:
        # A transaction waiting in the mempool will land in a block at least 1 ms after the last one.
        return self.last_block_time + 1

    def _dry_run(self, txs: tuple[bytes, ...], block_time: int) -> str | tuple[tuple[TxOutcome, ...], Writes]:
        """Apply `txs` in order on an overlay; a reason if any fails, else outcomes and merged writes.

        The last successful dry run is remembered: consensus validates a proposal and then commits the same
        block, and the proposer validates what it proposes, so this saves re-applying every block.
        """
        cached = self._validated
        if cached is not None and cached[0] == txs and cached[1] == block_time:
            return cached[2], cached[3]
        if block_time <= self.last_block_time:
            return "block-time-not-increasing"
        overlay = _Overlay(self.ledger.state)
        outcomes = []
        for index, data in enumerate(txs):
            try:
                tx = self.decode(data)
            except DecodeError as exc:
                return f"tx {index} undecodable: {exc.reason}"
            outcome = apply(self.ledger.rules, overlay, tx, block_time)
            if not outcome.ok:
                return f"tx {index} rejected: {outcome.code}"
            overlay.apply_writes(outcome.writes or {})
            outcomes.append(outcome)
        self._validated = (txs, block_time, tuple(outcomes), overlay.writes)
        return tuple(outcomes), overlay.writes
