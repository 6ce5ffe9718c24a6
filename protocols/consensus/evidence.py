"""Equivocation evidence: checking a `DuplicateVoteEvidence` without trusting whoever sent it.

The state machine produces evidence (`RecordEvidence`) when a validator's second, different vote for
one (height, round, step) arrives. Anyone holding the two signed votes can prove the misbehaviour; the
ledger can later punish it (slash the workerpool stake). This module says whether a piece of evidence
is a proof.
"""

from __future__ import annotations

from protocols.consensus.messages import DuplicateVoteEvidence
from protocols.consensus.validators import ValidatorSet
from protocols.crypto import SignatureVerifier


def check_duplicate_vote(
    evidence: DuplicateVoteEvidence, validators: ValidatorSet, verifier: SignatureVerifier
) -> str | None:
    """None if the two votes prove that one validator equivocated, else why they do not."""
    a, b = evidence.first, evidence.second
    if a.signature.public_key != b.signature.public_key:
        return "votes are from different validators"
    if validators.index_of(a.signature.public_key) is None:
        return "votes are not from a validator"
    if (a.height, a.round, a.step) != (b.height, b.round, b.step):
        return "votes are for different (height, round, step)"
    if a.block_id == b.block_id:
        return "votes are for the same block"
    if not verifier.verify(a) or not verifier.verify(b):
        return "a vote has an invalid signature"
    return None


def offender(evidence: DuplicateVoteEvidence) -> bytes:
    """The public key of the equivocating validator (meaningful once `check_duplicate_vote` passed)."""
    return evidence.first.signature.public_key
