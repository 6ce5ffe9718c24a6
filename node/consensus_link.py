"""Consensus messages pushed straight to the other validators, each over a stream of its own, on a
connection that carries nothing else.

Why not gossip alone: py-libp2p reads one gossip message at a time per connection and runs its validator
before reading the next, and between validators the same connection carries the transaction batches. A
vote behind a dozen batches waited until every one had been decoded and signature-checked: on a devnet
limited to half a core, a 3,000-transfer burst made round 0 of a height last 50 s (bench/liveness.py).
A stream is read by its own task, so a vote waits at most for the batch being checked when it arrives; and
the stream is on a connection of its own (node/net/link_host.py), so it is not read behind the batches'
frames either.

Gossip stays the fallback (a validator not linked yet, a link being re-opened, a queue that overflowed);
the consensus state machine ignores the copy that arrives second. Every message is checked as gossip is
(decodable, signed by a validator, valid signature) before it reaches consensus, and a sender of garbage
is penalised the same way.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

import trio

from node.net.config import MAX_GOSSIP_BYTES
from node.net.framing import FramedStream, FrameError, StreamClosed
from node.net.gossip import GossipHandler, Rejected, Validator
from node.net.host import P2PHost
from node.net.link_host import LinkHost, any_port_of, open_link_host
from node.net.streams import RequestError, StreamLimits
from node.trio_compat import TaskStatus

log = logging.getLogger(__name__)

CONSENSUS_PROTOCOL = "/pocnet/consensus/1"
# One frame is one consensus message; a proposal carries its block and is bounded like any gossip message.
# A link only ever goes from one validator to another: a few inbound streams per validator, with room for
# one being re-opened while the old one is torn down.
LIMITS = StreamLimits(max_frame_bytes=MAX_GOSSIP_BYTES, read_timeout_s=10.0, max_inbound_streams=32)
# Messages waiting to be written on one link. A height costs each validator about three messages plus a
# re-broadcast or two; 256 is dozens of heights. When a link is slower than that, the oldest are dropped:
# the newest messages are the ones the receiver can still use, and gossip carries copies of all of them.
LINK_QUEUE = 256
# After a link could not be opened, its queued messages are dropped (gossip has them) and it is tried
# again on the next message, but not sooner than this: a peer that is down must not cost a dial per vote.
REOPEN_S = 1.0


# Digests of the messages written on a link's current stream, remembered so that none is written twice
# (see ConsensusLinks.send): a few heights' worth of messages, a few dozen bytes each.
WRITTEN_MEMORY = 1_024


class _Link:
    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.queue: deque[tuple[bytes, bytes]] = deque(maxlen=LINK_QUEUE)  # (digest, message)
        self.wake = trio.Event()
        self.stream: FramedStream | None = None
        self.dropped = 0
        self.written: OrderedDict[bytes, None] = OrderedDict()  # digests, on `stream` only

    @property
    def reaches(self) -> bool:
        """An open stream that is not known to be broken."""
        return self.stream is not None and self.stream.usable

    def open(self, stream: FramedStream) -> FramedStream:
        """A new stream: nothing was written on it yet."""
        self.stream = stream
        self.written.clear()
        return stream

    def carries(self, digest: bytes) -> bool:
        """Queued, or written on a stream that still reaches the peer (a broken one's record means nothing)."""
        return any(queued == digest for queued, _ in self.queue) or (self.reaches and digest in self.written)

    def note_written(self, digest: bytes) -> None:
        self.written[digest] = None
        if len(self.written) > WRITTEN_MEMORY:
            self.written.popitem(last=False)


class ConsensusLinks:
    """Outbound links to the validators we are connected to, and the inbound side of theirs."""

    def __init__(
        self, host: P2PHost, validate: Validator[Any], deliver: GossipHandler[Any], validators: Callable[[str], bool],
        listen: str | None = None,
    ) -> None:
        """`validate` and `deliver` are the consensus topic's validator and handler: a frame is checked and
        decoded once, like a gossiped message. The links run on a link host with `host`'s identity that
        talks to the peers `validators` says are validators' only, listening on `listen` (default: `host`'s
        interface, a port the system picks)."""
        self._main = host
        self._validators = validators
        self._listen = listen
        self._validate = validate
        self._deliver = deliver
        self._links: dict[str, _Link] = {}
        self._host: LinkHost | None = None
        self._nursery: trio.Nursery | None = None
        self.delivered = 0

    @property
    def addrs(self) -> list[str]:
        """Where other validators open their links to us (in our peer record); empty until `run` started."""
        return self._host.addrs if self._host is not None else []

    async def run(self, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve inbound links and hold the writer tasks; runs until cancelled."""
        listen = self._listen or any_port_of(self._main.config.listen)
        async with open_link_host(self._main, listen, self._validators) as host, trio.open_nursery() as nursery:
            host.set_stream_handler(CONSENSUS_PROTOCOL, self.serve, LIMITS)
            self._host = host
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def link(self, peer: str, addresses: tuple[str, ...]) -> None:
        """Keep a link to this validator's peer, whose link host listens at `addresses` (idempotent)."""
        if self._host is None or self._nursery is None:
            return
        self._host.know(peer, addresses)
        if peer in self._links:
            return
        link = self._links[peer] = _Link(peer)
        self._nursery.start_soon(self._write_loop, self._host, link)

    @property
    def linked(self) -> list[str]:
        return list(self._links)

    def send(self, data: bytes) -> int:
        """Queue one encoded consensus message for every linked validator; how many of the links have an open
        stream that is not known to be broken (a link to a validator that is down, or was down and is back,
        loses what it is given until it has re-opened its stream). Never blocks.

        A message is written on a stream once: a stream delivers what was written to it, in order, unless
        it breaks, and a broken one is replaced by a new stream that starts with a clean record. Copies
        re-broadcast (every second or so while a height makes no progress) only cost the receiver time:
        at --cpu-limit 0.5 a 30 KiB proposal was re-sent on each link about once a second while the
        receivers took 5-15 s to read what was already in flight, votes included."""
        digest = hashlib.blake2b(data, digest_size=16).digest()
        for link in self._links.values():
            if link.carries(digest):
                continue
            if len(link.queue) == LINK_QUEUE:
                link.dropped += 1
            link.queue.append((digest, data))
            link.wake.set()
        return sum(1 for link in self._links.values() if link.reaches)

    async def _write_loop(self, host: LinkHost, link: _Link) -> None:
        while True:
            await link.wake.wait()
            link.wake = trio.Event()
            while link.queue:
                stream = link.stream
                if stream is None or not stream.usable:
                    try:
                        stream = link.open(await host.open_stream(link.peer, CONSENSUS_PROTOCOL, LIMITS))
                    except RequestError as exc:
                        log.info("event=consensus-link-down peer=%s dropped=%d reason=%r", link.peer, len(link.queue), str(exc))
                        link.queue.clear()
                        await trio.sleep(REOPEN_S)
                        break
                digest, data = link.queue.popleft()
                if digest in link.written:  # queued while an earlier copy was being written
                    continue
                try:
                    await stream.send(data)
                    link.note_written(digest)
                except FrameError as exc:
                    log.info("event=consensus-link-broken peer=%s reason=%r", link.peer, str(exc))
                    await stream.reset()
                    link.stream = None

    async def serve(self, stream: FramedStream) -> None:
        """An inbound link: every frame is checked like a gossiped consensus message, then delivered."""
        while True:
            try:
                data = await stream.receive(timeout_s=math.inf)  # an idle chain sends nothing for a long time
            except StreamClosed:
                return
            verdict = self._validate(stream.peer_id, data)
            if isinstance(verdict, Rejected):
                # Counted by the node's gossip host; a ban cuts the peer off the link host too (P2PHost.on_ban).
                self._main.penalise(stream.peer_id, f"invalid message on {CONSENSUS_PROTOCOL}: {verdict.reason}")
                continue
            await self._deliver(stream.peer_id, verdict)
            self.delivered += 1
