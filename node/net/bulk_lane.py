"""One lane for a node's bulk CPU work, so that everything else waits for one short slice of it at most.

trio runs every runnable task once per scheduler pass, in turn, until each reaches its next checkpoint. The
node's bulk work (checking gossiped transaction and order batches, adding them to the mempool and the book,
re-checking the mempool after a block, admitting local submissions) ran in one task per gossip peer and per
subscription, each yielding after every item: with ten of them busy, a pass cost ten items of CPU.
Everything that must be prompt pays that price per checkpoint: Yamux's per-connection reader needs a few
checkpoints per frame, so a vote or a proposal read behind a few dozen frames of transaction gossip on the
same connection waited hundreds of passes. At the 5% of a core each node gets under `bench.liveness
--cpu-limit 0.5`, proposals that a validator had sent at once were read 3-5 s later by validators whose
event loop never stalled for more than 0.4 s: rounds failed although no message was lost.

Bulk work now takes turns in this lane: a pass contains one slice of it at most, however many peers send
batches, and the tasks waiting for their turn are parked, not runnable. A turn runs items until SLICE_S has
passed, rather than one item: each pass costs trio some overhead (tens of microseconds), and paid per item
it cut a burst's throughput by a third. The CPU does the same items either way.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import TypeVar

import trio

R = TypeVar("R")
T = TypeVar("T")

# The longest a turn keeps other tasks waiting (wall clock, so a machine that is throttled or busy gets
# shorter turns in CPU, never longer waits). Long against a pass's overhead, short against a consensus
# step or a frame read (milliseconds), on any machine: a latency bound, not a rate.
SLICE_S = 0.002


class Turn:
    def __init__(self, slice_s: float) -> None:
        self._ends = time.perf_counter() + slice_s

    @property
    def spent(self) -> bool:
        """The turn's slice is over: release the lane (leave the `turn()` block) before the next item."""
        return time.perf_counter() >= self._ends


class BulkLane:
    def __init__(self, slice_s: float = SLICE_S) -> None:
        self.slice_s = slice_s
        # trio.Lock is fair: a release hands the lock to the longest waiter, so turns alternate between the
        # waiting tasks, and acquiring always passes a scheduling point (one pass per turn).
        self._lock = trio.Lock()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[Turn]:
        """Hold the lane for items of bulk work until `Turn.spent` (awaiting inside holds up all bulk work)."""
        async with self._lock:
            yield Turn(self.slice_s)

    async def each(self, items: Iterable[T], step: Callable[[T], Awaitable[None]]) -> None:
        """Await `step` on every item, in turns (iterating `items` may itself be the work, see `drain`)."""
        pending = iter(items)
        while True:
            async with self.turn() as turn:
                for item in pending:
                    await step(item)
                    if turn.spent:
                        break
                else:
                    return

    async def drain(self, work: Iterator[R]) -> list[R]:
        """Run the synchronous items of `work` to its end, in turns; their results in order."""
        results: list[R] = []

        async def keep(result: R) -> None:
            results.append(result)

        await self.each(work, keep)
        return results
