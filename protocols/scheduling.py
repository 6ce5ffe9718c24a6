"""The workerpool scheduler's decisions, as pure functions of ledger records and block time
(reference/poco.md section 3, "off-chain scheduler"; DESIGN.md section 6).

The manager's role (node/roles/scheduler.py) only does the I/O around these: it reads the ledger, asks
`task_step` what each of its tasks needs, hands replicates out while `needs_replicate` says so, and
submits the transactions. Time is the chain's block time where a transaction's validity depends on it
(the ledger judges claims, reopens and finalizations by block time, never by a node's clock).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from protocols.ledger.poco import consensus_groups, has_consensus
from protocols.ledger.records import Contribution, Deal, Task, TaskStatus


class Step(enum.Enum):
    """What a pool owner's scheduler submits for one task now."""

    NOTHING = "nothing"
    INITIALIZE = "initialize"
    FINALIZE = "finalize"
    REOPEN = "reopen"
    CLAIM = "claim"


def task_step(deal: Deal, task: Task | None, block_time: int) -> Step:
    """The transaction a task needs at `block_time` (the last committed block's time), following PoCo:

    - an uninitialized task is initialized, or claimed once the deal's final deadline has passed
      (PoCo's initializeAndClaim);
    - an ACTIVE or REVEALING task past its final deadline is claimed (the requester is refunded);
    - a REVEALING task is finalized once every winner revealed, or once the reveal deadline passed with at
      least one reveal; it is reopened when the reveal deadline passed with none.
    """
    if task is None:
        return Step.CLAIM if block_time >= deal.final_deadline else Step.INITIALIZE
    if task.status in (TaskStatus.ACTIVE, TaskStatus.REVEALING) and block_time >= task.final_deadline:
        return Step.CLAIM
    if task.status != TaskStatus.REVEALING:
        return Step.NOTHING
    if task.reveal_counter == task.winner_counter or (task.reveal_counter > 0 and block_time >= task.reveal_deadline):
        return Step.FINALIZE
    if task.reveal_counter == 0 and block_time >= task.reveal_deadline:
        return Step.REOPEN
    return Step.NOTHING


def needs_replicate(contributions: Iterable[Contribution], running_weights: Iterable[int], trust: int) -> bool:
    """PoCo's prediction (iexec-core's ConsensusHelper): hand out another replicate only while consensus is
    out of reach even if every running replicate agreed with the largest group of contributions made so
    far (or formed a group of its own when there is none yet)."""
    groups = consensus_groups(contributions)
    running = list(running_weights)
    best = max(groups, key=lambda h: groups[h], default=None)
    optimistic = groups.get(best, 1) if best is not None else 1
    for weight in running:
        optimistic *= weight
    if best is None and not running:
        return True
    total = 1 + sum(w for h, w in groups.items() if h != best) + optimistic
    return not has_consensus(optimistic, total, trust)
