"""Workaround for py-libp2p 0.8.1's check of the signed peer record carried by every gossip RPC.

Every RPC a py-libp2p gossip node sends carries its signed peer record (`senderRecord`), and the receiver
runs `libp2p.pubsub.utils.maybe_consume_signed_record` on each one (`Pubsub.continuously_read_stream`, and
again in `GossipSub.handle_rpc` for an RPC with control messages). Two costs:

- Work: protobuf parsing, an Ed25519 verification, the peer id derived again from the key and the address
  book rewritten, about 140 us on an unloaded core per check, 3-8% of a node's CPU during a burst. A peer
  sends the same bytes on every RPC until it signs a new record (ours every `SIGNED_RECORD_REFRESH_S`),
  and the same bytes from the same peer pass the same checks: they are checked once here.
- Lost gossip: the whole RPC is dropped ("Received an invalid-signed-record, ignoring the incoming msg")
  when its record is merely *older* than the one the peer store holds for that peer. Records are re-signed
  every few seconds while RPCs wait in the sender's queues (most likely: its two lanes let consensus
  messages overtake transaction batches built earlier; the mechanism was not traced further), so in a burst
  RPCs arrived with the previous record after one with the new record: 300, 560 and 2,058 RPCs, each with
  its gossip messages (proposals, votes, blocks, transaction batches), were dropped in a 3,000-transfer
  burst on a 10-node devnet without a CPU limit, at 1 core and at 0.5 core (bench/liveness.py); none since. Here an older record that is validly signed by the peer the
  RPC came from is no reason to drop the RPC; the peer store keeps the newer record (py-libp2p's own rule).
  The same covers a twin of a peer's key (see `P2PHost._refresh_signed_record`).

Sending costs too: before every RPC it sends, py-libp2p (`env_to_send_in_RPC`) builds the host's address
list and compares it with the cached record's, then serialises the record again (2-3.5% of a node's time in
a burst). `own_record` hands out the bytes of the current local record, serialised once; a new local record
(re-signed every `SIGNED_RECORD_REFRESH_S` by the host, which also picks up any new address) is a new
object and goes through py-libp2p's function again, as does a record without addresses (before listening).

A record that fails the signature, does not name the sending peer or is signed by another key still fails
the RPC, as in py-libp2p. Every gossip message is authenticated by its own signature anyway (strict signing).
`remember_signed_records` puts `check_sender_record` and `own_record` where py-libp2p's pubsub modules look
them up.
"""

from __future__ import annotations

import logging
import weakref
from collections import OrderedDict
from typing import Any

import libp2p.pubsub.gossipsub
import libp2p.pubsub.pubsub
from libp2p.peer.envelope import consume_envelope
from libp2p.peer.id import ID
from libp2p.peer.peer_record import PEER_RECORD_ENVELOPE_DOMAIN
from libp2p.peer.peerstore import env_to_send_in_RPC

log = logging.getLogger(__name__)

# Peers remembered per host: the size of py-libp2p's peer store (`max_peers`), so the memory is no easier to
# grow with throwaway identities than the store itself; beyond it the least recently seen is forgotten (and
# simply checked again when it comes back).
MAX_REMEMBERED_PEERS = 1_000
# How long the addresses of a consumed record stay in the peer store: py-libp2p's own value for gossip.
RECORD_TTL_S = 7200

_accepted: weakref.WeakKeyDictionary[Any, OrderedDict[ID, bytes]] = weakref.WeakKeyDictionary()
_own: weakref.WeakKeyDictionary[Any, tuple[object, bytes]] = weakref.WeakKeyDictionary()  # host: (record, bytes)


def own_record(host: Any) -> tuple[bytes, bool]:
    """`env_to_send_in_RPC`, serialising each local record once (module doc): (bytes, whether newly signed)."""
    current = host.get_peerstore().get_local_record()
    cached = _own.get(host)
    if current is not None and cached is not None and cached[0] is current:
        return cached[1], False
    data, created = env_to_send_in_RPC(host)
    record = host.get_peerstore().get_local_record()
    if record is not None and host.get_addrs():
        _own[host] = (record, data)
    return data, created


def check_sender_record(rpc: Any, host: Any, peer_id: ID) -> bool:
    """Whether an RPC from `peer_id` may be processed, as far as its sender record goes (see module doc)."""
    if not rpc.HasField("senderRecord"):
        return True
    data = bytes(rpc.senderRecord)
    known = _accepted.setdefault(host, OrderedDict())
    if known.get(peer_id) == data:
        known.move_to_end(peer_id)
        return True
    try:
        envelope, record = consume_envelope(data, PEER_RECORD_ENVELOPE_DOMAIN)
        signer = ID.from_pubkey(envelope.public_key)
    except Exception as exc:
        log.info("event=bad-sender-record peer=%s error=%r", peer_id, exc)
        return False
    if record.peer_id != peer_id or signer != peer_id:
        log.info("event=bad-sender-record peer=%s reason=not-signed-by-the-sender", peer_id)
        return False
    try:
        # False when the store holds a newer record of this peer: it keeps that one, and the RPC is fine.
        host.get_peerstore().consume_peer_record(envelope, RECORD_TTL_S)
    except Exception as exc:
        log.info("event=sender-record-not-stored peer=%s error=%r", peer_id, exc)
    known[peer_id] = data
    known.move_to_end(peer_id)
    while len(known) > MAX_REMEMBERED_PEERS:
        known.popitem(last=False)
    return True


def remember_signed_records() -> None:
    """Install `check_sender_record` and `own_record` in both pubsub modules (idempotent)."""
    for module in (libp2p.pubsub.pubsub, libp2p.pubsub.gossipsub):
        module.maybe_consume_signed_record = check_sender_record  # type: ignore[attr-defined]
        module.env_to_send_in_RPC = own_record  # type: ignore[attr-defined]
