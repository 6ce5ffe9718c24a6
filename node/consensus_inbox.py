"""What waits for the consensus state machine, kept so that transaction traffic never crowds out consensus.

Three kinds of input, three rules:
- *Timers and decided blocks* are never dropped. Each is produced by ourselves (a timer the machine asked
  for, a block sync fetched with its certificate) at a rate bounded by the machine's own work, and losing
  one stalls this validator until something else repairs it: a lost timeout-propose leaves it in the
  propose step with nothing to vote.
- *Gossiped proposals and votes* are kept up to a bound and dropped beyond it: a flooding peer must not grow
  our memory, and consensus repairs gossip loss by re-broadcast and sync.
- *"The mempool changed"* is one flag, not one entry per transaction. A burst of 3,000 transfers used to
  queue 3,000 wake-ups in front of (and instead of) the votes of the height that would include them.

Items come out in arrival order, except that a wake-up waits until no timer, block or message is waiting:
a wake only matters for a height that has not started or a proposer with nothing to propose, and handling
votes first never delays that by more than the votes it lets through.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import trio


@dataclass(frozen=True)
class Wake:
    """New transactions: a waiting height may start, a waiting proposer may propose."""


WAKE = Wake()


class ConsensusInbox:
    def __init__(self, max_messages: int) -> None:
        self.max_messages = max_messages
        self._items: deque[tuple[bool, object]] = deque()  # (is a gossip message, item)
        self._messages = 0
        self._wake = False
        self._ready = trio.Event()
        self.dropped_messages = 0

    def __len__(self) -> int:
        return len(self._items) + int(self._wake)

    def put_message(self, item: object) -> bool:
        """A gossiped proposal or vote. False (and counted) if the inbox already holds its bound of them."""
        if self._messages >= self.max_messages:
            self.dropped_messages += 1
            return False
        self._messages += 1
        self._items.append((True, item))
        self._ready.set()
        return True

    def put_reliable(self, item: object) -> None:
        """A timer that fired or a decided block: never dropped (see the module doc for why it is bounded)."""
        self._items.append((False, item))
        self._ready.set()

    def wake(self) -> None:
        self._wake = True
        self._ready.set()

    async def get(self) -> object:
        while True:
            if self._items:
                is_message, item = self._items.popleft()
                self._messages -= int(is_message)
                return item
            if self._wake:
                self._wake = False
                return WAKE
            self._ready = trio.Event()
            await self._ready.wait()
