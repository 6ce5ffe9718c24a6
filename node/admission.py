"""Admission control for the transactions a node's own users submit: backpressure with a reason.

A node refuses a new local transaction while its mempool already holds more than the chain commits in
`backlog_s` seconds at the rate it has measured recently (never less than `floor` transactions). The
refusal says so ("node-overloaded", with the numbers) and the submitter retries later, instead of the
transaction sitting in a pool minutes deep, being re-gossiped by every node (each copy costs the whole
network CPU), and timing out unseen. Nothing here is tuned to one machine: the limit is the measured
commit rate times a duration, so a machine half as fast admits half as much, and a chain that speeds up
admits more.

Transactions relayed by other nodes are not subject to this (their submitter's node already admitted
them); only the mempool's hard bound (`mempool-full`) applies to them.
"""

from __future__ import annotations

from collections import deque

OVERLOADED = "node-overloaded"


class Admission:
    def __init__(self, backlog_s: float, floor: int, window_s: float) -> None:
        """`backlog_s`: how long, at the measured rate, an admitted transaction may expect to wait.
        `floor`: the pool depth always admitted (the chain's rate is unknown until it commits under load).
        `window_s`: the commit rate is measured over the blocks of this last stretch of time."""
        self.backlog_s = backlog_s
        self.floor = floor
        self.window_s = window_s
        self._commits: deque[tuple[float, int]] = deque()  # (time, transactions in the block)
        self._in_window = 0

    def on_commit(self, txs: int, now: float) -> None:
        self._commits.append((now, txs))
        self._in_window += txs
        self._forget(now)

    def rate(self, now: float) -> float:
        """Transactions committed per second over the last window."""
        self._forget(now)
        return self._in_window / self.window_s

    def limit(self, now: float) -> int:
        return max(self.floor, int(self.rate(now) * self.backlog_s))

    def refuse(self, waiting: int, now: float) -> str | None:
        """Why a new local transaction is refused while `waiting` transactions are in the mempool, or None."""
        limit = self.limit(now)
        if waiting < limit:
            return None
        return (
            f"{OVERLOADED}: {waiting} transactions wait, over {limit} (about {self.backlog_s:.0f} s of blocks "
            f"at the recent {self.rate(now):.1f} tx/s); retry later"
        )

    def _forget(self, now: float) -> None:
        while self._commits and self._commits[0][0] < now - self.window_s:
            self._in_window -= self._commits.popleft()[1]
