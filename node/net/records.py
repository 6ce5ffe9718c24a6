"""Workaround for py-libp2p 0.8.1: a peer's signed peer record is checked once, not on every gossip RPC.

Every RPC a py-libp2p gossip node sends carries its signed peer record (`senderRecord`), and the receiver
runs `libp2p.pubsub.utils.maybe_consume_signed_record` on each one: protobuf parsing, an Ed25519
verification, the peer id derived again from the key and the address book rewritten, about 140 us on an
unloaded core, twice for an RPC with control messages (`Pubsub.continuously_read_stream`, then
`GossipSub.handle_rpc`). A peer sends the same bytes on every RPC until it signs a new record (ours every
`SIGNED_RECORD_REFRESH_S`), and the check of the same bytes from the same peer gives the same answer, so
during a burst this was 3-8% of a node's CPU spent proving one fact again.

`remember_signed_records` wraps the function where py-libp2p's pubsub modules look it up: bytes a peer
last sent, if they were accepted, are accepted again without the work; anything else (a new record, a
record refused before, no record) goes to the library's check unchanged. One difference remains: a record
accepted once is not refused later because the peer has since sent a newer one (py-libp2p would drop the
RPC for its lower sequence number). The address book keeps the newer record either way, and every gossip
message is authenticated by its own signature (strict signing), not by the record: this only stops the
library from dropping a peer's gossip while a twin of its key runs (see `P2PHost._refresh_signed_record`).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import libp2p.pubsub.gossipsub
import libp2p.pubsub.pubsub
from libp2p.pubsub import utils

# Peers remembered per host: the size of py-libp2p's peer store (`max_peers`), so the cache is no easier to
# grow with throwaway identities than the store itself; beyond it the least recently seen is forgotten
# (and simply checked again when it comes back).
MAX_REMEMBERED_PEERS = 1_000

_Check = Callable[[Any, Any, Any], bool]
_accepted: weakref.WeakKeyDictionary[Any, OrderedDict[Any, bytes]] = weakref.WeakKeyDictionary()


def _remembering(check: _Check) -> _Check:
    def check_once(rpc: Any, host: Any, peer_id: Any) -> bool:
        if not rpc.HasField("senderRecord"):
            return check(rpc, host, peer_id)
        record = rpc.senderRecord
        known = _accepted.setdefault(host, OrderedDict())
        if known.get(peer_id) == record:
            known.move_to_end(peer_id)
            return True
        ok = check(rpc, host, peer_id)
        if ok:
            known[peer_id] = record
            known.move_to_end(peer_id)
            while len(known) > MAX_REMEMBERED_PEERS:
                known.popitem(last=False)
        return ok

    check_once.__wrapped__ = check  # type: ignore[attr-defined]
    return check_once


def remember_signed_records() -> None:
    """Install the wrapper in both pubsub modules (once per process; later calls do nothing)."""
    original = utils.maybe_consume_signed_record
    for module in (libp2p.pubsub.pubsub, libp2p.pubsub.gossipsub):
        if getattr(module.maybe_consume_signed_record, "__wrapped__", None) is None:
            module.maybe_consume_signed_record = _remembering(original)  # type: ignore[attr-defined]
