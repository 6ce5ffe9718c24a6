"""The lock a restarted validator takes back from its write-ahead log (protocols/consensus/restore.py)."""

from __future__ import annotations

from protocols.consensus.messages import NIL, Proposal, Step, Vote, block_id
from protocols.consensus.restore import restored_lock
from protocols.consensus.votes import HeightMessages
from tests.consensus.helpers import block, keys, proposal, validator_set, vote

K = keys(4)
B0, B1 = block(txs=(b"set a 1",)), block(txs=(b"set a 2",))


def log_with(*proposals: Proposal) -> HeightMessages:
    msgs = HeightMessages(validator_set(4).quorum)
    for p in proposals:
        msgs.add_proposal(p)
    return msgs


def precommit(round: int, bid: bytes) -> dict[tuple[int, int], Proposal | Vote]:
    return {(round, int(Step.PRECOMMIT)): vote(K[0], 1, round, Step.PRECOMMIT, bid)}


def test_we_lock_again_on_the_block_of_our_highest_precommit() -> None:
    msgs = log_with(proposal(K[0], B0, round=0), proposal(K[1], B1, round=1))
    own = {**precommit(0, block_id(B0)), **precommit(1, block_id(B1))}
    assert restored_lock(own, msgs) == (B1, 1)


def test_nil_precommits_and_other_steps_lock_nothing() -> None:
    msgs = log_with(proposal(K[0], B0))
    own = {**precommit(0, NIL), (0, int(Step.PREVOTE)): vote(K[0], 1, 0, Step.PREVOTE, block_id(B0))}
    assert restored_lock(own, msgs) is None


def test_no_lock_without_the_block() -> None:
    assert restored_lock(precommit(0, block_id(B0)), log_with()) is None
