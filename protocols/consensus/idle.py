"""Idle heights: round 0 of a height starts only when a block is worth making.

Not in the paper, whose StartRound(0) follows every decision at once (line 54). Like CometBFT's
`create_empty_blocks = false`, a height waits before round 0 until there is a transaction, an application
deadline is due (claims, reopens and late finalizations only become valid with block time), a valid
proposal arrives, or f+1 validators are already at work on it. Blocks are then only made when they carry
something, and an idle chain costs nothing.

The state machine asks `block_due` at the start of a height and whenever transactions arrive; a due time
in the future is a `WaitTimer` (actions.py) for that height.
"""

from __future__ import annotations

from protocols.chain_params import ChainParams
from protocols.consensus.application import Application
from protocols.consensus.blocks import ChainTip, first_empty_block_time


def block_due(tip: ChainTip, app: Application, params: ChainParams, has_txs: bool, now: int) -> int | None:
    """When a block after `tip` becomes worth making: `now` with transactions waiting, else the earliest time
    an empty block may carry; None while nothing waits on time (transactions will wake the height)."""
    if has_txs:
        return now
    return first_empty_block_time(tip, app, params)
