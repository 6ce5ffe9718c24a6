"""Equivocation on the ledger: a `RecordEquivocation` transaction proves that a validator signed two
different votes for one (height, round, step), and the ledger keeps one `Equivocation` record per offence.

Anyone may submit the proof (the validators that saw both votes do, DESIGN.md section 5); every validator
checks it with `check_duplicate_vote` against the genesis validators, so a forged or mistaken proof is
rejected and costs its sender only the transaction. The record is keyed by the offence, so the same
equivocation reported by several validators is recorded once.
"""

from __future__ import annotations

import hashlib

from protocols.consensus.evidence import check_duplicate_vote, offender
from protocols.consensus.validators import ValidatorSet
from protocols.ledger.context import TxContext
from protocols.ledger.escrow import Reject
from protocols.ledger.records import Equivocation
from protocols.ledger.state import EQUIVOCATION
from protocols.ledger.transactions import RecordEquivocation


def offence_key(validator: bytes, height: int, round: int, step: int) -> bytes:
    """The state key of one offence: a validator, at one (height, round, step)."""
    return EQUIVOCATION + hashlib.sha256(validator + b"%d/%d/%d" % (height, round, step)).digest()


def record_equivocation(ctx: TxContext, body: RecordEquivocation) -> bytes:
    proof = body.evidence
    reason = check_duplicate_vote(proof, ValidatorSet(list(ctx.rules.validators)), ctx.rules.signatures)
    if reason is not None:
        raise Reject("evidence-invalid", reason)
    vote = proof.first
    key = offence_key(offender(proof), vote.height, vote.round, vote.step)
    if ctx.view.get(key) is not None:
        raise Reject("evidence-known", "this equivocation is already recorded")
    ctx.view.put(key, Equivocation(offender(proof), vote.height, vote.round, vote.step, ctx.sender, ctx.block_time))
    return key[len(EQUIVOCATION):]
