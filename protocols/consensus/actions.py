"""What the consensus state machine asks its shell to do. Frozen values; the shell performs them."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from protocols.consensus.messages import Block, Certificate, DuplicateVoteEvidence, Proposal, Vote


class TimeoutKind(enum.Enum):
    PROPOSE = "propose"  # Algorithm 1 line 57
    PREVOTE = "prevote"  # line 61
    PRECOMMIT = "precommit"  # line 65


@dataclass(frozen=True)
class Timeout:
    """One of the paper's three timeouts, for the (height, round) that scheduled it."""

    kind: TimeoutKind
    height: int
    round: int


@dataclass(frozen=True)
class RebroadcastTimer:
    """Not in the paper: time to check whether we made no progress for a whole interval (rebroadcast.py).
    One runs for the machine's whole life, across heights."""


@dataclass(frozen=True)
class WaitTimer:
    """Not in the paper: the idle `height` may now be worth a block, an application deadline being due (idle.py)."""

    height: int


# Everything the shell may be asked to call `on_timeout` with.
Timer = Timeout | RebroadcastTimer | WaitTimer


@dataclass(frozen=True)
class Broadcast:
    """Send to every validator (the shell's direct links, or gossip on `pocnet/<chain>/consensus`). We have
    already counted it ourselves."""

    message: Proposal | Vote


@dataclass(frozen=True)
class ScheduleTimeout:
    """Call `on_timeout(timeout, now)` once the clock reaches `at` (ms). Stale timeouts are harmless."""

    timeout: Timer
    at: int


ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class Commit(Generic[ResultT]):
    """`block` is decided, with `certificate` as proof; the application has already applied it, and
    `result` is what its `commit_block` returned (the ledger's outcomes and state writes).

    The shell stores all three (a follower or a lagging validator will ask for the block and certificate
    over sync) before it acts on anything later, so that a restart never forgets a decision. The result
    travels in the action, not beside it: one consensus step may decide several heights, and each
    Commit then carries its own block's result.
    """

    block: Block
    certificate: Certificate
    result: ResultT


@dataclass(frozen=True)
class RecordEvidence:
    """A validator signed two different votes for one (height, round, step): keep and gossip the proof."""

    evidence: DuplicateVoteEvidence


@dataclass(frozen=True)
class RequestSync:
    """We are behind: fetch decided blocks from `from_height` on, with certificates, and feed them to
    `on_decided_block` in order."""

    from_height: int


Action = Broadcast | ScheduleTimeout | Commit[Any] | RecordEvidence | RequestSync
