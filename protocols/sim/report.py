"""Summaries of a simulation run: what the liveness tests assert and the bench prints."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.sim.scenario import GENESIS_TIME
from protocols.sim.simulation import SimResult


@dataclass(frozen=True)
class Liveness:
    """Progress of the correct validators after `since` (ms after genesis, e.g. when a partition healed)."""

    heights_after: tuple[int, ...]  # per correct validator: heights committed after `since`
    first_commit_delay: int | None  # ms from `since` until every correct validator committed again
    max_round: int  # the highest round any height after `since` needed (0 = first try)
    mean_round: float

    def describe(self) -> str:
        return (
            f"heights after heal per validator {list(self.heights_after)}, all committed again "
            f"{self.first_commit_delay} ms after heal, rounds needed max {self.max_round} mean {self.mean_round:.2f}"
        )


def liveness_since(result: SimResult, since: int) -> Liveness:
    t0 = GENESIS_TIME + since
    correct = [n for n in result.correct if n.alive]
    after = tuple(sum(1 for t in n.commit_times if t >= t0) for n in correct)
    firsts = [next((t for t in n.commit_times if t >= t0), None) for n in correct]
    delay = None if any(f is None for f in firsts) else max(firsts) - t0  # type: ignore[operator,type-var]
    longest = max(correct, key=lambda n: len(n.chain))
    rounds = [c.round for (_, c), t in zip(longest.chain, longest.commit_times) if t >= t0]
    return Liveness(after, delay, max(rounds, default=0), sum(rounds) / len(rounds) if rounds else 0.0)
