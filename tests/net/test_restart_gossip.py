"""A host restarted with the same key is heard at once, however much it published before.

py-libp2p 0.8.1 numbers a host's messages from `int(time.time())` up, one per message, and a message's
id is (origin, number). A host that published more than one message per second of its life restarts
with numbers it already used, and every peer drops those messages unread as already seen (for the
seen-cache TTL, 120 s): a restarted validator was mute for a minute (issue 11).
"""

from __future__ import annotations

from contextlib import AsyncExitStack

from node.net import P2PHost, open_host
from tests.net.support import TOPIC, accept, config, wait_until

# Far more messages than seconds the test lasts: without the fix every number after the restart collides.
BEFORE_RESTART = 50


async def link(a: P2PHost, b: P2PHost) -> None:
    """Direct gossip peering both ways, as validators do (a re-graft would wait out the prune backoff)."""
    a.keep_direct(b.peer_id)
    b.keep_direct(a.peer_id)
    await wait_until(lambda: b.peer_id in a.topic_peers(TOPIC) and a.peer_id in b.topic_peers(TOPIC))


async def test_messages_after_a_restart_are_not_taken_for_old_ones() -> None:
    received: list[bytes] = []

    async def handler(origin: str, data: bytes) -> None:
        received.append(data)

    async def ignore(origin: str, data: bytes) -> None:
        pass

    async with AsyncExitStack() as stack:
        listener = await stack.enter_async_context(open_host(config("restart-listener")))
        await listener.subscribe(TOPIC, accept, handler)
        async with open_host(config("restart-speaker", (listener.addrs[0],))) as speaker:
            await speaker.subscribe(TOPIC, accept, ignore)
            await link(listener, speaker)
            for i in range(BEFORE_RESTART):
                await speaker.publish(TOPIC, b"before %d" % i)
            await wait_until(lambda: len(received) == BEFORE_RESTART)
        async with open_host(config("restart-speaker", (listener.addrs[0],))) as speaker:
            await speaker.subscribe(TOPIC, accept, ignore)
            await link(listener, speaker)
            for i in range(3):
                await speaker.publish(TOPIC, b"after %d" % i)
            await wait_until(lambda: len(received) == BEFORE_RESTART + 3)
        assert received[BEFORE_RESTART:] == [b"after 0", b"after 1", b"after 2"]
