"""Framed stream protocols between real hosts: requests, reuse, multi-frame streams, limits, garbage."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack

import pytest
import trio

from node.net import FramedStream, RemoteError, RequestError, RequestRejected, StreamClosed, StreamLimits, open_host
from node.net.framing import encode_uvarint
from tests.net.support import config, start_line, wait_until

ECHO = "/pocnet/test-echo/1"
SYNC = "/pocnet/test-sync/1"
SMALL = StreamLimits(max_frame_bytes=1024, read_timeout_s=0.5, idle_timeout_s=5.0)


async def echo(peer_id: str, request: bytes) -> bytes:
    if request == b"refuse":
        raise RequestRejected("not today")
    if request == b"crash":
        raise KeyError("bug")
    if request == b"slow":
        await trio.sleep(10)
    return request[::-1]


async def sync_blocks(stream: FramedStream) -> None:
    """Reply to a request `n` with n frames, then end the stream."""
    count = int(await stream.receive())
    for height in range(count):
        await stream.send(b"block %d" % height)


async def pair(stack: AsyncExitStack, prefix: str) -> tuple:
    client, server = await start_line(stack, 2, prefix=prefix)
    server.set_request_handler(ECHO, echo, SMALL)
    server.set_stream_handler(SYNC, sync_blocks, SMALL)
    await wait_until(lambda: server.peer_id in client.connected_peers())
    return client, server


async def test_request_response_reuses_one_stream() -> None:
    async with AsyncExitStack() as stack:
        client, server = await pair(stack, "req")
        for i in range(50):
            assert await client.request(server.peer_id, ECHO, b"abc%d" % i, timeout_s=2) == (b"abc%d" % i)[::-1]
        assert len(client._streams._pool[(server.peer_id, ECHO)]) == 1  # sequential requests share one stream
        with pytest.raises(RemoteError, match="not today"):
            await client.request(server.peer_id, ECHO, b"refuse", timeout_s=2)
        with pytest.raises(RemoteError, match="internal error: KeyError"):
            await client.request(server.peer_id, ECHO, b"crash", timeout_s=2)
        assert await client.request(server.peer_id, ECHO, b"still fine", timeout_s=2) == b"enif llits"
        # concurrent requests each get a stream
        results: list[bytes] = []
        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(
                    lambda i=i: _append(results, client.request(server.peer_id, ECHO, b"%d" % i, timeout_s=2))
                )
        assert sorted(results) == [b"%d" % i for i in range(8)]


async def _append(results: list[bytes], call) -> None:  # type: ignore[no-untyped-def]
    results.append(await call)


async def test_timeouts_and_oversize_frames_fail_cleanly() -> None:
    async with AsyncExitStack() as stack:
        client, server = await pair(stack, "limits")
        started = time.monotonic()
        with pytest.raises(RequestError, match="took over"):
            await client.request(server.peer_id, ECHO, b"slow", timeout_s=0.3)
        assert time.monotonic() - started < 1.0
        # the client refuses to send what the protocol does not allow ...
        with pytest.raises(RequestError, match="exceeds"):
            await client.request(server.peer_id, ECHO, b"x" * 2000, timeout_s=2, limits=SMALL)
        # ... and the server refuses a frame above its limit, from the length prefix alone
        with pytest.raises(RequestError):
            await client.request(server.peer_id, ECHO, b"x" * 2000, timeout_s=2, limits=StreamLimits())
        await wait_until(lambda: server.peer_penalty(client.peer_id) > 0)
        assert await client.request(server.peer_id, ECHO, b"ok", timeout_s=2) == b"ko"
        # a request to a protocol the peer does not serve
        with pytest.raises(RequestError):
            await client.request(server.peer_id, "/pocnet/none/1", b"?", timeout_s=2)


async def test_multi_frame_stream() -> None:
    async with AsyncExitStack() as stack:
        client, server = await pair(stack, "multi")
        stream = await client.open_stream(server.peer_id, SYNC)
        await stream.send(b"100")
        blocks = []
        with pytest.raises(StreamClosed):
            while True:
                blocks.append(await stream.receive())
        await stream.close()
        assert blocks == [b"block %d" % h for h in range(100)]


async def test_garbage_on_a_stream_does_not_hurt_the_host() -> None:
    async with AsyncExitStack() as stack:
        client, server = await pair(stack, "garbage")
        garbage = [b"\xff" * 64, encode_uvarint(10**12) + b"zz", b"\x05ab", b"", b"\x80\x00\x01"]
        for payload in garbage:
            raw = await client._open_raw_stream(server.peer_id, ECHO)
            if payload:
                await raw.write(payload)
            await raw.close()
        # a peer that opens a stream and says nothing is timed out, not waited for
        silent = await client._open_raw_stream(server.peer_id, SYNC)
        await trio.sleep(SMALL.read_timeout_s + 0.2)
        assert await client.request(server.peer_id, ECHO, b"alive", timeout_s=2) == b"evila"
        assert server.peer_penalty(client.peer_id) >= 3
        assert server._streams._registrations[ECHO].active <= 1
        assert server._streams._registrations[SYNC].active == 0
        await silent.reset()


async def test_host_closes_quickly_with_work_in_flight() -> None:
    async with AsyncExitStack() as stack:
        client, server = await pair(stack, "close")
        stream = await client.open_stream(server.peer_id, SYNC)  # left open on purpose
        await stream.send(b"1")
        async with open_host(config("close-extra", (server.addrs[0],))) as extra:
            await wait_until(lambda: server.peer_id in extra.connected_peers())
            started = time.monotonic()
        assert time.monotonic() - started < 2.0
        started = time.monotonic()
        await stack.aclose()
        assert time.monotonic() - started < 3.0


async def test_request_after_reconnect_uses_a_fresh_stream() -> None:
    async with AsyncExitStack() as stack:
        client, server = await pair(stack, "stale")
        assert await client.request(server.peer_id, ECHO, b"one", timeout_s=2) == b"eno"
        await server.disconnect(client.peer_id)  # the client's pooled stream is now dead
        # the client is bootstrapped to the server: it redials, and the next request gets through
        await wait_until(lambda: server.peer_id in client.connected_peers())
        assert await client.request(server.peer_id, ECHO, b"two", timeout_s=3) == b"owt"


async def test_an_idle_pooled_stream_is_closed_without_blame_a_cut_request_is_blamed() -> None:
    """Between requests a client keeps its stream for the next one; the server closes it after the idle
    timeout, which is no fault of the client. A request that starts and never finishes is one."""
    idle_quickly = StreamLimits(max_frame_bytes=1024, read_timeout_s=0.3, idle_timeout_s=0.3)
    async with AsyncExitStack() as stack:
        client, server = await pair(stack, "idle")
        server.set_request_handler(ECHO, echo, idle_quickly)
        assert await client.request(server.peer_id, ECHO, b"ab", timeout_s=2) == b"ba"
        await wait_until(lambda: server._streams._registrations[ECHO].active == 0)
        assert server.peer_penalty(client.peer_id) == 0
        cut = await client._open_raw_stream(server.peer_id, ECHO)
        await cut.write(b"\x05ab")  # announces 5 bytes, sends 2
        await wait_until(lambda: server.peer_penalty(client.peer_id) > 0)
        await cut.reset()
