"""Who is where: a signed record per node, gossiped, so that any node can reach an account's node.

Workers fetch bundles and datasets from their owners' nodes, ask them for dataset keys, and requesters
download results from workers; the ledger names accounts, not peers. Each node announces
`PeerRecord(addresses)` signed by its key; the peer id inside every address must inline that same key,
so a record can only be made by the node it describes. Records are re-announced periodically (gossip is
lossy and nodes join late).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

from node.net.host import P2PHost
from node.net.identity import public_key_of
from protocols.crypto import EMPTY_SIGNATURE, Signature, SignedMixin, SignatureVerifier, address_of
from protocols.encoding import U64, DecodeError, MaxLen, decode, wire

log = logging.getLogger(__name__)

MAX_ADDRESSES = 8
Multiaddr = Annotated[str, MaxLen(256)]


@wire(tag=140)
@dataclass(frozen=True)
class PeerRecord(SignedMixin):
    SIGNATURE_KIND = "peer-record"

    addresses: Annotated[tuple[Multiaddr, ...], MaxLen(MAX_ADDRESSES)]
    sequence: U64  # later records replace earlier ones (a node that restarted on another port)
    signature: Signature = EMPTY_SIGNATURE


def peer_id_in(address: str) -> str:
    return address.rsplit("/p2p/", 1)[-1]


class Directory:
    def __init__(self, verifier: SignatureVerifier) -> None:
        self.verifier = verifier
        self._records: dict[bytes, PeerRecord] = {}  # account address -> latest record

    def check(self, data: bytes) -> str | None:
        """A gossip validator: None if `data` is a record its subject signed."""
        try:
            record = decode(PeerRecord, data)
        except DecodeError as exc:
            return f"undecodable peer record: {exc.reason}"
        if not record.addresses or not self.verifier.verify(record):
            return "peer record without addresses or with a bad signature"
        for address in record.addresses:
            try:
                if public_key_of(peer_id_in(address)) != record.signature.public_key:
                    return "peer record names a peer id of another key"
            except ValueError as exc:
                return f"peer record address: {exc}"
        return None

    def learn(self, data: bytes) -> None:
        record = decode(PeerRecord, data)
        account = address_of(record.signature.public_key)
        known = self._records.get(account)
        if known is None or record.sequence > known.sequence:
            self._records[account] = record
            log.debug("event=peer-learned account=0x%s peer=%s", account.hex(), peer_id_in(record.addresses[0]))

    def addresses_of(self, account: bytes) -> tuple[str, ...]:
        record = self._records.get(account)
        return record.addresses if record else ()

    def peer_of(self, account: bytes) -> str | None:
        addresses = self.addresses_of(account)
        return peer_id_in(addresses[0]) if addresses else None


async def reach(host: P2PHost, directory: Directory, account: bytes) -> str | None:
    """The peer id of an account's node, connecting to it first if needed; None if it cannot be reached."""
    peer = directory.peer_of(account)
    if peer is None:
        return None
    if peer in host.connected_peers():
        return peer
    for address in directory.addresses_of(account):
        try:
            await host.connect(address)
            return peer
        except ConnectionError:
            continue
    return None
