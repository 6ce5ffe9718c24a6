"""`pocnet/<chain>/txs`: other nodes' transactions into our mempool (DESIGN.md section 5)."""

from __future__ import annotations

from collections.abc import Callable

from node.net.gossip import Rejected
from protocols.consensus.mempool import Mempool
from protocols.crypto import SignatureVerifier
from protocols.encoding import DecodeError
from protocols.ledger.transactions import Transaction


class TxTopic:
    """The value handed on is the transaction's bytes, which is what the mempool and blocks hold; its decoded
    form stays in the application's decode cache (`decode`), where the mempool's check finds it."""

    batched = True

    def __init__(
        self, mempool: Mempool, decode: Callable[[bytes], Transaction], verifier: SignatureVerifier, wake: Callable[[], None]
    ) -> None:
        """`wake` tells consensus that the mempool has something new."""
        self._mempool = mempool
        self._decode = decode
        self._verifier = verifier
        self._wake = wake

    def validate(self, peer: str, data: bytes) -> bytes | Rejected:
        if data in self._mempool:
            return data  # a re-announcement of what we already checked: skip decoding it again
        try:
            tx = self._decode(data)
        except DecodeError as exc:
            return Rejected(f"undecodable transaction: {exc.reason}")
        return data if self._verifier.verify(tx) else Rejected("bad transaction signature")

    async def handle(self, peer: str, data: bytes) -> None:
        if self._mempool.add(data) is None:
            self._wake()
