"""`pocnet/<chain>/consensus` (and the validators' direct links, node/consensus_link.py): proposals and votes
for the consensus driver. Only validators subscribe."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from node.net.gossip import Rejected
from protocols.consensus.messages import Proposal, Vote, decode_message
from protocols.consensus.validators import ValidatorSet
from protocols.crypto import SignatureVerifier
from protocols.encoding import DecodeError


class ConsensusTopic:
    batched = False

    def __init__(
        self, validators: ValidatorSet, verifier: SignatureVerifier, deliver: Callable[[str, Proposal | Vote], Awaitable[None]]
    ) -> None:
        """`deliver` queues a checked message for the state machine (the driver's `on_consensus_gossip`)."""
        self._validators = validators
        self._verifier = verifier
        self._deliver = deliver

    def validate(self, peer: str, data: bytes) -> Proposal | Vote | Rejected:
        try:
            message = decode_message(data)
        except DecodeError as exc:
            return Rejected(f"undecodable consensus message: {exc.reason}")
        if self._validators.index_of(message.signature.public_key) is None:
            return Rejected("consensus message not signed by a validator")
        if not self._verifier.verify(message):  # cached: consensus checks it again for free
            return Rejected("consensus message with a bad signature")
        return message

    async def handle(self, peer: str, message: Proposal | Vote) -> None:
        await self._deliver(peer, message)
