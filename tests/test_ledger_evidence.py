"""Equivocation evidence on the ledger: a proof is checked by every validator and recorded once."""

from __future__ import annotations

import os

from protocols.consensus.messages import DuplicateVoteEvidence, Step, Vote
from protocols.crypto import Keypair, sign
from protocols.ledger.evidence import offence_key
from protocols.ledger.records import Equivocation
from protocols.ledger.transactions import RecordEquivocation
from tests.support import CHAIN_ID, Market

VALIDATOR = Keypair.from_name("manager")  # the test genesis's only validator


def vote(keypair: Keypair, block_id: bytes, height: int = 5, round: int = 1) -> Vote:
    return sign(keypair, CHAIN_ID, Vote(height, round, int(Step.PRECOMMIT), block_id))


def proof(first: Vote, second: Vote) -> RecordEquivocation:
    return RecordEquivocation(DuplicateVoteEvidence(first, second))


def test_an_equivocation_is_recorded_once_with_its_reporter() -> None:
    market = Market.create()
    evidence = proof(vote(VALIDATOR, os.urandom(32)), vote(VALIDATOR, os.urandom(32)))
    outcome = market.ok("requester", evidence)
    key = offence_key(VALIDATOR.public_key, 5, 1, int(Step.PRECOMMIT))
    assert outcome.created == key[1:]
    record = market.ledger.state.get(key)
    assert record == Equivocation(VALIDATOR.public_key, 5, 1, int(Step.PRECOMMIT), market.addr("requester"), market.now)
    again = proof(vote(VALIDATOR, os.urandom(32)), vote(VALIDATOR, b""))  # another pair, the same offence
    assert market.submit("appdev", again).code == "evidence-known"


def test_a_proof_that_proves_nothing_is_rejected() -> None:
    market = Market.create()
    block = os.urandom(32)
    stranger = Keypair.from_name("w1")
    forged = vote(VALIDATOR, os.urandom(32))
    forged = Vote(forged.height, forged.round, forged.step, forged.block_id, vote(VALIDATOR, block).signature)
    for bad in (
        proof(vote(VALIDATOR, block), vote(VALIDATOR, block)),  # the same vote twice
        proof(vote(VALIDATOR, block), vote(VALIDATOR, os.urandom(32), round=2)),  # another round
        proof(vote(stranger, block), vote(stranger, os.urandom(32))),  # not a validator
        proof(vote(VALIDATOR, block), vote(stranger, os.urandom(32))),  # two signers
        proof(vote(VALIDATOR, os.urandom(32)), forged),  # a signature over another vote
    ):
        assert market.submit("requester", bad).code == "evidence-invalid"
    assert market.ledger.state.get(offence_key(VALIDATOR.public_key, 5, 1, int(Step.PRECOMMIT))) is None
