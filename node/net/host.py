"""`open_host`: one py-libp2p host (TCP + Noise + Yamux, GossipSub v1.1) behind a small trio API.

    async with open_host(HostConfig(seed=keypair.seed, bootstrap=(...,))) as host:
        host.subscribe("pocnet/x/txs", validator, handler, batched=True)
        await host.publish_item("pocnet/x/txs", tx_bytes)
        reply = await host.request(peer_id, "/pocnet/sync/1", b"...", timeout_s=5)

Everything the host starts lives in one nursery owned by the context manager; leaving the block cancels
it, and whatever of the library is still shutting down after `shutdown_grace_s` is cancelled hard, so
closing is bounded. The settings follow reference/py-libp2p.md; the library's quirks we work around are
marked `py-libp2p 0.8.1:` where they are handled.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.lowlevel
from libp2p import new_host
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo, info_from_p2p_addr
from libp2p.peer.peerstore import issue_and_cache_local_record
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.score import ScoreParams, TopicScoreParams
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from libp2p.stream_muxer.yamux.yamux import Yamux
from libp2p.tools.anyio_service import background_trio_service
from multiaddr import Multiaddr

from node.net.bans import BanGate, gate_async_validator, gate_validator
from node.net.batching import Batcher
from node.net.bulk_lane import BulkLane
from node.net.config import INVALID_MESSAGE_PENALTY, HostConfig
from node.net.counters import HostCounters
from node.net.framing import FramedStream
from node.net.gossip import (
    GossipHandler,
    Subscription,
    SubscriptionStats,
    Validator,
    make_libp2p_batch_validator,
    make_libp2p_validator,
    run_subscription,
)
from node.net.identity import PeerId, libp2p_key_pair, parse_peer_id
from node.net.logs import attach_libp2p_logger
from node.net.mesh import SpecMeshGossipSub
from node.net.penalties import PenaltyBook
from node.net.ports import ensure_listen_address_free
from node.net.records import remember_signed_records
from node.net.streams import RequestHandler, StreamHandler, StreamLimits, StreamService

log = logging.getLogger(__name__)

# GossipSub P4 (invalid messages): each one costs the forwarder 10 points of topic score, counted up to
# 100 and decaying by 10% a heartbeat. With the publish threshold below, a peer whose last ~5 messages
# were invalid has its messages dropped unread until its score recovers (a few seconds).
INVALID_MESSAGE_WEIGHT = 10.0
INVALID_MESSAGE_CAP = 100.0
INVALID_MESSAGE_DECAY = 0.9
PUBLISH_THRESHOLD = -50.0
# A full gossip queue from which nothing was taken for this long has lost its sending task (see
# _drop_dead_senders). A live sender takes an RPC each time one write completes, however slow the machine
# and however fast the queue refills; a single gossip write stuck this long is a link the consensus link
# gives up on too (its read timeout is also 10 s).
OUTBOUND_DEAD_S = 10.0
# Extra jitter on reconnection delays, so peers that lost each other do not redial in lockstep.
RECONNECT_JITTER = 0.25
# Our publishes wait while any peer's outbound queue (py-libp2p: 32 RPCs, then silent drops) holds this
# many, leaving half of it for relays, control messages and urgent (consensus) publishes.
OUTBOUND_HIGH_WATER = 16
OUTBOUND_POLL_S = 0.001
# A peer whose queue does not drain (slow, or stalled) must not hold back every publish: consensus votes
# wait here too, and one round trip of waiting per vote made commit latency grow to about a second.
OUTBOUND_MAX_WAIT_S = 0.2
# Peers dialled per connectivity check when below degree_low (spreads dials, no burst on start-up).
TOP_UP_DIALS_PER_CHECK = 2
# How often we sign a fresh peer record for our gossip RPCs (see _refresh_signed_record): the longest a
# twin of our key, or our own earlier run with a clock ahead, can get our gossip dropped.
SIGNED_RECORD_REFRESH_S = 5.0
# py-libp2p 0.8.1's Yamux sends a WINDOW_UPDATE frame after every read of a stream by default (its
# PY_YAMUX_RELEASE_ON_READ knob), and gossip reads each message's varint length prefix a byte at a time: every
# gossip message received cost several extra frames, each encrypted by Noise and written with a syscall.
# Profiled on a manager in a 3,000-transfer burst at --cpu-limit 0.5, those writes were 30% of its CPU. With
# the knob off, Yamux releases receive credit go-yamux's way, once half the window (128 KiB) has been read:
# no frame per message, and a reader that keeps reading never starves its sender. Read by the library at
# each call; set before any stream exists, unless the operator set it.
YAMUX_RELEASE_ON_READ_ENV = "PY_YAMUX_RELEASE_ON_READ"


class P2PHost:
    """The node's network endpoint. Create it with `open_host`; the methods are safe to call from any task
    of the owning trio run."""

    def __init__(self, config: HostConfig, libp2p_host: Any, pubsub: Pubsub, gossipsub: GossipSub) -> None:
        self.config = config
        self._host = libp2p_host
        self._pubsub = pubsub
        self._gossipsub = gossipsub
        self._self_id: ID = libp2p_host.get_id()
        self.peer_id: PeerId = self._self_id.to_base58()
        self._nursery: trio.Nursery | None = None
        self._subscriptions: dict[str, Subscription] = {}
        self._batchers: dict[str, Batcher] = {}
        self._publish_interval_s = config.batch.min_interval_s  # changed by pace_publishing
        self.penalties = PenaltyBook()
        # Called with a peer each time it is penalised while banned (as `_drop`): other hosts with our
        # identity (node/net/link_host.py) cut their connections to it too.
        self.on_ban: list[Callable[[PeerId], None]] = []
        self.counters = HostCounters()  # read by node/metrics.py
        # peer -> (the RPCs at the heads of its full outbound queue, since when none of them was taken)
        self._queue_marks: dict[Any, tuple[tuple[object, object], float]] = {}
        self._streams = StreamService(self._open_raw_stream, self.penalise)
        # The node's bulk CPU work (batched topics here; the mempool re-check, local submissions) takes turns
        # in this one lane, so that consensus and the muxers wait for one turn of it at most.
        self.bulk_lane = BulkLane()

    # --- identity and peers ----------------------------------------------------------------------

    @property
    def addrs(self) -> list[str]:
        """Our listen addresses, each ending with /p2p/<our peer id> (give one to others as bootstrap)."""
        return [str(addr) for addr in self._host.get_addrs()]

    def connected_peers(self) -> list[PeerId]:
        return [peer.to_base58() for peer in self._host.get_connected_peers()]

    def topic_peers(self, topic: str) -> list[PeerId]:
        """Peers known to be subscribed to `topic` (what a publish can reach directly)."""
        return [peer.to_base58() for peer in self._pubsub.peer_topics.get(topic, ())]

    def keep_direct(self, peer_id: PeerId) -> None:
        """Send this connected peer every gossip message we publish or relay, whatever the meshes (GossipSub
        v1.1 direct peering; both sides must do it). For the few peers whose traffic must not wait on mesh
        maintenance: validators among themselves, where a consensus mesh of three peers that lost one to a
        PRUNE and its backoff stalled a 30-node devnet for 15 s at a time. Dialling stays with the caller."""
        peer = parse_peer_id(peer_id)
        if peer not in self._gossipsub.direct_peers:
            # No addresses: the library only uses them to redial direct peers from a heartbeat that runs
            # only when direct peers are given at construction; our caller keeps the connection.
            self._gossipsub.direct_peers[peer] = PeerInfo(peer, [])

    def mesh_peers(self, topic: str) -> list[PeerId]:
        """Peers in our GossipSub mesh for `topic` (those we forward every message to)."""
        return [peer.to_base58() for peer in self._gossipsub.mesh.get(topic, ())]

    async def connect(self, addr: str, timeout_s: float | None = None) -> PeerId:
        """Dial a multiaddr ending with /p2p/<peer id>; returns the peer id. Raises OSError-free
        `ConnectionError` on failure so callers have one thing to catch."""
        info = info_from_p2p_addr(Multiaddr(addr))
        if self.is_banned(info.peer_id.to_base58()):
            raise ConnectionError(f"not dialling {addr}: the peer is banned")
        try:
            with trio.fail_after(timeout_s or self.config.dial_timeout_s):
                await self._host.connect(info)
        except trio.TooSlowError:
            raise ConnectionError(f"dialling {addr} took over {timeout_s or self.config.dial_timeout_s}s") from None
        except Exception as exc:
            raise ConnectionError(f"cannot connect to {addr}: {type(exc).__name__}: {exc}") from exc
        return info.peer_id.to_base58()

    async def disconnect(self, peer_id: PeerId) -> None:
        self._streams.forget_peer(peer_id)
        try:
            with trio.move_on_after(self.config.dial_timeout_s):
                await self._host.disconnect(parse_peer_id(peer_id))
        except Exception as exc:
            log.debug("event=disconnect-failed peer=%s error=%r", peer_id, exc)

    def penalise(self, peer_id: PeerId, reason: str, points: float = INVALID_MESSAGE_PENALTY) -> None:
        """Count misbehaviour against a peer (invalid gossip, garbage on a stream, a lie found by a protocol).
        Past the ban threshold the peer is disconnected and not redialled until the ban ends."""
        now = trio.current_time()
        was_banned = self.penalties.is_banned(peer_id, now)
        banned = self.penalties.add(peer_id, points, now)
        self.counters.count_penalty(banned)
        log.info(
            "event=peer-penalised peer=%s points=%.1f total=%.1f reason=%r",
            peer_id,
            points,
            self.penalties.points(peer_id, now),
            reason,
        )
        try:
            if self._gossipsub.scorer is not None:
                self._gossipsub.scorer.penalize_behavior(parse_peer_id(peer_id), points)
        except Exception as exc:
            log.debug("event=gossip-penalty-failed peer=%s error=%r", peer_id, exc)
        if banned and not was_banned:
            log.warning("event=peer-banned peer=%s duration_s=%.0f", peer_id, self.penalties.ban_duration_s)
        if banned:
            self._drop(peer_id)
            for dropped in self.on_ban:
                dropped(peer_id)

    def is_banned(self, peer_id: PeerId) -> bool:
        return self.penalties.is_banned(peer_id, trio.current_time())

    def _drop(self, peer_id: PeerId) -> None:
        """Disconnect a banned peer soon (from synchronous code: validators, notifees)."""
        if self._nursery is not None:
            self._nursery.start_soon(self.disconnect, peer_id)

    def peer_penalty(self, peer_id: PeerId) -> float:
        return self.penalties.points(peer_id, trio.current_time())

    # --- gossip ----------------------------------------------------------------------------------

    async def subscribe(
        self,
        topic: str,
        validator: Validator,
        handler: GossipHandler,
        *,
        batched: bool = False,
        deliver_own: bool = False,
    ) -> SubscriptionStats:
        """Receive `topic`: `validator(origin, item) -> value | Rejected(reason)` runs before a message is
        relayed (a rejection: not delivered, not relayed, the forwarder penalised); then `await handler(origin,
        value)` runs in this subscription's own task, with the value the validator decoded. `origin` is the publisher's peer id. With `batched`,
        each message is a batch (`publish_item`) and both run once per item; one invalid item rejects the
        whole batch. Our own messages are not delivered unless `deliver_own`. Returns live counters."""
        if topic in self._subscriptions:
            raise ValueError(f"already subscribed to {topic!r}")
        if self._nursery is None:
            raise RuntimeError("the host is not running")
        max_bytes = self.config.gossip.max_message_bytes
        sub = Subscription(topic, validator, handler, batched, max_bytes, max_bytes, deliver_own, lane=self.bulk_lane)
        self._subscriptions[topic] = sub
        if batched:  # a batch is many items' work: checked with checkpoints between them (see the factory)
            checker = make_libp2p_batch_validator(sub, self._self_id, self._report_invalid)
            gated = gate_async_validator(checker, self._self_id, self.is_banned, self._drop)
            self._pubsub.set_topic_validator(topic, gated, True)
        else:
            libp2p_validator = make_libp2p_validator(sub, self._self_id, self._report_invalid)
            self._pubsub.set_topic_validator(
                topic, gate_validator(libp2p_validator, self._self_id, self.is_banned, self._drop), False
            )
        libp2p_subscription = await self._pubsub.subscribe(topic)
        self._nursery.start_soon(run_subscription, sub, libp2p_subscription, self._self_id)
        return sub.stats

    def subscription_stats(self) -> dict[str, SubscriptionStats]:
        """Live counters of each subscribed topic (delivered, rejected...), for metrics."""
        return {topic: sub.stats for topic, sub in self._subscriptions.items()}

    def _report_invalid(self, forwarder: PeerId, topic: str, reason: str) -> None:
        log.warning("event=gossip-rejected topic=%s forwarder=%s reason=%r", topic, forwarder, reason)
        self.penalise(forwarder, f"invalid gossip on {topic}: {reason}")

    async def publish(self, topic: str, data: bytes, *, urgent: bool = False) -> None:
        """Publish one gossip message now. Raises ValueError above the size limit (py-libp2p would drop it
        silently). Best effort: see DESIGN.md section 8 for what must be re-announced.

        `urgent` (consensus votes and proposals) skips the wait for outbound room below: that wait is the
        back-pressure of bulk traffic, and a vote must not queue behind transaction batches. Urgent messages
        are few (the consensus state machine bounds them), and bulk publishers leave half of every peer's
        queue free (OUTBOUND_HIGH_WATER), which is the room urgent messages use."""
        limit = self.config.gossip.max_message_bytes
        if len(data) > limit:
            raise ValueError(f"gossip message of {len(data)} bytes exceeds the limit of {limit}; use a stream")
        await self._pubsub.publish(topic, data)
        self.counters.published[topic] += 1
        # py-libp2p 0.8.1: publish() never yields, so a loop of publishes starves delivery, and the per-peer
        # outbound queues (32 RPCs) overflow and drop silently. Yielding once is not enough (each write goes
        # through Noise and Yamux): wait until every outbound queue is back below its high-water mark.
        await trio.lowlevel.checkpoint()
        if not urgent:
            await self._wait_for_outbound_room()

    async def _wait_for_outbound_room(self) -> None:
        deadline = trio.current_time() + OUTBOUND_MAX_WAIT_S
        while True:
            full = {peer: len(q) for peer, q in list(self._pubsub.peer_queues.items()) if len(q) >= OUTBOUND_HIGH_WATER}
            self._drop_dead_senders(full)
            if not full or trio.current_time() > deadline:
                return
            await trio.sleep(OUTBOUND_POLL_S)

    def _drop_dead_senders(self, full: dict[Any, int]) -> None:
        """py-libp2p 0.8.1: Pubsub.handle_sending_messages returns when a write fails (the gossip stream was
        closed or reset) without removing the peer's queue; only an exception calls _handle_dead_peer. That
        queue never drains again, the peer silently receives nothing, and every publish waits for it. A
        full queue from which nothing was taken for OUTBOUND_DEAD_S has no sender: drop the connection, so
        the library forgets the peer and the connectivity loop dials it afresh.

        "Nothing taken" is judged by the RPCs at the heads of the queue, not by its length: under a burst
        a live peer's queue is refilled to the brim as fast as it drains, so its length never shrinks, and
        at --cpu-limit 0.5 that got the managers disconnected from each other (consensus links included)
        several times per burst, each time costing rounds until they had re-dialled."""
        now = trio.current_time()
        marks = self._queue_marks
        for peer in [p for p in marks if p not in full]:
            del marks[peer]
        queues = self._pubsub.peer_queues
        for peer, length in full.items():
            heads = _queue_heads(queues[peer])
            last_heads, since = marks.get(peer, (heads, now))
            taken = any(last is not None and last is not head for last, head in zip(last_heads, heads))
            marks[peer] = (heads, now if taken else since)
            if now - marks[peer][1] > OUTBOUND_DEAD_S:
                del marks[peer]
                log.warning("event=gossip-sender-dead peer=%s queued=%d action=disconnect", peer.to_base58(), length)
                if self._nursery is not None:
                    self._nursery.start_soon(self.disconnect, peer.to_base58())

    async def publish_item(self, topic: str, item: bytes) -> None:
        """Queue one item for `topic`; it goes out within `config.batch.delay_s` in a batch with the items
        published meanwhile. Receivers must subscribe with `batched=True`."""
        batcher = self._batchers.get(topic)
        if batcher is None:
            if self._nursery is None:
                raise RuntimeError("the host is not running")
            batcher = Batcher(topic, self.publish, self.config.batch, self.config.gossip.max_message_bytes)
            batcher.pace(self._publish_interval_s)
            self._batchers[topic] = batcher
            self._nursery.start_soon(batcher.run)
        await batcher.add(item)

    def pace_publishing(self, min_interval_s: float) -> None:
        """From now on each topic's batches of `publish_item` leave at most once per `min_interval_s`."""
        self._publish_interval_s = min_interval_s
        for batcher in self._batchers.values():
            batcher.pace(min_interval_s)

    async def flush(self, topic: str | None = None) -> None:
        """Publish gathered batch items now instead of waiting for the batch delay."""
        for name, batcher in list(self._batchers.items()):
            if topic is None or name == topic:
                await batcher.flush()

    # --- streams ---------------------------------------------------------------------------------

    def set_request_handler(
        self, protocol_id: str, handler: RequestHandler, limits: StreamLimits | None = None
    ) -> None:
        """Serve `protocol_id` as request/response: `await handler(peer_id, request) -> response`, many
        requests per stream. Raise `RequestRejected(reason)` to answer with an error."""
        self._streams.register(protocol_id, limits or StreamLimits(), request_handler=handler)
        self._host.set_stream_handler(TProtocol(protocol_id), self._inbound_for(protocol_id))

    def set_stream_handler(self, protocol_id: str, handler: StreamHandler, limits: StreamLimits | None = None) -> None:
        """Serve `protocol_id` with `await handler(stream)`, which owns the `FramedStream` (may send and
        receive any number of frames); the stream is closed when the handler returns."""
        self._streams.register(protocol_id, limits or StreamLimits(), stream_handler=handler)
        self._host.set_stream_handler(TProtocol(protocol_id), self._inbound_for(protocol_id))

    def _inbound_for(self, protocol_id: str) -> Any:
        return inbound_stream_handler(self._streams, protocol_id, self.is_banned, self._drop)

    async def _open_raw_stream(self, peer_id: PeerId, protocol_id: str) -> Any:
        return await self._host.new_stream(parse_peer_id(peer_id), [TProtocol(protocol_id)])

    async def request(
        self, peer_id: PeerId, protocol_id: str, payload: bytes, timeout_s: float, limits: StreamLimits | None = None
    ) -> bytes:
        """One request/response round trip on a pooled stream. Raises `RequestError` (or its subclass
        `RemoteError` when the peer answered with an error)."""
        return await self._streams.request(peer_id, protocol_id, payload, timeout_s, limits)

    async def open_stream(self, peer_id: PeerId, protocol_id: str, limits: StreamLimits | None = None) -> FramedStream:
        """A new framed stream to a peer's stream handler; the caller must `close()` (or `reset()`) it."""
        return await self._streams.open_stream(peer_id, protocol_id, limits)

    # --- connectivity ----------------------------------------------------------------------------

    def _start(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._streams.nursery = nursery
        self._host.get_network().register_notifee(BanGate(self.is_banned, self._drop))
        nursery.start_soon(self._refresh_signed_record)
        for addr in self.config.bootstrap:
            nursery.start_soon(self._keep_connected, addr)
        nursery.start_soon(self._top_up_peers)

    async def _refresh_signed_record(self) -> None:
        """py-libp2p 0.8.1: every gossip RPC carries the sender's signed peer record, and a receiver drops
        the whole RPC ("invalid-signed-record, ignoring the incoming msg") when the record's sequence number
        (a timestamp taken when the record was signed, then cached) is lower than one it stored for that
        peer. Once a second process ran with our key (a twin, in a chaos run: a validator's key copied),
        every peer that heard the twin dropped all of our gossip for the rest of the run, and with one more
        manager down the chain stalled. Signing a fresh record now and then gets our gossip through again
        within SIGNED_RECORD_REFRESH_S of the twin stopping."""
        while True:
            await trio.sleep(SIGNED_RECORD_REFRESH_S)
            issue_and_cache_local_record(self._host)

    async def _keep_connected(self, addr: str) -> None:
        """Stay connected to one bootstrap peer: redial with exponential backoff whenever it is lost."""
        try:
            info = info_from_p2p_addr(Multiaddr(addr))
        except Exception as exc:
            log.error("event=bad-bootstrap-addr addr=%s error=%r", addr, exc)
            return
        if info.peer_id == self._self_id:
            return
        peer = info.peer_id.to_base58()
        delay = self.config.reconnect_initial_s
        while True:
            now = trio.current_time()
            if info.peer_id not in self._host.get_connected_peers() and not self.penalties.is_banned(peer, now):
                try:
                    with trio.fail_after(self.config.dial_timeout_s):
                        await self._host.connect(info)
                    log.info("event=bootstrap-connected peer=%s addr=%s", peer, addr)
                    delay = self.config.reconnect_initial_s
                except Exception as exc:  # includes TooSlowError: both mean "try again later"
                    log.info("event=bootstrap-dial-failed peer=%s retry_s=%.2f error=%r", peer, delay, exc)
                    await trio.sleep(delay * (1 + RECONNECT_JITTER * random.random()))
                    delay = min(delay * 2, self.config.reconnect_max_s)
                    continue
            await trio.sleep(self.config.connectivity_check_s)

    async def _top_up_peers(self) -> None:
        """Below degree_low connections, dial peers we know addresses of (the mesh needs that many)."""
        while True:
            await trio.sleep(self.config.connectivity_check_s)
            connected = set(self._host.get_connected_peers())
            missing = self.config.gossip.degree_low - len(connected)
            if missing <= 0:
                continue
            now = trio.current_time()
            store = self._host.get_peerstore()
            candidates = [
                peer
                for peer in store.peers_with_addrs()
                if peer != self._self_id
                and peer not in connected
                and not self.penalties.is_banned(peer.to_base58(), now)
            ]
            random.shuffle(candidates)
            for peer in candidates[: min(missing, TOP_UP_DIALS_PER_CHECK)]:
                try:
                    with trio.fail_after(self.config.dial_timeout_s):
                        await self._host.connect(store.peer_info(peer))
                    log.info("event=top-up-connected peer=%s", peer.to_base58())
                except Exception as exc:
                    log.debug("event=top-up-dial-failed peer=%s error=%r", peer.to_base58(), exc)


def new_libp2p_host(seed: bytes, listen: str, connection_config: ConnectionConfig) -> Any:
    """A py-libp2p host with our identity that speaks TCP + Noise + Yamux only, its library bugs worked
    around (the gossip host below and the consensus link host, node/net/link_host.py)."""
    key_pair = libp2p_key_pair(seed)
    host = new_host(
        key_pair=key_pair,
        # py-libp2p 0.8.1 accepts plaintext, secio and TLS by default: a peer could connect unencrypted.
        # Offer Noise only (the Noise static key is an ephemeral X25519 key, authenticated by our Ed25519 key).
        sec_opt={NOISE_PROTOCOL_ID: NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)},
        # Yamux only: Mplex resets a stream on a 1 MiB message (reference/py-libp2p.md).
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=[Multiaddr(listen)],
        connection_config=connection_config,
        enable_mDNS=False,
        enable_upnp=False,
    )
    # py-libp2p 0.8.1: `Swarm._handle_inbound_connection` takes a slot of `_inbound_limiter` (capacity
    # max_connections - min_connections) for each inbound connection and gives it back only when the whole
    # swarm stops (the handler waits on `manager.wait_finished()` before its `finally`), not when the
    # connection closes. Every inbound connection a node ever accepted kept its slot: after about 296 (a
    # fuzzer's banned attacker identities, each dialling in; peers redialling after restarts), the node
    # closed every new inbound connection before the security handshake ("failed to negotiate the secure
    # protocol" at the dialler) and took no new peer. The live connection count stays capped where it is
    # authoritative (`Swarm.add_conn` closes a connection beyond max_connections); the limiter only leaked.
    swarm: Any = host.get_network()  # the Swarm behind its interface, which does not declare the limiter
    swarm._inbound_limiter = trio.CapacityLimiter(math.inf)
    keep_own_peer_entry(host.get_peerstore(), host.get_id())
    return host


def _build_libp2p(config: HostConfig) -> tuple[Any, Pubsub, GossipSub]:
    remember_signed_records()  # py-libp2p 0.8.1 checks a peer's signed record on every RPC: node/net/records.py
    host = new_libp2p_host(
        config.seed,
        config.listen,
        # py-libp2p 0.8.1: with the default of 3 connections per peer, every connect() waits out a 250 ms timer.
        ConnectionConfig(
            max_connections_per_peer=1,
            dial_timeout=config.dial_timeout_s,
            # The library's auto-connector dials every known peer while below min_connections (default 50);
            # we only need a gossip mesh's worth, like our own top-up below.
            min_connections=config.gossip.degree_low,
            low_watermark=config.gossip.degree_high,
            max_connections=config.max_connections,
            high_watermark=config.max_connections,  # the library's default too (it must not exceed the max)
        ),
    )
    gossip = config.gossip
    score_params = ScoreParams(
        p4_invalid_messages=TopicScoreParams(
            weight=INVALID_MESSAGE_WEIGHT, cap=INVALID_MESSAGE_CAP, decay=INVALID_MESSAGE_DECAY
        ),
        publish_threshold=PUBLISH_THRESHOLD,
        gossip_threshold=PUBLISH_THRESHOLD,
        graylist_threshold=-math.inf,
        accept_px_threshold=-math.inf,
    )
    # py-libp2p 0.8.1's mesh maintenance churns without end: see node/net/mesh.py.
    gossipsub = SpecMeshGossipSub(
        protocols=[PROTOCOL_ID_V11],
        degree=gossip.degree,
        degree_low=gossip.degree_low,
        degree_high=gossip.degree_high,
        time_to_live=gossip.fanout_ttl_s,
        gossip_window=gossip.gossip_window,
        gossip_history=gossip.gossip_history,
        heartbeat_initial_delay=0.1,
        heartbeat_interval=gossip.heartbeat_interval_s,
        do_px=False,
        prune_back_off=gossip.prune_backoff_s,
        unsubscribe_back_off=gossip.unsubscribe_backoff_s,
        score_params=score_params,
        # Adaptive gossip retunes degrees from a "health" estimate: off, so the mesh is what we configured.
        adaptive_gossip_enabled=False,
        spam_protection_enabled=gossip.spam_protection,
        max_messages_per_topic_per_second=gossip.max_msgs_per_topic_per_s,
        eclipse_protection_enabled=gossip.eclipse_protection,
        pending_messages_ttl=gossip.pending_ttl_s,
        max_pending_messages_per_peer=gossip.pending_max_per_peer,
    )
    pubsub = Pubsub(
        host,
        gossipsub,
        strict_signing=True,  # every message signed by its origin and checked before validators run
        seen_ttl=gossip.seen_ttl_s,
        # Reject oversize RPC frames while reading them (py-libp2p's default is 1 MiB; ours is lower).
        max_inbound_rpc_size=gossip.max_message_bytes + 64 * 1024,
        # py-libp2p 0.8.1 drops a message whose asynchronous validator (our batched topics) runs longer than
        # this, 5 s by default: how long a batch takes to check depends on the machine's speed and load (a
        # few seconds at --cpu-limit 0.5), and a valid batch dropped is re-announced later at a higher cost.
        # Our validators always finish, their work bounded by the batch limits: no timeout.
        validation_timeout=math.inf,
    )
    # py-libp2p 0.8.1: a message's id is (origin, seqno) and seqnos count up by one per message from
    # `int(time.time())` at start. A host that published more than one message per second of its life
    # restarts below its last seqno; its new messages then reuse ids every peer still has in its seen cache
    # (seen_ttl_s) and are dropped unread: a restarted validator was mute for up to two minutes. Counting
    # from the wall clock in nanoseconds instead keeps every restart ahead of the last run unless the host
    # published over a billion messages per second (and still fits the 8-byte seqno until the year 2554).
    pubsub.counter = time.time_ns()
    return host, pubsub, gossipsub


def inbound_stream_handler(
    streams: StreamService, protocol_id: str, is_banned: Callable[[PeerId], bool], drop: Callable[[PeerId], None]
) -> Callable[[Any], Awaitable[None]]:
    """What libp2p calls for a new inbound stream of `protocol_id`: a banned peer's is reset (and the peer
    dropped again), any other is served by `streams`."""

    async def on_stream(net_stream: Any) -> None:
        try:
            peer_id = net_stream.muxed_conn.peer_id.to_base58()
        except Exception:
            peer_id = "unknown"
        if is_banned(peer_id):
            await net_stream.reset()
            drop(peer_id)
            return
        await streams.on_inbound(net_stream, peer_id, protocol_id)

    return on_stream


def keep_own_peer_entry(store: Any, self_id: ID) -> None:
    """Workaround for py-libp2p 0.8.1: beyond `max_peers` (1,000) known peers, `PeerStore._enforce_peer_limit`
    evicts the entries without addresses first, and the host's own entry (its keys, no addresses) is one. The
    host then fails `get_public_key()`: every identify request it answers raises `PeerStoreError('peer ID not
    found')` and takes down the connection's stream handler (found by `pocnet fuzz network` after ~26,000
    inputs from attacker identities). The limit keeps working for every other peer."""
    enforce = store._enforce_peer_limit

    def enforce_but_keep_own() -> None:
        own = store.peer_data_map.pop(self_id, None)
        try:
            enforce()
        finally:
            if own is not None:
                store.peer_data_map[self_id] = own

    store._enforce_peer_limit = enforce_but_keep_own


@asynccontextmanager
async def open_host(config: HostConfig) -> AsyncIterator[P2PHost]:
    """Start a host listening on `config.listen`, joined to `config.bootstrap`; stop it on exit."""
    attach_libp2p_logger()
    os.environ.setdefault(YAMUX_RELEASE_ON_READ_ENV, "0")
    ensure_listen_address_free(config.listen)  # py-libp2p 0.8.1 would share the port: see node/net/ports.py
    libp2p_host, pubsub, gossipsub = _build_libp2p(config)
    host = P2PHost(config, libp2p_host, pubsub, gossipsub)
    hard_stop = trio.CancelScope()
    with hard_stop:
        async with (
            libp2p_host.run(listen_addrs=[Multiaddr(config.listen)]),
            background_trio_service(pubsub),
            background_trio_service(gossipsub),
        ):
            await pubsub.wait_until_ready()
            async with trio.open_nursery() as nursery:
                host._start(nursery)
                log.info("event=host-started peer=%s addrs=%s", host.peer_id, ",".join(host.addrs))
                try:
                    yield host
                finally:
                    # Bound the library's shutdown: whatever still runs after the grace period is cancelled.
                    hard_stop.deadline = trio.current_time() + config.shutdown_grace_s
                    host._nursery = None
                    nursery.cancel_scope.cancel()
                    await close_network(libp2p_host, config.shutdown_grace_s)
    if hard_stop.cancelled_caught:
        log.warning("event=host-shutdown-forced peer=%s grace_s=%.1f", host.peer_id, config.shutdown_grace_s)
    log.info("event=host-stopped peer=%s", host.peer_id)


async def close_network(libp2p_host: Any, grace_s: float) -> None:
    """py-libp2p 0.8.1: leaving host.run() does not close the swarm; its TCP listener (a system task) keeps
    accepting under our identity and open connections stay up, so a node restarted in the same process
    never meshes again. Close the network ourselves (shielded: we are being cancelled; bounded)."""
    with trio.CancelScope(shield=True), trio.move_on_after(grace_s):
        try:
            await libp2p_host.get_network().close()
        except Exception as exc:  # the library raises assorted types while tearing down
            log.debug("event=network-close-failed error=%r", exc)


def _queue_heads(queue: Any) -> tuple[object, object]:
    """The next RPC of each of a py-libp2p outbound queue's two lanes (priority, then the rest), or None.

    py-libp2p 0.8.1's RpcQueue says neither whether its sending task lives nor how much it sent, so
    _drop_dead_senders looks inside (RpcQueue._queue, a PriorityQueue of two deques): a head that changed
    was taken by the sender, a push to an empty lane does not count."""
    lanes = queue._queue
    return (lanes._priority[0] if lanes._priority else None, lanes._non_priority[0] if lanes._non_priority else None)
