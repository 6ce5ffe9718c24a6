"""How long this chain takes for a block when it has work: the measure that paces what a node sends in bulk.

An interval between two commits counts only when the first block left transactions waiting: an idle chain
makes no blocks, and the wait for the next transaction says nothing of the chain's speed. The median of the
last few such intervals is the chain's busy pace. On a machine half as fast it doubles, so whatever is paced
by it (node/node.py's gossip batches) costs the network the same per block on any machine, instead of the
same per second, which a slower machine cannot pay.
"""

from __future__ import annotations

import statistics
from collections import deque


class ChainPace:
    def __init__(self, samples: int) -> None:
        """`samples`: how many recent busy intervals the median is taken over (a few blocks: one slow round
        moves it little, and a chain that speeds up is followed within as many blocks)."""
        self._intervals: deque[float] = deque(maxlen=samples)
        self._last_commit: float | None = None
        self._work_left = False

    def on_commit(self, now: float, waiting: int) -> None:
        """A block committed at `now` (any monotonic clock), leaving `waiting` transactions in the mempool."""
        if self._last_commit is not None and self._work_left:
            self._intervals.append(now - self._last_commit)
        self._last_commit, self._work_left = now, waiting > 0

    @property
    def busy(self) -> bool:
        """The last block left transactions waiting: the chain is at capacity now."""
        return self._work_left

    def busy_block_interval(self) -> float | None:
        """Median seconds from one block to the next while transactions waited; None before any is known."""
        return statistics.median(self._intervals) if self._intervals else None
