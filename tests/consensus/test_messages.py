"""Wire types of consensus: round trips, strict decoding, invariants."""

from __future__ import annotations

import pytest

from protocols.consensus.messages import (
    NIL,
    Block,
    ConsensusMessage,
    DecidedBlock,
    DuplicateVoteEvidence,
    Proposal,
    Step,
    Vote,
    block_id,
)
from protocols.crypto import SignatureVerifier
from protocols.encoding import DecodeError, decode, encode
from tests.consensus.helpers import CHAIN, block, certificate, keys, proposal, vote


def test_round_trip_of_every_consensus_type() -> None:
    ks = keys(4)
    b1 = block()
    cert = certificate(b1, ks[:3])
    b2 = block(height=2, previous=block_id(b1), cert=cert)
    p = proposal(ks[1], b2, round=0)
    v = vote(ks[2], 2, 0, Step.PREVOTE, block_id(b2))
    for value, kind in [
        (p, ConsensusMessage),
        (v, ConsensusMessage),
        (b2, Block),
        (DecidedBlock(b1, cert), DecidedBlock),
        (DuplicateVoteEvidence(v, vote(ks[2], 2, 0, Step.PREVOTE, NIL)), DuplicateVoteEvidence),
    ]:
        back = decode(kind, encode(value))
        assert back == value
        assert encode(back) == encode(value)


def test_signatures_verify_and_cover_every_field() -> None:
    k = keys(1)[0]
    verifier = SignatureVerifier(CHAIN)
    v = vote(k, 1, 0, Step.PRECOMMIT, b"\x01" * 32)
    assert verifier.verify(v)
    forged = Vote(1, 1, int(Step.PRECOMMIT), b"\x01" * 32, v.signature)  # same signature, other round
    assert not verifier.verify(forged)
    other_chain = SignatureVerifier("another-chain")
    assert not other_chain.verify(decode(Vote, encode(v)))


def test_vote_block_id_must_be_32_bytes_or_nil() -> None:
    with pytest.raises(ValueError):
        Vote(1, 0, int(Step.PREVOTE), b"\x00" * 5)
    raw = encode(Vote(1, 0, int(Step.PREVOTE), NIL))
    assert decode(Vote, raw).block_id == NIL


@pytest.mark.parametrize(
    "mutate",
    [
        lambda v: [v[0], v[1], 0, *v[3:]],  # height 0
        lambda v: [v[0], v[1], v[2], -1, *v[4:]],  # negative round
        lambda v: [v[0], v[1], v[2], v[3], 3, *v[5:]],  # step 3
        lambda v: [v[0], v[1], v[2], v[3], 0, *v[5:]],  # step PROPOSE is not a vote
        lambda v: [v[0], v[1], v[2], v[3], v[4], b"\x00" * 31, v[6]],
        lambda v: v[:-1],  # missing field
        lambda v: [*v, 1],  # extra field
        lambda v: [62, *v[1:]],  # wrong tag
    ],
)
def test_malformed_votes_are_rejected(mutate) -> None:  # type: ignore[no-untyped-def]
    import msgpack

    v = vote(keys(1)[0], 1, 0, Step.PREVOTE, b"\x02" * 32)
    raw = msgpack.unpackb(encode(v), raw=False)
    with pytest.raises(DecodeError):
        decode(Vote, msgpack.packb(mutate(raw), use_bin_type=True))


def test_proposal_invariants() -> None:
    b = block()
    with pytest.raises(ValueError):
        Proposal(1, 0, 0, b)  # valid_round must be below round
    with pytest.raises(ValueError):
        Proposal(2, 0, -1, b)  # block of another height


def test_block_id_depends_on_every_field() -> None:
    b = block()
    ids = {block_id(b)}
    from dataclasses import replace

    for changed in [replace(b, time=b.time + 1), replace(b, txs=()), replace(b, previous_hash=b"\x09" * 32),
                    replace(b, state_digest=b"\x08" * 32), replace(b, height=2)]:
        ids.add(block_id(changed))
    assert len(ids) == 6
