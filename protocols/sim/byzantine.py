"""Byzantine validators: a real state machine whose outgoing messages are corrupted before sending.

Each corruption is signed with the validator's real key, so it passes signature checks; it is what a
validator that controls its key can do, and what correct validators must survive. A Byzantine validator
cannot forge others' signatures, so that is not modelled.
"""

from __future__ import annotations

import random
from dataclasses import replace

from protocols.consensus.messages import MAX_ROUND, NIL, Proposal, Step, Vote
from protocols.crypto import Keypair, sign
from protocols.sim.scenario import Behaviour

Outgoing = list[tuple[int, Proposal | Vote]]  # (recipient, message)


class ByzantineSender:
    def __init__(self, behaviour: Behaviour, keypair: Keypair, chain_id: str, rng: random.Random) -> None:
        self.behaviour = behaviour
        self._keypair = keypair
        self._chain_id = chain_id
        self._rng = rng

    def corrupt(self, msg: Proposal | Vote, peers: list[int]) -> Outgoing:
        behaviour = self.behaviour
        if behaviour is Behaviour.CHAOS:
            behaviour = self._rng.choice([b for b in Behaviour if b is not Behaviour.CHAOS])
        if behaviour is Behaviour.SILENT:
            return []
        if behaviour is Behaviour.EQUIVOCATE:
            return self._split(msg, self._conflicting(msg), peers)
        if behaviour is Behaviour.DOUBLE_VOTE:
            if isinstance(msg, Vote):
                return self._split(msg, self._conflicting(msg), peers)
            return [(p, msg) for p in peers]
        # UNKNOWN_BLOCKS
        out: Outgoing = [(p, msg) for p in peers]
        if isinstance(msg, Vote):
            bogus = self._vote(msg.height, msg.round, msg.step, self._rng.randbytes(32))
            later = min(MAX_ROUND, msg.round + self._rng.randrange(1, 4))
            ahead = self._vote(msg.height, later, msg.step, self._rng.randbytes(32))
            out = [(p, vote) for vote in (bogus, ahead) for p in peers]
        return out

    def _split(self, a: Proposal | Vote, b: Proposal | Vote, peers: list[int]) -> Outgoing:
        """`a` to a random part of the peers, `b` to the rest."""
        return [(p, a if self._rng.random() < 0.5 else b) for p in peers]

    def _conflicting(self, msg: Proposal | Vote) -> Proposal | Vote:
        if isinstance(msg, Proposal):
            block = replace(msg.block, time=msg.block.time + 1 + self._rng.randrange(5))
            return sign(self._keypair, self._chain_id, Proposal(msg.height, msg.round, msg.valid_round, block))
        other = NIL if msg.block_id else self._rng.randbytes(32)
        return self._vote(msg.height, msg.round, msg.step, other)

    def _vote(self, height: int, round: int, step: int, bid: bytes) -> Vote:
        return sign(self._keypair, self._chain_id, Vote(height, round, int(Step(step)), bid))
