"""Penalty points for peers that send us invalid data, decaying with time; enough of them is a ban.

GossipSub's own scorer also counts invalid messages (P4) and gates relaying on it; this book covers what
GossipSub never sees (stream protocols, garbage frames) and decides when we stop talking to a peer.
The clock is passed in, so the rules are testable without sleeping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from node.net.config import BAN_DURATION_S, BAN_THRESHOLD, PENALTY_DECAY_PER_S

log = logging.getLogger(__name__)

# Peers with a score this close to zero are forgotten, so the book stays as small as the set of offenders.
FORGET_BELOW = 0.01
# Hard cap on remembered peers: a flood of fresh peer ids cannot grow the book without bound.
MAX_TRACKED_PEERS = 10_000


@dataclass
class _Entry:
    points: float
    updated: float
    banned_until: float = 0.0


class PenaltyBook:
    def __init__(
        self,
        threshold: float = BAN_THRESHOLD,
        ban_duration_s: float = BAN_DURATION_S,
        decay_per_s: float = PENALTY_DECAY_PER_S,
    ) -> None:
        self.threshold = threshold
        self.ban_duration_s = ban_duration_s
        self.decay_per_s = decay_per_s
        self._entries: dict[str, _Entry] = {}

    def _decayed(self, entry: _Entry, now: float) -> float:
        return entry.points * self.decay_per_s ** max(0.0, now - entry.updated)

    def add(self, peer_id: str, points: float, now: float) -> bool:
        """Add points; True if the peer is banned after this, newly or still. A banned peer that is heard
        from again got back in somehow (it dialled us, or a relay raced the disconnect): the caller drops
        it again, every time, until the ban ends. The ban is not extended: it starts at the offence."""
        entry = self._entries.get(peer_id)
        if entry is None:
            if len(self._entries) >= MAX_TRACKED_PEERS:
                self._sweep(now)
            entry = self._entries[peer_id] = _Entry(0.0, now)
        entry.points = self._decayed(entry, now) + points
        entry.updated = now
        if entry.points >= self.threshold and entry.banned_until <= now:
            entry.banned_until = now + self.ban_duration_s
        return entry.banned_until > now

    def points(self, peer_id: str, now: float) -> float:
        entry = self._entries.get(peer_id)
        return 0.0 if entry is None else self._decayed(entry, now)

    def is_banned(self, peer_id: str, now: float) -> bool:
        entry = self._entries.get(peer_id)
        return entry is not None and entry.banned_until > now

    def _sweep(self, now: float) -> None:
        for peer_id, entry in list(self._entries.items()):
            if self._decayed(entry, now) < FORGET_BELOW and entry.banned_until <= now:
                del self._entries[peer_id]
        while len(self._entries) >= MAX_TRACKED_PEERS:  # all are live offenders: drop the oldest
            del self._entries[next(iter(self._entries))]
