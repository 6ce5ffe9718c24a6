"""`open_link_host`: a second py-libp2p host with the node's identity, for streams that must not share a TCP
connection with gossip (the validators' consensus links, node/consensus_link.py).

Why a second connection: one connection is read by one Yamux reader, frame after frame, each decrypted by
Noise and handed to its stream. Between validators the gossip connection carries every transaction batch,
so a vote sent on a stream of its own still waited until every batch frame written before it had been read,
and under a burst at `bench.liveness --cpu-limit 0.5` that was 1-4 s: the proposer of the next height
committed late, the others' rounds timed out before its proposal came, and rounds failed with no message
lost. A connection that carries consensus only is read by its own task, behind nothing but consensus.

py-libp2p 0.8.1 cannot be asked for a second connection to a peer it is connected to (we hold it to one
per peer, see `host._build_libp2p`, and a stream is put on a connection of the library's choosing), hence
a host of its own, listening on another port of the same interface. It has no gossip and no auto-dialling;
it dials a peer only to open a stream, at the addresses the peer announced for it (`know`). Bans are the
node's: a peer banned by the gossip host is refused here too, and misbehaviour seen here counts there.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from libp2p.network.config import ConnectionConfig
from libp2p.peer.peerinfo import PeerInfo
from multiaddr import Multiaddr

from node.net.bans import BanGate
from node.net.framing import FramedStream
from node.net.host import P2PHost, close_network, inbound_stream_handler, new_libp2p_host
from node.net.identity import PeerId, parse_peer_id
from node.net.streams import StreamHandler, StreamLimits, StreamService

log = logging.getLogger(__name__)

# Connections a link host holds: one per other validator, with room for a few being replaced. Anyone may
# dial a listening port, but a peer the host does not admit (not a validator) is disconnected as soon as
# its handshake names it, like a banned one: strangers cannot fill these slots for long.
MAX_LINK_CONNECTIONS = 64


def any_port_of(listen: str) -> str:
    """`listen` with its TCP port replaced by 0: the same interface, a port the system picks."""
    addr = Multiaddr(listen)
    return str(addr.decapsulate(Multiaddr(f"/tcp/{addr.value_for_protocol('tcp')}"))) + "/tcp/0"


class LinkHost:
    """Opens and serves framed streams on connections of their own (see the module doc)."""

    def __init__(self, main: P2PHost, libp2p_host: Any, admits: Callable[[PeerId], bool]) -> None:
        """`admits`: the peers this host talks to at all (the validators); every other one is refused."""
        self._main = main
        self._admits = admits
        self._host = libp2p_host
        self.peer_id: PeerId = main.peer_id
        self._streams = StreamService(self._open_raw_stream, main.penalise)  # a ban drops the peer here too: on_ban
        self._addresses: dict[PeerId, tuple[str, ...]] = {}
        self._nursery: trio.Nursery | None = None

    @property
    def addrs(self) -> list[str]:
        """Our link listen addresses, each ending with /p2p/<our peer id> (announce them in our peer record)."""
        return [str(addr) for addr in self._host.get_addrs()]

    def connected_peers(self) -> list[PeerId]:
        return [peer.to_base58() for peer in self._host.get_connected_peers()]

    def know(self, peer_id: PeerId, addresses: tuple[str, ...]) -> None:
        """Where `peer_id`'s link host listens (its latest announcement; a restarted peer has a new port)."""
        self._addresses[peer_id] = addresses

    def refuses(self, peer_id: PeerId) -> bool:
        """Banned by the node, or not admitted here."""
        return self._main.is_banned(peer_id) or not self._admits(peer_id)

    def _drop(self, peer_id: PeerId) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(self._disconnect, peer_id)

    async def _disconnect(self, peer_id: PeerId) -> None:
        self._streams.forget_peer(peer_id)
        try:
            with trio.move_on_after(self._main.config.dial_timeout_s):
                await self._host.disconnect(parse_peer_id(peer_id))
        except Exception as exc:
            log.debug("event=link-disconnect-failed peer=%s error=%r", peer_id, exc)

    def set_stream_handler(self, protocol_id: str, handler: StreamHandler, limits: StreamLimits) -> None:
        """Serve `protocol_id` with `await handler(stream)` (as `P2PHost.set_stream_handler`)."""
        self._streams.register(protocol_id, limits, stream_handler=handler)
        self._host.set_stream_handler(protocol_id, inbound_stream_handler(self._streams, protocol_id, self.refuses, self._drop))

    async def open_stream(self, peer_id: PeerId, protocol_id: str, limits: StreamLimits) -> FramedStream:
        """A new framed stream to a peer's link host, dialling it first if needed; raises `RequestError`."""
        return await self._streams.open_stream(peer_id, protocol_id, limits)

    async def _open_raw_stream(self, peer_id: PeerId, protocol_id: str) -> Any:
        if self.refuses(peer_id):
            raise ConnectionError("the peer is banned, or not one this host links to")
        peer = parse_peer_id(peer_id)
        if peer_id not in self.connected_peers():
            addresses = self._addresses.get(peer_id, ())
            if not addresses:
                raise ConnectionError("the peer announced no link address")
            await self._host.connect(PeerInfo(peer, [Multiaddr(address) for address in addresses]))
        return await self._host.new_stream(peer, [protocol_id])


@asynccontextmanager
async def open_link_host(main: P2PHost, listen: str, admits: Callable[[PeerId], bool]) -> AsyncIterator[LinkHost]:
    """Start a link host with `main`'s identity listening on `listen`, talking only to the peers it `admits`;
    stop it on exit (bounded, as `open_host`)."""
    config = main.config
    libp2p_host = new_libp2p_host(
        config.seed,
        listen,
        ConnectionConfig(
            max_connections_per_peer=1,  # see host._build_libp2p
            dial_timeout=config.dial_timeout_s,
            min_connections=0,  # no auto-dialling: a link is opened when there is something to send
            low_watermark=MAX_LINK_CONNECTIONS,
            max_connections=MAX_LINK_CONNECTIONS,
            high_watermark=MAX_LINK_CONNECTIONS,
        ),
    )
    host = LinkHost(main, libp2p_host, admits)
    hard_stop = trio.CancelScope()
    with hard_stop:
        async with libp2p_host.run(listen_addrs=[Multiaddr(listen)]), trio.open_nursery() as nursery:
            host._nursery = nursery
            host._streams.nursery = nursery
            libp2p_host.get_network().register_notifee(BanGate(host.refuses, host._drop))
            main.on_ban.append(host._drop)
            log.info("event=link-host-started addrs=%s", ",".join(host.addrs))
            try:
                yield host
            finally:
                main.on_ban.remove(host._drop)
                hard_stop.deadline = trio.current_time() + config.shutdown_grace_s
                host._nursery = None
                nursery.cancel_scope.cancel()
                await close_network(libp2p_host, config.shutdown_grace_s)
    if hard_stop.cancelled_caught:
        log.warning("event=link-host-shutdown-forced grace_s=%.1f", config.shutdown_grace_s)
