"""Bookkeeping of the proposals and votes received at the current height, with bounded memory.

A Byzantine validator can sign as many messages as it likes. What we keep per height is bounded by:
per validator, round and step, its first vote plus conflicting ones only for nil or for a block some
proposal of this height carries, at most `MAX_VOTES_PER_VALIDATOR`; at most `MAX_PROPOSALS_PER_ROUND`
proposals per round; and only rounds up to `FUTURE_ROUND_WINDOW` beyond ours (for later rounds we only
remember each validator's highest round, which is all the round-skip rule needs).

Why keep conflicting votes at all: an equivocating validator sends one vote to some peers and another
to the rest, and relays (our re-broadcast of a polka, gossip) later bring the other one. If we kept only
the first, a correct validator could never see the polka that another correct validator locked on, and
the height could stall (the paper's gossip property is about every message, not the first per sender).
Counting a validator once per block id is safe: two quorums for different blocks in one round would
still need a correct validator to vote twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from protocols.consensus.messages import NIL, Proposal, Step, Vote, block_id

# Messages of rounds this far ahead of ours are stored so that they count as soon as we get there;
# further ones only move the round-skip rule. A few rounds covers the usual spread of correct validators.
FUTURE_ROUND_WINDOW = 4
# The first proposal of a round drives the prevote; a second one from an equivocating proposer is kept
# so that, if the others decide it, we can decide it too. More are dropped (sync covers the rest).
MAX_PROPOSALS_PER_ROUND = 2
# First vote, nil, and a proposed block: what an equivocator's votes can usefully say in one round.
MAX_VOTES_PER_VALIDATOR = 3


@dataclass
class RoundMessages:
    proposals: dict[bytes, Proposal] = field(default_factory=dict)  # by block id, in arrival order
    # validator index -> block id (or NIL) -> vote; the first entry is the validator's first vote.
    prevotes: dict[int, dict[bytes, Vote]] = field(default_factory=dict)
    precommits: dict[int, dict[bytes, Vote]] = field(default_factory=dict)
    prevote_tally: Counter[bytes] = field(default_factory=Counter)  # block id (or NIL) -> count
    precommit_tally: Counter[bytes] = field(default_factory=Counter)

    def votes(self, step: int) -> dict[int, dict[bytes, Vote]]:
        return self.prevotes if step == Step.PREVOTE else self.precommits

    def tally(self, step: int) -> Counter[bytes]:
        return self.prevote_tally if step == Step.PREVOTE else self.precommit_tally


class HeightMessages:
    def __init__(self, quorum: int) -> None:
        self._quorum = quorum
        self.rounds: dict[int, RoundMessages] = {}
        # validator index -> highest round it sent anything for at this height (for line 55).
        self.max_round: dict[int, int] = {}
        self.senders: set[int] = set()
        # (round, block id) whose precommits reached a quorum: candidates for the decide rule (line 49).
        self.decidable: list[tuple[int, bytes]] = []
        self.current_round = 0

    def storable(self, round: int) -> bool:
        return round <= self.current_round + FUTURE_ROUND_WINDOW

    def note_sender(self, index: int, round: int) -> None:
        self.senders.add(index)
        if round > self.max_round.get(index, -1):
            self.max_round[index] = round

    def round(self, round: int) -> RoundMessages:
        msgs = self.rounds.get(round)
        if msgs is None:
            msgs = self.rounds[round] = RoundMessages()
        return msgs

    def add_proposal(self, proposal: Proposal) -> bool:
        """Store a proposal (already checked: right proposer, valid signature). False if dropped."""
        msgs = self.round(proposal.round)
        bid = block_id(proposal.block)
        if bid in msgs.proposals or len(msgs.proposals) >= MAX_PROPOSALS_PER_ROUND:
            return False
        msgs.proposals[bid] = proposal
        return True

    def knows_block(self, bid: bytes) -> bool:
        return any(bid in m.proposals for m in self.rounds.values())

    def add_vote(self, index: int, vote: Vote) -> Vote | None:
        """Store a checked vote. Returns the validator's first vote if this one conflicts with it."""
        msgs = self.round(vote.round)
        votes = msgs.votes(vote.step)
        mine = votes.get(index)
        conflict = None
        if mine is None:
            mine = votes[index] = {}
        elif vote.block_id in mine:
            return None
        else:
            conflict = next(iter(mine.values()))
            useful = vote.block_id == NIL or self.knows_block(vote.block_id)
            if not useful or len(mine) >= MAX_VOTES_PER_VALIDATOR:
                return conflict
        mine[vote.block_id] = vote
        tally = msgs.tally(vote.step)
        tally[vote.block_id] += 1
        if vote.step == Step.PRECOMMIT and vote.block_id and tally[vote.block_id] == self._quorum:
            self.decidable.append((vote.round, vote.block_id))
        return conflict

    def count(self, round: int, step: int, bid: bytes | None = None) -> int:
        """Votes of this round and step for `bid` (None: for anything)."""
        msgs = self.rounds.get(round)
        if msgs is None:
            return 0
        if bid is None:
            return len(msgs.votes(step))
        return msgs.tally(step)[bid]

    def proposals(self, round: int) -> list[Proposal]:
        msgs = self.rounds.get(round)
        return list(msgs.proposals.values()) if msgs else []

    def find_block_proposal(self, bid: bytes) -> Proposal | None:
        """A proposal of any round at this height carrying block `bid` (the block is known by its hash)."""
        for msgs in self.rounds.values():
            p = msgs.proposals.get(bid)
            if p is not None:
                return p
        return None

    def votes_for(self, round: int, step: int, bid: bytes) -> list[Vote]:
        msgs = self.rounds.get(round)
        if msgs is None:
            return []
        return [mine[bid] for mine in msgs.votes(step).values() if bid in mine]

    def size(self) -> int:
        """Stored messages, for tests that check the memory bound."""
        total = 0
        for m in self.rounds.values():
            total += len(m.proposals)
            total += sum(len(x) for x in m.prevotes.values()) + sum(len(x) for x in m.precommits.values())
        return total
