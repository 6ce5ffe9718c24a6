"""Keeping a banned peer out, whoever dials.

Our own dials skip banned peers, but that was all: a peer banned for flooding invalid messages dialled back
in 20 s into its 60 s ban, was accepted, and its new messages were relayed. py-libp2p 0.8.1 has no
connection gater, and its GossipSub scorer forgets a peer's score when it disconnects, so the ban lives in
our `PenaltyBook` and is enforced at three doors:

- a connection: `BanGate` is a swarm notifee; a new connection from a banned peer is closed at once;
- gossip: `gate_validator` rejects, before decoding and relaying, what a banned peer forwards (a flood
  sent in the moment before its connection closes). What it originated and an honest peer relays is
  judged on its merits: py-libp2p counts every rejection against the relay (P4), and an honest relay
  must not lose its standing for a ban it knows nothing of;
- streams: `P2PHost` resets inbound streams of a banned peer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from libp2p.abc import INetConn, INetStream, INetwork, INotifee
from libp2p.peer.id import ID
from multiaddr import Multiaddr

log = logging.getLogger(__name__)

IsBanned = Callable[[str], bool]
Drop = Callable[[str], None]
Libp2pValidator = Callable[[ID, Any], bool]
AsyncLibp2pValidator = Callable[[ID, Any], Awaitable[bool]]


class QuietNotifee(INotifee):
    """A swarm notifee that ignores every event: a subclass overrides the ones it watches (py-libp2p's
    `INotifee` is abstract in all six)."""

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        return None

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:
        return None

    async def opened_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def closed_stream(self, network: INetwork, stream: INetStream) -> None:
        return None

    async def listen(self, network: INetwork, multiaddr: Multiaddr) -> None:
        return None

    async def listen_close(self, network: INetwork, multiaddr: Multiaddr) -> None:
        return None


class BanGate(QuietNotifee):
    """Closes every new connection of a banned peer (`drop` schedules the disconnect: a notifee must not
    block the swarm's event path)."""

    def __init__(self, is_banned: IsBanned, drop: Drop) -> None:
        self.is_banned = is_banned
        self.drop = drop

    async def connected(self, network: INetwork, conn: INetConn) -> None:
        peer = conn.muxed_conn.peer_id.to_base58()
        if self.is_banned(peer):
            log.info("event=banned-peer-refused peer=%s", peer)
            self.drop(peer)


def gate_validator(validate: Libp2pValidator, self_id: ID, is_banned: IsBanned, drop: Drop) -> Libp2pValidator:
    """`validate` preceded by the ban: a message forwarded by a banned peer is rejected unread and the peer
    dropped again."""

    def gated(forwarder: ID, msg: Any) -> bool:
        if forwarder != self_id and is_banned(forwarder.to_base58()):
            drop(forwarder.to_base58())
            return False
        return validate(forwarder, msg)

    return gated


def gate_async_validator(
    validate: AsyncLibp2pValidator, self_id: ID, is_banned: IsBanned, drop: Drop
) -> AsyncLibp2pValidator:
    """`gate_validator` for an asynchronous validator."""

    async def gated(forwarder: ID, msg: Any) -> bool:
        if forwarder != self_id and is_banned(forwarder.to_base58()):
            drop(forwarder.to_base58())
            return False
        return await validate(forwarder, msg)

    return gated
