"""Consensus links between two real hosts: messages arrive in order over the stream, and invalid ones are
refused and counted against the sender."""

from __future__ import annotations

from contextlib import AsyncExitStack

import trio

from node.consensus_link import ConsensusLinks
from node.net import Rejected, open_host
from tests.net.support import config, wait_until


def accept_votes(peer: str, data: bytes) -> bytes | Rejected:
    return data if data.startswith(b"vote") else Rejected("not a vote")


async def test_messages_go_over_the_link_and_garbage_is_refused() -> None:
    received: list[tuple[str, bytes]] = []

    async def deliver(peer: str, data: bytes) -> None:
        received.append((peer, data))

    async def ignore(peer: str, data: bytes) -> None:
        pass

    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(open_host(config("link-a")))
        b = await stack.enter_async_context(open_host(config("link-b", (a.addrs[0],))))
        nursery = await stack.enter_async_context(trio.open_nursery())
        sender, receiver = ConsensusLinks(b, accept_votes, ignore), ConsensusLinks(a, accept_votes, deliver)
        await nursery.start(sender.run)
        await nursery.start(receiver.run)
        await wait_until(lambda: a.peer_id in b.connected_peers())
        sender.link(a.peer_id)
        for data in (b"vote 1", b"garbage", b"vote 2"):
            sender.send(data)
        await wait_until(lambda: len(received) == 2)
        assert received == [(b.peer_id, b"vote 1"), (b.peer_id, b"vote 2")]
        assert a.peer_penalty(b.peer_id) > 0
        assert sender.linked == [a.peer_id]
        nursery.cancel_scope.cancel()


async def test_a_message_is_written_once_per_stream_and_again_on_a_new_one() -> None:
    """A re-broadcast copy of a message the stream already carried is not written again (the stream delivers
    it unless it breaks); after the stream was replaced, the next copy goes out on the new one."""
    received: list[bytes] = []

    async def deliver(peer: str, data: bytes) -> None:
        received.append(data)

    async def ignore(peer: str, data: bytes) -> None:
        pass

    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(open_host(config("once-a")))
        b = await stack.enter_async_context(open_host(config("once-b", (a.addrs[0],))))
        nursery = await stack.enter_async_context(trio.open_nursery())
        sender, receiver = ConsensusLinks(b, accept_votes, ignore), ConsensusLinks(a, accept_votes, deliver)
        await nursery.start(sender.run)
        await nursery.start(receiver.run)
        await wait_until(lambda: a.peer_id in b.connected_peers())
        sender.link(a.peer_id)
        sender.send(b"vote 1")
        sender.send(b"vote 1")  # still queued or written: not twice
        sender.send(b"vote 2")
        await wait_until(lambda: received == [b"vote 1", b"vote 2"])
        assert sender.send(b"vote 1") == 1  # a re-broadcast: already written on this stream, which is open
        sender.send(b"vote 3")
        await wait_until(lambda: len(received) == 3)
        assert received == [b"vote 1", b"vote 2", b"vote 3"]

        link = sender._links[a.peer_id]
        assert link.stream is not None
        await link.stream.reset()  # the stream breaks: what it carried may be lost
        assert sender.send(b"vote 1") == 0  # no open stream reaches the peer: the caller gossips it too
        await wait_until(lambda: len(received) == 4)
        assert received[-1] == b"vote 1"
        nursery.cancel_scope.cancel()
