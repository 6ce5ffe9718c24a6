"""Consensus links between two real hosts: messages arrive in order over the stream, on a connection of
their own, and invalid ones are refused and counted against the sender."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import trio

from node.consensus_link import ConsensusLinks
from node.net import P2PHost, Rejected, open_host
from node.net.config import BAN_THRESHOLD
from tests.net.support import config, wait_until


def accept_votes(peer: str, data: bytes) -> bytes | Rejected:
    return data if data.startswith(b"vote") else Rejected("not a vote")


async def ignore(peer: str, data: bytes) -> None:
    pass


@dataclass
class Pair:
    """Host `b` links to host `a`; what `a`'s side delivers, with the sending peer, is in `received`."""

    a: P2PHost
    b: P2PHost
    sender: ConsensusLinks
    receiver: ConsensusLinks | None = None
    received: list[tuple[str, bytes]] = field(default_factory=list)


@asynccontextmanager
async def linked_pair(name: str) -> AsyncIterator[Pair]:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(open_host(config(f"{name}-a")))
        b = await stack.enter_async_context(open_host(config(f"{name}-b")))  # no gossip connection to `a`
        nursery = await stack.enter_async_context(trio.open_nursery())
        pair = Pair(a, b, ConsensusLinks(b, accept_votes, ignore, validators=lambda peer: True))

        async def deliver(peer: str, data: bytes) -> None:
            pair.received.append((peer, data))

        pair.receiver = ConsensusLinks(a, accept_votes, deliver, validators=lambda peer: peer == b.peer_id)
        await nursery.start(pair.sender.run)
        await nursery.start(pair.receiver.run)
        pair.sender.link(a.peer_id, tuple(pair.receiver.addrs))
        yield pair
        nursery.cancel_scope.cancel()


async def test_messages_go_over_the_link_and_garbage_is_refused() -> None:
    async with linked_pair("link") as pair:
        for data in (b"vote 1", b"garbage", b"vote 2"):
            pair.sender.send(data)
        await wait_until(lambda: len(pair.received) == 2)
        assert pair.received == [(pair.b.peer_id, b"vote 1"), (pair.b.peer_id, b"vote 2")]
        assert pair.a.peer_penalty(pair.b.peer_id) > 0
        assert pair.sender.linked == [pair.a.peer_id]
        # The link's connection is not the gossip hosts' (they never connected): it carries consensus only.
        assert pair.a.connected_peers() == [] and pair.b.connected_peers() == []


async def test_a_banned_peer_is_cut_off_its_link() -> None:
    """A peer banned by the node (for whatever it did, here or on gossip) loses its link connection too, and
    what it sends afterwards is not delivered."""
    async with linked_pair("ban") as pair:
        pair.sender.send(b"vote 1")
        await wait_until(lambda: len(pair.received) == 1)
        link_host = pair.receiver._host if pair.receiver else None
        assert link_host is not None and link_host.connected_peers() == [pair.b.peer_id]
        pair.a.penalise(pair.b.peer_id, "test", points=BAN_THRESHOLD)  # as for invalid gossip
        await wait_until(lambda: link_host.connected_peers() == [])
        pair.sender.send(b"vote 2")  # the sender redials: refused
        await trio.sleep(0.5)
        assert [data for _, data in pair.received] == [b"vote 1"]
        assert link_host.connected_peers() == []


async def test_a_message_is_written_once_per_stream_and_again_on_a_new_one() -> None:
    """A re-broadcast copy of a message the stream already carried is not written again (the stream delivers
    it unless it breaks); after the stream was replaced, the next copy goes out on the new one."""
    async with linked_pair("once") as pair:
        sender = pair.sender

        def received() -> list[bytes]:
            return [data for _, data in pair.received]

        sender.send(b"vote 1")
        sender.send(b"vote 1")  # still queued or written: not twice
        sender.send(b"vote 2")
        await wait_until(lambda: received() == [b"vote 1", b"vote 2"])
        assert sender.send(b"vote 1") == 1  # a re-broadcast: already written on this stream, which is open
        sender.send(b"vote 3")
        await wait_until(lambda: len(received()) == 3)
        assert received() == [b"vote 1", b"vote 2", b"vote 3"]

        link = sender._links[pair.a.peer_id]
        assert link.stream is not None
        await link.stream.reset()  # the stream breaks: what it carried may be lost
        assert sender.send(b"vote 1") == 0  # no open stream reaches the peer: the caller gossips it too
        await wait_until(lambda: len(received()) == 4)
        assert received()[-1] == b"vote 1"


async def test_a_peer_that_is_not_a_validator_cannot_use_the_link_port() -> None:
    """Anyone can dial the link host's port; a peer it does not admit is disconnected and its streams are
    refused, so strangers cannot take the validators' connection slots or feed their consensus input."""
    async with linked_pair("stranger") as pair, open_host(config("stranger-c")) as c, trio.open_nursery() as nursery:
        stranger = ConsensusLinks(c, accept_votes, ignore, validators=lambda peer: True)
        await nursery.start(stranger.run)
        assert pair.receiver is not None
        stranger.link(pair.a.peer_id, tuple(pair.receiver.addrs))
        stranger.send(b"vote from a stranger")
        pair.sender.send(b"vote 1")
        await wait_until(lambda: len(pair.received) == 1)
        await trio.sleep(0.5)
        assert pair.received == [(pair.b.peer_id, b"vote 1")]
        link_host = pair.receiver._host
        assert link_host is not None and link_host.connected_peers() == [pair.b.peer_id]
        nursery.cancel_scope.cancel()
