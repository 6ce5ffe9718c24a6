"""Gossip between real hosts: delivery along a line, rejection before relay, batching, isolated handlers."""

from __future__ import annotations

from contextlib import AsyncExitStack

import trio

from node.net import Rejected
from tests.net.support import TOPIC, accept, start_line, wait_for_line_mesh, wait_until


async def test_five_hosts_in_a_line_all_receive() -> None:
    async with AsyncExitStack() as stack:
        hosts = await start_line(stack, 5)
        received: list[list[tuple[str, bytes]]] = [[] for _ in hosts]
        for index, host in enumerate(hosts):

            async def handler(origin: str, data: bytes, index: int = index) -> None:
                received[index].append((origin, data))

            await host.subscribe(TOPIC, accept, handler)
        await wait_for_line_mesh(hosts)
        await hosts[2].publish(TOPIC, b"from the middle")
        await hosts[0].publish(TOPIC, b"from one end")
        await wait_until(lambda: all(len(r) == 2 for i, r in enumerate(received) if i not in (0, 2)))
        await wait_until(lambda: len(received[0]) == 1 and len(received[2]) == 1)
        expected = {(hosts[2].peer_id, b"from the middle"), (hosts[0].peer_id, b"from one end")}
        assert all(set(received[i]) == expected for i in (1, 3, 4))
        assert received[0] == [(hosts[2].peer_id, b"from the middle")]  # own messages are not delivered


async def test_rejected_message_is_not_relayed_and_is_reported() -> None:
    async with AsyncExitStack() as stack:
        a, b, c = await start_line(stack, 3, prefix="reject")
        seen_by_c: list[bytes] = []

        def b_validator(origin: str, data: bytes) -> bytes | Rejected:
            return Rejected("poisoned") if data.startswith(b"bad") else data

        async def c_handler(origin: str, data: bytes) -> None:
            seen_by_c.append(data)

        async def ignore(origin: str, data: bytes) -> None:
            pass

        await a.subscribe(TOPIC, accept, ignore)
        b_stats = await b.subscribe(TOPIC, b_validator, ignore)
        await c.subscribe(TOPIC, accept, c_handler)
        await wait_for_line_mesh([a, b, c])

        await a.publish(TOPIC, b"bad message")
        await a.publish(TOPIC, b"good message")
        await wait_until(lambda: seen_by_c == [b"good message"])
        await trio.sleep(0.3)  # time for a wrongly relayed copy to arrive; none may
        assert seen_by_c == [b"good message"]
        assert b_stats.rejected == 1 and b_stats.last_rejection == "poisoned"
        assert b_stats.rejections == [(a.peer_id, "poisoned")]
        assert b.peer_penalty(a.peer_id) > 0


async def test_batched_burst_delivers_every_item() -> None:
    async with AsyncExitStack() as stack:
        hosts = await start_line(stack, 3, prefix="batch")
        received: list[bytes] = []
        origins: set[str] = set()

        async def handler(origin: str, item: bytes) -> None:
            received.append(item)
            origins.add(origin)

        async def ignore(origin: str, item: bytes) -> None:
            pass

        def small_items_only(origin: str, item: bytes) -> bytes | Rejected:
            return item if len(item) == 4 else Rejected(f"item of {len(item)} bytes")

        await hosts[0].subscribe(TOPIC, small_items_only, ignore, batched=True)
        await hosts[1].subscribe(TOPIC, small_items_only, ignore, batched=True)
        await hosts[2].subscribe(TOPIC, small_items_only, handler, batched=True)
        await wait_for_line_mesh(hosts)
        burst = [i.to_bytes(4, "big") for i in range(200)]
        for item in burst:
            await hosts[0].publish_item(TOPIC, item)
        await wait_until(lambda: len(received) == len(burst))
        assert received == burst and origins == {hosts[0].peer_id}
        batcher = hosts[0]._batchers[TOPIC]
        assert batcher.items_sent == 200 and batcher.batches_sent <= 5  # 200 items in a handful of messages


async def test_slow_or_crashing_handler_does_not_stall_others() -> None:
    async with AsyncExitStack() as stack:
        a, b = await start_line(stack, 2, prefix="isolate")
        other_topic = TOPIC + "/other"
        fast: list[bytes] = []
        crashes = 0

        async def stuck(origin: str, data: bytes) -> None:
            await trio.sleep_forever()

        async def crashing(origin: str, data: bytes) -> None:
            nonlocal crashes
            crashes += 1
            raise RuntimeError("handler bug")

        async def quick(origin: str, data: bytes) -> None:
            fast.append(data)

        async def ignore(origin: str, data: bytes) -> None:
            pass

        for topic in (TOPIC, other_topic, "crash"):
            await a.subscribe(topic, accept, ignore)
        await b.subscribe(TOPIC, accept, stuck)
        crash_stats = await b.subscribe("crash", accept, crashing)
        await b.subscribe(other_topic, accept, quick)
        await wait_for_line_mesh([a, b])
        await wait_for_line_mesh([a, b], other_topic)
        await wait_for_line_mesh([a, b], "crash")
        for i in range(40):  # more than py-libp2p's 32-message subscription queue
            await a.publish(TOPIC, b"stuck %d" % i)
            await a.publish("crash", b"crash %d" % i)
            await a.publish(other_topic, b"fast %d" % i)
        await wait_until(lambda: len(fast) == 40 and crashes == 40)
        assert crash_stats.handler_errors == 40
