"""`pocnet/<chain>/blocks`: decided blocks with their certificates, announced by their proposers; followers
commit from them (and from sync), validators use them to notice they are behind."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from node.net.gossip import Rejected
from protocols.consensus.blocks import verify_certificate
from protocols.consensus.messages import DecidedBlock, block_id
from protocols.consensus.validators import ValidatorSet
from protocols.crypto import SignatureVerifier
from protocols.encoding import DecodeError, decode


class BlockTopic:
    batched = False

    def __init__(
        self, validators: ValidatorSet, verifier: SignatureVerifier, deliver: Callable[[str, DecidedBlock], Awaitable[None]]
    ) -> None:
        """`deliver` hands a certified block to consensus (the driver's `on_block_gossip`)."""
        self._validators = validators
        self._verifier = verifier
        self._deliver = deliver

    def validate(self, peer: str, data: bytes) -> DecidedBlock | Rejected:
        try:
            decided = decode(DecidedBlock, data)
        except DecodeError as exc:
            return Rejected(f"undecodable block: {exc.reason}")
        block, certificate = decided.block, decided.certificate
        reason = verify_certificate(certificate, block.height, block_id(block), self._validators, self._verifier)
        return decided if reason is None else Rejected(reason)

    async def handle(self, peer: str, decided: DecidedBlock) -> None:
        await self._deliver(peer, decided)
