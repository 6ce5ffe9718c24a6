"""py-libp2p checks the signed peer record carried by every gossip RPC; node/net/records.py checks a peer's
record once, and does not drop an RPC whose record is valid but older than the one already stored (RPCs
overtake each other in the sender's queue while it re-signs its record)."""

from __future__ import annotations

from typing import Any

import libp2p.pubsub.gossipsub
import libp2p.pubsub.pubsub
import pytest
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.peerstore import create_signed_peer_record, issue_and_cache_local_record
from libp2p.pubsub.pb.rpc_pb2 import RPC
from multiaddr import Multiaddr

from node.net import records
from node.net.records import check_sender_record, own_record


def rpc_with(record: bytes) -> RPC:
    rpc = RPC()
    rpc.senderRecord = record
    return rpc


def hosts() -> tuple[Any, Any]:
    sender = new_host(key_pair=create_new_key_pair(), listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/4001")])
    return sender, new_host(key_pair=create_new_key_pair())


def signed_record(host: Any) -> bytes:
    """A fresh record of `host` with an address (one without is dropped from the peer store at once)."""
    addrs = [Multiaddr("/ip4/127.0.0.1/tcp/4001")]
    return bytes(create_signed_peer_record(host.get_id(), addrs, host.get_private_key()).marshal_envelope())


def test_an_older_valid_record_does_not_drop_the_rpc() -> None:
    sender, receiver = hosts()
    older = signed_record(sender)
    newer = signed_record(sender)
    assert check_sender_record(rpc_with(newer), receiver, sender.get_id())
    assert check_sender_record(rpc_with(older), receiver, sender.get_id())  # py-libp2p drops this RPC
    stored = receiver.get_peerstore().peer_record_map[sender.get_id()]
    assert stored.envelope.marshal_envelope() == newer  # the store keeps the newer record
    assert check_sender_record(RPC(), receiver, sender.get_id())  # no record at all: as py-libp2p


def test_a_record_of_another_peer_or_a_broken_one_drops_the_rpc() -> None:
    sender, receiver = hosts()
    record = signed_record(sender)
    assert not check_sender_record(rpc_with(record), receiver, receiver.get_id())  # not the sending peer
    assert not check_sender_record(rpc_with(record[:-1] + bytes([record[-1] ^ 1])), receiver, sender.get_id())
    assert not check_sender_record(rpc_with(b"\x01garbage"), receiver, sender.get_id())


def test_the_same_record_again_is_not_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    sender, receiver = hosts()
    rpc = rpc_with(signed_record(sender))
    checks: list[bytes] = []
    real = records.consume_envelope

    def counting(data: bytes, domain: str) -> Any:
        checks.append(data)
        return real(data, domain)

    monkeypatch.setattr(records, "consume_envelope", counting)
    assert all(check_sender_record(rpc, receiver, sender.get_id()) for _ in range(3))
    assert len(checks) == 1
    _, other_receiver = hosts()  # every host remembers for itself
    assert check_sender_record(rpc, other_receiver, sender.get_id()) and len(checks) == 2


def test_installed_where_pubsub_looks_it_up() -> None:
    records.remember_signed_records()
    records.remember_signed_records()
    assert libp2p.pubsub.pubsub.maybe_consume_signed_record is check_sender_record  # type: ignore[attr-defined]
    assert libp2p.pubsub.gossipsub.maybe_consume_signed_record is check_sender_record  # type: ignore[attr-defined]


def test_the_own_record_is_serialised_once_per_signing() -> None:
    records.remember_signed_records()
    sender, _ = hosts()
    sender.get_addrs = lambda: [Multiaddr("/ip4/127.0.0.1/tcp/4001")]  # as once it listens
    first, created = own_record(sender)
    assert created and own_record(sender) == (first, False)
    assert own_record(sender)[0] is first  # the cached bytes, not serialised again
    issue_and_cache_local_record(sender)  # the host re-signs (node/net/host.py, every few seconds)
    second, _ = own_record(sender)
    assert second != first and second == sender.get_peerstore().get_local_record().marshal_envelope()
    assert libp2p.pubsub.gossipsub.env_to_send_in_RPC is own_record  # type: ignore[attr-defined]
