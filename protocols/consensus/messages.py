"""Wire types of consensus: blocks, commit certificates, proposals, votes, evidence (tags 60-69).

A vote's signature covers (chain id, "consensus-vote", height, round, step, block id or nil) through
`SignedMixin`, so a certificate only needs the signatures: the votes they sign are rebuilt from the
certificate's (height, round, block id) when it is checked.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated

from protocols.chain_params import MAX_BLOCK_TXS
from protocols.crypto import EMPTY_SIGNATURE, Signature, SignedMixin
from protocols.encoding import U64, UINT64_MAX, Bytes32, MaxLen, Range, decode, digest, wire

# Rounds grow by one per failed round; a round number this high means a peer is lying, not unlucky.
MAX_ROUND = (1 << 31) - 1
# Equal voting power and all-to-all votes (n^2 messages a round) make large sets impractical; this bounds
# a genesis's validator list and the signature list of a certificate an attacker can make us read.
MAX_VALIDATORS = 100
BLOCK_ID_LEN = 32
# The block id of a nil vote ("no block"): the paper's `nil`.
NIL = b""

Height = Annotated[int, Range(1, UINT64_MAX)]
Round = Annotated[int, Range(0, MAX_ROUND)]
ValidRound = Annotated[int, Range(-1, MAX_ROUND)]
BlockIdOrNil = Annotated[bytes, MaxLen(BLOCK_ID_LEN)]


class Step(enum.IntEnum):
    """The paper's step_p. Votes carry PREVOTE or PRECOMMIT."""

    PROPOSE = 0
    PREVOTE = 1
    PRECOMMIT = 2


VoteStep = Annotated[int, Range(Step.PREVOTE, Step.PRECOMMIT)]


@wire(tag=60)
@dataclass(frozen=True)
class Certificate:
    """A commit certificate: 2f+1 precommit signatures for (height, round, block_id).

    With it any node checks a block without trusting who sent it (`blocks.verify_certificate`).
    """

    height: Height
    round: Round
    block_id: Bytes32
    signatures: Annotated[tuple[Signature, ...], MaxLen(MAX_VALIDATORS)]


@wire(tag=61)
@dataclass(frozen=True)
class Block:
    """A block: what consensus decides at one height. Transactions are opaque to consensus.

    `previous_commit` is the certificate of the previous block (None at height 1), so a chain carries
    the proof of every block but the last; `state_digest` is the application state after the previous
    block, so a validator that applied differently sees it at once.
    """

    height: Height
    time: U64
    previous_hash: Bytes32
    state_digest: Bytes32
    txs: Annotated[tuple[bytes, ...], MaxLen(MAX_BLOCK_TXS)]
    previous_commit: Certificate | None


def block_id(block: Block) -> bytes:
    """The paper's id(v): SHA-256 of the block's canonical encoding, memoised on the (frozen) block."""
    cached = block.__dict__.get("_block_id")
    if cached is None:
        cached = digest(block)
        object.__setattr__(block, "_block_id", cached)
    return cached


@wire(tag=62)
@dataclass(frozen=True)
class Proposal(SignedMixin):
    """PROPOSAL(height, round, v, valid_round), signed by proposer(height, round)."""

    SIGNATURE_KIND = "consensus-proposal"

    height: Height
    round: Round
    valid_round: ValidRound
    block: Block
    signature: Signature = EMPTY_SIGNATURE

    def __post_init__(self) -> None:
        if self.valid_round >= self.round:
            raise ValueError(f"valid_round {self.valid_round} must be below round {self.round}")
        if self.block.height != self.height:
            raise ValueError(f"block of height {self.block.height} in a proposal for height {self.height}")


@wire(tag=63)
@dataclass(frozen=True)
class Vote(SignedMixin):
    """PREVOTE or PRECOMMIT (height, round, block id or nil), signed by a validator."""

    SIGNATURE_KIND = "consensus-vote"

    height: Height
    round: Round
    step: VoteStep
    block_id: BlockIdOrNil
    signature: Signature = EMPTY_SIGNATURE

    def __post_init__(self) -> None:
        if len(self.block_id) not in (0, BLOCK_ID_LEN):
            raise ValueError(f"block id must be {BLOCK_ID_LEN} bytes or empty (nil), got {len(self.block_id)}")


@wire(tag=64)
@dataclass(frozen=True)
class DuplicateVoteEvidence:
    """Two different votes signed by one validator for the same (height, round, step): equivocation."""

    first: Vote
    second: Vote


@wire(tag=65)
@dataclass(frozen=True)
class DecidedBlock:
    """A decided block with its certificate, as the sync protocol carries it to a lagging node."""

    block: Block
    certificate: Certificate


ConsensusMessage = Proposal | Vote


def decode_message(data: bytes) -> Proposal | Vote:
    """Decode a message of the consensus topic; anything malformed raises DecodeError, nothing else."""
    message: Proposal | Vote = decode(ConsensusMessage, data)
    return message
