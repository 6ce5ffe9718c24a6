"""Who is where: a signed record per node, gossiped, so that any node can reach an account's node.

Workers fetch bundles and datasets from their owners' nodes, ask them for dataset keys, and requesters
download results from workers; the ledger names accounts, not peers. Each node announces
`PeerRecord(addresses)` signed by its key; the peer id inside every address must inline that same key,
so a record can only be made by the node it describes. Records are re-announced periodically (gossip is
lossy and nodes join late), and a node that needs an account it has not heard of asks its connected
peers over `/pocnet/peers/1` (`reach`): a node that just joined would otherwise wait for the next
announcement, tens of seconds, before it could fetch a bundle or ask an authority.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Annotated

import trio

from node.net.gossip import Rejected
from node.net.host import P2PHost
from node.net.identity import public_key_of
from node.net.streams import RequestError, RequestRejected
from protocols.crypto import EMPTY_SIGNATURE, Address, Signature, SignatureVerifier, SignedMixin, address_of
from protocols.encoding import U64, DecodeError, MaxLen, decode, encode, wire

log = logging.getLogger(__name__)

MAX_ADDRESSES = 8
Multiaddr = Annotated[str, MaxLen(256)]


@wire(tag=140)
@dataclass(frozen=True)
class PeerRecord(SignedMixin):
    SIGNATURE_KIND = "peer-record"

    addresses: Annotated[tuple[Multiaddr, ...], MaxLen(MAX_ADDRESSES)]
    sequence: U64  # later records replace earlier ones (a node that restarted on another port)
    # A validator's consensus link host (node/net/link_host.py); empty for other nodes.
    link_addresses: Annotated[tuple[Multiaddr, ...], MaxLen(MAX_ADDRESSES)] = ()
    signature: Signature = EMPTY_SIGNATURE


PEERS_PROTOCOL = "/pocnet/peers/1"
# How many connected peers `reach` asks for an unknown account, and how long each may take to answer.
ASK_PEERS = 3
ASK_TIMEOUT_S = 2.0
# An account nobody knew is not asked about again for this long (callers retry in loops).
ASK_AGAIN_AFTER_S = 2.0


@wire(tag=158)
@dataclass(frozen=True)
class PeerQuery:
    account: Address


@wire(tag=159)
@dataclass(frozen=True)
class PeerAnswer:
    records: Annotated[tuple[PeerRecord, ...], MaxLen(1)]  # empty: not known to the peer


def peer_id_in(address: str) -> str:
    return address.rsplit("/p2p/", 1)[-1]


class Directory:
    def __init__(self, verifier: SignatureVerifier) -> None:
        self.verifier = verifier
        self._records: dict[bytes, PeerRecord] = {}  # account address -> latest record
        self._asked: dict[bytes, float] = {}  # account -> when we last asked peers for it (trio clock)

    def check(self, data: bytes) -> PeerRecord | Rejected:
        """The gossip validator of peer records: the record, if its subject signed it and every address
        names the signer's peer id."""
        try:
            record = decode(PeerRecord, data)
        except DecodeError as exc:
            return Rejected(f"undecodable peer record: {exc.reason}")
        if not record.addresses or not self.verifier.verify(record):
            return Rejected("peer record without addresses or with a bad signature")
        for address in record.addresses + record.link_addresses:
            try:
                if public_key_of(peer_id_in(address)) != record.signature.public_key:
                    return Rejected("peer record names a peer id of another key")
            except ValueError as exc:
                return Rejected(f"peer record address: {exc}")
        return record

    def learn(self, record: PeerRecord) -> None:
        """Keep `record` (checked) if it is the newest of its signer's."""
        account = address_of(record.signature.public_key)
        known = self._records.get(account)
        if known is None or record.sequence > known.sequence:
            self._records[account] = record
            log.debug("event=peer-learned account=0x%s peer=%s", account.hex(), peer_id_in(record.addresses[0]))

    def addresses_of(self, account: bytes) -> tuple[str, ...]:
        record = self._records.get(account)
        return record.addresses if record else ()

    def link_addresses_of(self, account: bytes) -> tuple[str, ...]:
        record = self._records.get(account)
        return record.link_addresses if record else ()

    def peer_of(self, account: bytes) -> str | None:
        addresses = self.addresses_of(account)
        return peer_id_in(addresses[0]) if addresses else None

    async def serve(self, peer: str, data: bytes) -> bytes:
        """`/pocnet/peers/1`: the record we hold for an account, if any."""
        try:
            query = decode(PeerQuery, data)
        except DecodeError as exc:
            raise RequestRejected(f"malformed peer query: {exc.reason}") from None
        record = self._records.get(query.account)
        return encode(PeerAnswer((record,) if record else ()))

    async def ask(self, host: P2PHost, account: bytes) -> None:
        """Ask a few connected peers for `account`'s record and learn the first valid one."""
        now = trio.current_time()
        if now - self._asked.get(account, -ASK_AGAIN_AFTER_S) < ASK_AGAIN_AFTER_S:
            return
        self._asked[account] = now
        peers = host.connected_peers()
        random.shuffle(peers)
        for peer in peers[:ASK_PEERS]:
            try:
                answer = decode(PeerAnswer, await host.request(peer, PEERS_PROTOCOL, encode(PeerQuery(account)), ASK_TIMEOUT_S))
            except (RequestError, DecodeError):
                continue
            for record in answer.records:
                checked = self.check(encode(record))
                if not isinstance(checked, Rejected) and address_of(checked.signature.public_key) == account:
                    self.learn(checked)
                    return


async def reach(host: P2PHost, directory: Directory, account: bytes) -> str | None:
    """The peer id of an account's node, connecting to it first if needed; None if it cannot be reached."""
    peer = directory.peer_of(account)
    if peer is None:
        await directory.ask(host, account)
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
