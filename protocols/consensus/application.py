"""What consensus needs from the replicated application (the ledger), and nothing more.

Consensus treats transactions as opaque bytes; the application decides what they mean. Every method
must be deterministic in the committed state and its arguments, because two correct validators must
agree on whether a block is valid (the paper's valid(v)). Times are integer milliseconds passed in;
the application never reads a clock.
"""

from __future__ import annotations

from typing import Protocol


class Application(Protocol):
    def state_digest(self) -> bytes:
        """32-byte digest of the state after the last committed block; it goes into the next block's header."""
        ...

    def check_tx(self, tx: bytes) -> str | None:
        """Mempool admission against the current state: None if acceptable, else a reason code.

        The mempool calls it once per new transaction and, after every `commit_block`, again for each
        transaction still pending, in arrival order (possibly later and in slices, but never out of order). An application may therefore keep a pending view
        (queued nonces) on top of the committed state, provided `commit_block` resets it.
        """
        ...

    def validate_block_txs(self, txs: tuple[bytes, ...], block_time: int) -> str | None:
        """Would `txs` apply, in order, on top of the committed state at `block_time`? Dry run, no mutation.

        None means valid, else a reason code. Called for every proposed block, possibly several times.
        """
        ...

    def commit_block(self, txs: tuple[bytes, ...], block_time: int) -> object:
        """Apply a decided block for real. Only called with txs that `validate_block_txs` accepted.

        What it returns (the ledger: outcomes and state writes to persist) goes to the shell untouched,
        in the block's `Commit` action."""
        ...

    def next_deadline(self) -> int | None:
        """Earliest block time (ms) at which something waits on time, so an empty block is worth making.

        None means nothing waits: then no empty block is made.
        """
        ...
