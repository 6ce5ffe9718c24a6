"""Peer records: a node announces where its gossip host and (a validator) its consensus link host listen;
a record can only name the peer id of the key that signed it."""

from __future__ import annotations

from node.directory import Directory, PeerRecord
from node.net import Rejected, peer_id_of_seed
from protocols.crypto import Keypair, SignatureVerifier, address_of, sign
from protocols.encoding import encode

CHAIN = "directory-test"


def record_of(keypair: Keypair, addresses: tuple[str, ...], links: tuple[str, ...] = (), sequence: int = 1) -> bytes:
    return encode(sign(keypair, CHAIN, PeerRecord(addresses, sequence, links)))


def address(keypair: Keypair, port: int) -> str:
    return f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id_of_seed(keypair.seed)}"


def test_a_validators_link_addresses_are_learnt_and_the_newest_record_wins() -> None:
    directory = Directory(SignatureVerifier(CHAIN))
    key = Keypair.from_name("validator")
    account = address_of(key.public_key)
    first = directory.check(record_of(key, (address(key, 4001),), (address(key, 5001),)))
    assert isinstance(first, PeerRecord)
    directory.learn(first)
    assert directory.link_addresses_of(account) == (address(key, 5001),)
    # Restarted on other ports: the later record replaces the earlier one, an older one changes nothing.
    later = directory.check(record_of(key, (address(key, 4002),), (address(key, 5002),), sequence=2))
    assert isinstance(later, PeerRecord)
    directory.learn(later)
    directory.learn(first)
    assert directory.addresses_of(account) == (address(key, 4002),)
    assert directory.link_addresses_of(account) == (address(key, 5002),)


def test_a_link_address_naming_another_peer_is_refused() -> None:
    directory = Directory(SignatureVerifier(CHAIN))
    key, other = Keypair.from_name("validator"), Keypair.from_name("someone else")
    verdict = directory.check(record_of(key, (address(key, 4001),), (address(other, 5001),)))
    assert isinstance(verdict, Rejected) and "another key" in verdict.reason
    assert directory.link_addresses_of(address_of(key.public_key)) == ()
