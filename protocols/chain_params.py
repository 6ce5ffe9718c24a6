"""The parameters every node of one chain must agree on, and the absolute bounds they must stay within.

`ChainParams` is part of the genesis (so part of its hash: two networks with different parameters are two
chains, and their nodes refuse each other at the chain hello). Per-node choices, such as timeouts or the
size of a node's mempool, are node configuration instead: nodes with different ones still agree on every block.

The `MAX_*` constants are hard upper bounds fixed by the code, not by a chain: wire decoders use them to
refuse oversized input before any genesis is known, and a genesis asking for more is refused.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, fields
from typing import Annotated

from protocols.encoding import Range, wire

# A block's transaction count: a bound the block decoder applies before it knows the chain, kept below
# encoding.MAX_CONTAINER_LEN.
MAX_BLOCK_TXS = 5_000
# A block's transaction bytes: the proposal that carries the block must stay under the 1 MiB message limit of
# py-libp2p gossip together with its envelope (header, certificate of up to MAX_VALIDATORS signatures).
MAX_BLOCK_BYTES = 900_000
# One transaction on the wire: far above any ledger transaction (a MatchOrders with four orders is a few KiB).
MAX_TX_BYTES = 64 * 1024
# A proposer may stamp its block this far from true time and move every task deadline with it; a minute is
# already far more than NTP-synchronised clocks drift.
MAX_CLOCK_DRIFT_MS = 60_000
# Empty blocks are spaced at least this much: a day keeps a chain whose deadlines wait on them usable.
MAX_EMPTY_BLOCK_INTERVAL_MS = 24 * 3600 * 1000


@wire(tag=54)
@dataclass(frozen=True)
class ChainParams:
    """The defaults are the values every network used before the genesis carried them, so an older genesis
    file (without `chain_params`) describes the same chain rules it did."""

    # On the 2-core devnet a 1,000-transfer (190 KB) proposal took six rounds (90 s) to decide under load,
    # while blocks of a few hundred transfers decide in round 0: many small blocks beat few large ones.
    max_block_txs: Annotated[int, Range(1, MAX_BLOCK_TXS)] = 250
    max_block_bytes: Annotated[int, Range(1, MAX_BLOCK_BYTES)] = 64 * 1024
    # MatchOrders, the largest ledger transaction, carries four signed orders: a few KiB.
    max_tx_bytes: Annotated[int, Range(1, MAX_TX_BYTES)] = 16 * 1024
    # A fresh proposal whose time is further than this from our clock is not prevoted (CometBFT's PBTS
    # precision + message delay are of this order; a loopback devnet's clocks agree far better).
    max_clock_drift_ms: Annotated[int, Range(1, MAX_CLOCK_DRIFT_MS)] = 2_000
    # An empty block is only made when something waits on time, and not more often than this.
    empty_block_interval_ms: Annotated[int, Range(1, MAX_EMPTY_BLOCK_INTERVAL_MS)] = 1_000

    def __post_init__(self) -> None:
        # The same bounds as the wire decoder's (the annotations), with an error that names the genesis field.
        for name, (lo, hi) in _bounds().items():
            value = getattr(self, name)
            if type(value) is not int or not lo <= value <= hi:
                raise ValueError(f"chain_params.{name} must be an integer from {lo} to {hi}, got {value!r}")
        if self.max_tx_bytes > self.max_block_bytes:
            raise ValueError(
                f"chain_params.max_tx_bytes {self.max_tx_bytes} exceeds max_block_bytes {self.max_block_bytes}: "
                "such a transaction could never be in a block"
            )


CHAIN_PARAM_KEYS = tuple(f.name for f in fields(ChainParams))


@functools.cache
def _bounds() -> dict[str, tuple[int, int]]:
    """Each field's inclusive (lo, hi), read from its `Range` annotation."""
    hints = typing.get_type_hints(ChainParams, include_extras=True)
    return {
        name: next((r.lo, r.hi) for r in typing.get_args(hints[name])[1:] if isinstance(r, Range))
        for name in CHAIN_PARAM_KEYS
    }
