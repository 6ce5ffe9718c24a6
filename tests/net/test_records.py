"""py-libp2p checks the signed peer record carried by every gossip RPC; node/net/records.py makes it check a
peer's record once: the same bytes again are accepted without the work, new or refused bytes are checked."""

from __future__ import annotations

from typing import Any

import libp2p.pubsub.gossipsub
import libp2p.pubsub.pubsub
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.peerstore import issue_and_cache_local_record
from libp2p.pubsub.pb.rpc_pb2 import RPC
from multiaddr import Multiaddr

from node.net import records


def rpc_with(record: bytes) -> RPC:
    rpc = RPC()
    rpc.senderRecord = record
    return rpc


class Host:
    """Stands for a py-libp2p host: the memory is per host."""


def test_a_peer_record_is_checked_once_until_it_changes() -> None:
    calls: list[bytes] = []

    def library_check(rpc: Any, host: Any, peer_id: Any) -> bool:
        calls.append(rpc.senderRecord)
        return bool(rpc.senderRecord != b"forged")

    check = records._remembering(library_check)
    host, peer = Host(), "peer"
    assert check(rpc_with(b"r1"), host, peer) and check(rpc_with(b"r1"), host, peer)
    assert calls == [b"r1"]
    assert check(rpc_with(b"r2"), host, peer)  # re-signed: checked again
    assert not check(rpc_with(b"forged"), host, peer) and not check(rpc_with(b"forged"), host, peer)
    assert check(rpc_with(b"r2"), Host(), peer)  # another host of the process keeps its own memory
    assert check(RPC(), host, peer) and check(RPC(), host, peer)  # no record: the library decides each time
    assert calls == [b"r1", b"r2", b"forged", b"forged", b"r2", b"", b""]


def test_the_real_check_runs_through_the_installed_wrapper() -> None:
    records.remember_signed_records()
    records.remember_signed_records()  # idempotent: one wrapper, not two
    for module in (libp2p.pubsub.pubsub, libp2p.pubsub.gossipsub):
        wrapped = module.maybe_consume_signed_record
        assert getattr(wrapped.__wrapped__, "__wrapped__", None) is None
    sender = new_host(key_pair=create_new_key_pair(), listen_addrs=[Multiaddr("/ip4/127.0.0.1/tcp/4001")])
    receiver = new_host(key_pair=create_new_key_pair())
    rpc = rpc_with(issue_and_cache_local_record(sender))
    check = libp2p.pubsub.pubsub.maybe_consume_signed_record
    assert check(rpc, receiver, sender.get_id()) and check(rpc, receiver, sender.get_id())
    assert not check(rpc, receiver, receiver.get_id())  # a record of another peer than the sender: refused
