"""What the host counts for metrics (node/metrics.py reads it): gossip messages published per topic,
penalties given and bans they led to. Plain integers, so the network layer needs no metrics library."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class HostCounters:
    published: Counter[str] = field(default_factory=Counter)  # gossip messages sent, by topic
    penalties: int = 0
    bans: int = 0

    def count_penalty(self, banned: bool) -> None:
        self.penalties += 1
        self.bans += int(banned)
