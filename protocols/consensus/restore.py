"""Restart safety: what a validator's write-ahead log gives back after a restart.

The paper assumes validators never forget. The shell keeps the consensus messages of the current height that
we sent and accepted (a write-ahead log) and hands them back to the state machine as `restore=`. Reloaded,
they make us never sign a different message for a (height, round, step) we signed before, and re-lock on the
block of our highest precommit, which is what the locking argument of the paper's proof needs.
"""

from __future__ import annotations

from collections.abc import Mapping

from protocols.consensus.messages import Block, Proposal, Step, Vote
from protocols.consensus.votes import HeightMessages


def restored_lock(own: Mapping[tuple[int, int], Proposal | Vote], msgs: HeightMessages) -> tuple[Block, int] | None:
    """The block of our highest precommit for a block, and its round: lines 38-39 and 42-43 as they were when
    we sent it. None if we precommitted no block, or the log no longer holds that block's proposal."""
    precommits = [m for (_r, s), m in own.items() if s == Step.PRECOMMIT and isinstance(m, Vote) and m.block_id]
    if not precommits:
        return None
    last = max(precommits, key=lambda v: v.round)
    proposal = msgs.find_block_proposal(last.block_id)
    if proposal is None:
        return None
    return proposal.block, last.round
