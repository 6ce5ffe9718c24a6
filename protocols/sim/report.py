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


def quorum_up_intervals(result: SimResult) -> list[tuple[int, int]]:
    """The stretches (ms after genesis) during which at least a quorum of validators was running, from the
    scenario's crash schedule (Byzantine validators count as up: the quorum must tolerate them)."""
    sc = result.scenario
    quorum = result.nodes[0].machine.validators.quorum
    changes = sorted({0, sc.duration, *(c.at for c in sc.crashes), *(c.restart_at for c in sc.crashes if c.restart_at)})
    intervals: list[tuple[int, int]] = []
    for start, end in zip(changes, changes[1:]):
        down = {c.node for c in sc.crashes if c.at <= start and (c.restart_at is None or c.restart_at > start)}
        if sc.n - len(down) >= quorum:
            if intervals and intervals[-1][1] == start:
                intervals[-1] = (intervals[-1][0], end)
            else:
                intervals.append((start, end))
    return intervals


def longest_gap_with_quorum(result: SimResult, since: int = 0) -> int:
    """The longest time (ms) a quorum was up without any correct validator deciding a new height, from
    `since` to the end of the run: what the devnet bench calls the longest gap between blocks."""
    decided: dict[int, int] = {}
    for node in result.correct:
        for (block, _), t in zip(node.chain, node.commit_times):
            decided[block.height] = min(decided.get(block.height, t), t)
    marks = sorted({since, result.scenario.duration, *(t - GENESIS_TIME for t in decided.values() if t - GENESIS_TIME > since)})
    up = quorum_up_intervals(result)
    longest = 0
    for a, b in zip(marks, marks[1:]):
        longest = max(longest, sum(max(0, min(b, e) - max(a, s)) for s, e in up))
    return longest


def liveness_violations(result: SimResult, bound: int) -> list[str]:
    """Liveness as a checked property: after the scenario's last fault ends, every correct validator that is
    running commits within `bound` ms, and keeps committing with no gap over `bound` until the run ends (the
    client load never stops, so there is always something to decide). Empty if it holds."""
    sc = result.scenario
    t0 = GENESIS_TIME + sc.last_fault_end()
    end = GENESIS_TIME + sc.duration
    problems: list[str] = []
    for node in result.correct:
        if not node.alive:
            continue
        marks = [t0, *(t for t in node.commit_times if t > t0), end]
        gaps = [(b - a, a) for a, b in zip(marks, marks[1:])]
        gap, at = max(gaps)
        if gap > bound:
            problems.append(
                f"validator {node.index} went {gap} ms without a commit from {at - GENESIS_TIME} ms "
                f"(last fault ended at {sc.last_fault_end()} ms, bound {bound} ms)"
            )
    return problems
