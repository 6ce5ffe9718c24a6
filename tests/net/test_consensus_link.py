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
