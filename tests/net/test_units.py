"""Framing, batching, penalties and publish back-pressure without a network: in-memory stand-ins for libp2p."""

from __future__ import annotations

import itertools
import logging
import traceback
from types import SimpleNamespace

import msgpack
import pytest
import trio
from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.rpc_queue import RpcQueue

from node.net.batching import Batcher, BatchError, pack_batch, unpack_batch
from node.net.bulk_lane import BulkLane
from node.net.config import BatchConfig, HostConfig
from node.net.counters import HostCounters
from node.net.framing import (
    FramedStream,
    FrameError,
    FrameTimeout,
    FrameTooLarge,
    StreamClosed,
    decode_uvarint,
    encode_frame,
    encode_uvarint,
)
from node.net.host import OUTBOUND_DEAD_S, OUTBOUND_HIGH_WATER, OUTBOUND_MAX_WAIT_S, P2PHost
from node.net.link_host import any_port_of
from node.net.penalties import PenaltyBook


class FakeStream:
    """Reads return the scripted chunks in order (then EOF); writes are recorded."""

    def __init__(self, chunks: list[bytes], stall: bool = False) -> None:
        self.chunks = list(chunks)
        self.stall = stall
        self.written = bytearray()
        self.was_reset = False

    async def read(self, n: int | None = None) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        if self.stall:
            await trio.sleep_forever()
        return b""

    async def write(self, data: bytes) -> None:
        self.written += data

    async def close(self) -> None:
        pass

    async def reset(self) -> None:
        self.was_reset = True


def framed(raw: FakeStream, limit: int = 100, timeout: float = 1.0) -> FramedStream:
    return FramedStream(raw, "peer", "/test/1", limit, timeout)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**32, 2**63])
def test_uvarint_round_trip(value: int) -> None:
    encoded = encode_uvarint(value)
    assert decode_uvarint(encoded) == (value, len(encoded))
    assert decode_uvarint(encoded[:-1]) is None


def test_uvarint_rejects_overlong_and_non_minimal() -> None:
    with pytest.raises(FrameError):
        decode_uvarint(b"\xff" * 11)
    with pytest.raises(FrameError):
        decode_uvarint(b"\x80\x00")


async def test_frames_split_across_reads_and_several_per_read() -> None:
    data = encode_frame(b"hello", 100) + encode_frame(b"", 100) + encode_frame(b"x" * 50, 100)
    raw = FakeStream([data[:2], data[2:9], data[9:]])
    stream = framed(raw)
    assert [await stream.receive() for _ in range(3)] == [b"hello", b"", b"x" * 50]
    with pytest.raises(StreamClosed):
        await stream.receive()
    assert not raw.was_reset


async def test_oversize_frame_rejected_from_its_prefix() -> None:
    raw = FakeStream([encode_uvarint(10**9)], stall=True)  # no body ever comes: rejected on the prefix alone
    with pytest.raises(FrameTooLarge):
        await framed(raw).receive()
    assert raw.was_reset
    with pytest.raises(FrameTooLarge):
        await framed(FakeStream([])).send(b"x" * 101)


async def test_read_timeout_and_truncated_frame() -> None:
    raw = FakeStream([b"\x05ab"], stall=True)
    with trio.fail_after(2):
        with pytest.raises(FrameTimeout):
            await framed(raw, timeout=0.05).receive()
    assert raw.was_reset
    with pytest.raises(FrameError, match="inside a frame"):
        await framed(FakeStream([b"\x05ab"])).receive()


async def test_garbage_is_one_clean_error() -> None:
    for garbage in (b"\xff" * 64, b"\x80\x00abc", b"\xff\xff\xff\xff\x7f"):
        stream = framed(FakeStream([garbage]))
        with pytest.raises(FrameError):
            await stream.receive()
        assert not stream.usable


def test_batch_round_trip_and_limits() -> None:
    items = [b"a", b"bb" * 100, bytes(range(256))]
    assert unpack_batch(pack_batch(items), 10, 1000) == items
    with pytest.raises(BatchError):
        unpack_batch(pack_batch(items), 2, 1000)
    with pytest.raises(BatchError):
        unpack_batch(pack_batch(items), 10, 100)
    for bad in (
        b"",
        b"\xc1",
        msgpack.packb([]),
        msgpack.packb(["str"]),
        msgpack.packb({b"a": b"b"}),
        msgpack.packb([b""]),
        pack_batch(items) + b"\x00",
        msgpack.packb(b"x"),
        msgpack.packb([[b"x"]]),
    ):
        with pytest.raises(BatchError):
            unpack_batch(bad, 10, 1000)


async def test_batcher_gathers_a_burst_into_few_messages() -> None:
    sent: list[bytes] = []

    async def publish(topic: str, data: bytes) -> None:
        sent.append(data)

    batcher = Batcher("t", publish, BatchConfig(delay_s=0.01, max_items=64, max_bytes=100_000), 900_000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(batcher.run)
        for i in range(200):
            await batcher.add(i.to_bytes(4, "big"))
        await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    received = [item for message in sent for item in unpack_batch(message, 64, 100)]
    assert received == [i.to_bytes(4, "big") for i in range(200)]
    assert len(sent) == 4  # 64 + 64 + 64 + 8: full batches go at once, the rest after the delay


async def test_batcher_respects_byte_limit() -> None:
    sent: list[bytes] = []

    async def publish(topic: str, data: bytes) -> None:
        sent.append(data)

    batcher = Batcher("t", publish, BatchConfig(delay_s=0.01, max_items=1000, max_bytes=1000), 900_000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(batcher.run)
        for _ in range(20):
            await batcher.add(b"x" * 300)
        await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert all(len(message) <= 1000 for message in sent)
    assert sum(len(unpack_batch(m, 100, 1000)) for m in sent) == 20
    with pytest.raises(ValueError):
        await batcher.add(b"x" * 1000)


async def test_batcher_paces_batches_under_load_but_not_a_lone_item(autojump_clock: trio.abc.Clock) -> None:
    sent: list[tuple[float, int]] = []

    async def publish(topic: str, data: bytes) -> None:
        sent.append((trio.current_time(), len(unpack_batch(data, 1000, 100))))

    config = BatchConfig(delay_s=0.05, min_interval_s=1.0, max_items=1000, max_bytes=100_000)
    batcher = Batcher("t", publish, config, 900_000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(batcher.run)
        start = trio.current_time()
        await batcher.add(b"lone")
        await trio.sleep(0.5)
        for _ in range(30):  # then a steady stream: an item every 0.1 s for 3 s
            await batcher.add(b"x")
            await trio.sleep(0.1)
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert sent[0] == (pytest.approx(start + 0.05), 1)
    assert all(later - earlier >= 1.0 - 1e-9 for (earlier, _), (later, _) in itertools.pairwise(sent))
    assert sum(count for _, count in sent) == 31
    assert len(sent) <= 5


def batcher_noting_times() -> tuple[Batcher, list[float]]:
    """A batcher (no delay, paced at 0.25 s) and the times at which it publishes."""
    sent: list[float] = []

    async def publish(topic: str, data: bytes) -> None:
        sent.append(trio.current_time())

    return Batcher("t", publish, BatchConfig(delay_s=0.0, min_interval_s=0.25), 900_000), sent


async def test_a_batcher_paced_anew_keeps_the_new_interval(autojump_clock: trio.abc.Clock) -> None:
    """The node paces its batches by the chain's speed (node/chain_pace.py) after each block."""
    batcher, sent = batcher_noting_times()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(batcher.run)
        batcher.pace(2.0)
        for _ in range(40):  # an item every 0.1 s for 4 s
            await batcher.add(b"x")
            await trio.sleep(0.1)
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    assert all(later - earlier >= 2.0 - 1e-9 for earlier, later in itertools.pairwise(sent))
    assert 2 <= len(sent) <= 4


async def test_a_batch_waiting_out_a_long_pace_leaves_when_the_pace_shortens(autojump_clock: trio.abc.Clock) -> None:
    """When the chain goes idle the node paces its batches back to the floor: what waits for the slow pace
    must not sit out the rest of it (nothing would carry those transactions to a proposer meanwhile)."""
    batcher, sent = batcher_noting_times()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(batcher.run)
        batcher.pace(10.0)
        await batcher.add(b"first")  # leaves at once: no batch before it
        await trio.sleep(1)
        await batcher.add(b"second")  # due 10 s after the first
        await trio.sleep(1)
        batcher.pace(0.25)
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert sent == [pytest.approx(0.0, abs=1e-6), pytest.approx(2.0, abs=1e-6)]


def test_the_link_host_listens_on_the_gossip_hosts_interface_on_a_port_the_system_picks() -> None:
    assert any_port_of("/ip4/127.0.0.1/tcp/4001") == "/ip4/127.0.0.1/tcp/0"
    assert any_port_of("/ip4/10.0.0.7/tcp/0") == "/ip4/10.0.0.7/tcp/0"
    assert any_port_of("/ip6/::1/tcp/4001") == "/ip6/::1/tcp/0"


def test_penalties_decay_and_ban() -> None:
    book = PenaltyBook(threshold=3.0, ban_duration_s=10.0, decay_per_s=0.5)
    assert not book.add("p", 2.0, now=0.0)
    assert book.points("p", now=1.0) == pytest.approx(1.0)
    assert not book.add("p", 1.0, now=1.0)  # 1 + 1 = 2 < 3: decay forgave part of it
    assert book.add("p", 1.5, now=1.0)
    assert book.add("p", 0.1, now=5.0), "a banned peer heard from again is dropped again"
    assert book.is_banned("p", now=5.0) and not book.is_banned("p", now=11.5)
    assert not book.add("p", 0.1, now=11.5), "the ban ran from the offence, not from the last message"
    assert not book.is_banned("q", now=0.0)


class _StubPubsub:
    """py-libp2p's Pubsub as publish() sees it: a publish call and the per-peer outbound queues."""

    def __init__(self, queued: int) -> None:
        self.published: list[bytes] = []
        queue = RpcQueue()
        for i in range(queued):
            queue.push(rpc_pb2.RPC(subscriptions=[rpc_pb2.RPC.SubOpts(topicid=str(i))]))
        self.peer_queues = {ID(b"\x00\x25" + bytes(37)): queue}

    async def publish(self, topic: str, data: bytes) -> None:
        self.published.append(data)


def _host_with_full_queues(queued: int) -> P2PHost:
    host = P2PHost.__new__(P2PHost)
    host.config = HostConfig(seed=bytes(32))
    host._pubsub = _StubPubsub(queued)
    host._queue_marks = {}
    host._nursery = None
    host.counters = HostCounters()
    return host


async def test_bulk_publishes_wait_for_full_queues_but_votes_do_not(autojump_clock: object) -> None:
    host = _host_with_full_queues(OUTBOUND_HIGH_WATER + 4)
    began = trio.current_time()
    await host.publish("txs", b"batch")
    assert trio.current_time() - began >= OUTBOUND_MAX_WAIT_S  # back-pressure on bulk traffic
    began = trio.current_time()
    await host.publish("consensus", b"vote", urgent=True)
    assert trio.current_time() - began == 0
    assert host._pubsub.published == [b"batch", b"vote"]


def test_a_full_queue_that_drains_and_refills_is_alive_one_that_never_drains_is_dead() -> None:
    host = _host_with_full_queues(OUTBOUND_HIGH_WATER + 4)
    disconnected: list[str] = []
    host._nursery = SimpleNamespace(start_soon=lambda fn, peer: disconnected.append(peer))
    (peer, queue), = host._pubsub.peer_queues.items()
    full = {peer: len(queue)}
    now = [0.0]
    original = trio.current_time
    trio.current_time = lambda: now[0]  # type: ignore[assignment]
    try:
        for _ in range(5):  # a live sender under a burst: one RPC out, one in, the length never shrinks
            host._drop_dead_senders(full)
            queue._queue.pop()
            queue.push(rpc_pb2.RPC(subscriptions=[rpc_pb2.RPC.SubOpts(topicid="more")]))
            now[0] += OUTBOUND_DEAD_S / 2
        assert disconnected == []
        for _ in range(4):  # its sender gone: nothing is taken any more (the first call sees the last take)
            host._drop_dead_senders(full)
            now[0] += OUTBOUND_DEAD_S / 2
        assert disconnected == [peer.to_base58()]
    finally:
        trio.current_time = original  # type: ignore[assignment]


async def test_a_batch_is_handled_item_by_item_with_other_tasks_in_between() -> None:
    """A batch's items do not run as one slice: a task that became ready meanwhile (the consensus link
    reading a vote) gets a turn between items."""
    from node.net.gossip import Subscription, run_subscription

    me, other = ID(b"\x00\x01me"), ID(b"\x00\x01other")
    order: list[str] = []

    async def handler(origin: str, item: bytes) -> None:
        order.append(item.decode())  # never waits, like the transaction handler

    # A lane whose turns last one item each (the node's last SLICE_S, which a test cannot time).
    sub = Subscription("t", lambda o, d: d, handler, True, 1 << 20, 1 << 10, False, lane=BulkLane(slice_s=0.0))
    messages: trio.MemorySendChannel[object]
    messages, incoming = trio.open_memory_channel[object](1)
    libp2p_subscription = SimpleNamespace(get=incoming.receive)

    async def vote() -> None:
        while len(order) < 1:
            await trio.sleep(0)
        order.append("vote")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_subscription, sub, libp2p_subscription, me)
        nursery.start_soon(vote)
        await messages.send(SimpleNamespace(from_id=other.to_bytes(), seqno=b"1", data=pack_batch([b"tx1", b"tx2", b"tx3", b"tx4"])))
        while len(order) < 5:
            await trio.sleep(0)
        nursery.cancel_scope.cancel()
    assert order.index("vote") < 4, order  # not after the whole batch


async def test_a_batch_is_validated_with_a_checkpoint_between_items() -> None:
    """The batched topics' validator lets other tasks (a consensus link reading a vote) run between the
    items of a batch, and judges the batch as the synchronous one does."""
    from node.net.gossip import Rejected, Subscription, make_libp2p_batch_validator, make_libp2p_validator

    me, other = ID(b"\x00\x01me"), ID(b"\x00\x01other")
    order: list[str] = []

    def check_item(origin: str, item: bytes) -> bytes | Rejected:
        order.append(item.decode())
        return Rejected("bad item") if item == b"bad" else item

    lane = BulkLane(slice_s=0.0)  # one item per turn (see the test above)
    sub = Subscription("t", check_item, lambda o, d: trio.sleep(0), True, 1 << 20, 1 << 10, False, lane=lane)
    reports: list[tuple[str, str, str]] = []
    validate = make_libp2p_batch_validator(sub, me, lambda *r: reports.append(r))

    async def vote() -> None:
        while not order:
            await trio.sleep(0)
        order.append("vote")

    good = SimpleNamespace(from_id=other.to_bytes(), seqno=b"1", data=pack_batch([b"tx1", b"tx2", b"tx3", b"tx4"]))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(vote)
        assert await validate(other, good)
    assert order.index("vote") < 4, order  # not after the whole batch
    bad = SimpleNamespace(from_id=other.to_bytes(), seqno=b"2", data=pack_batch([b"tx5", b"bad", b"tx6"]))
    assert not await validate(other, bad)
    assert reports == [(other.to_base58(), "t", "bad item")] and sub.stats.rejected == 1
    assert "tx6" not in order
    assert not make_libp2p_validator(sub, me, lambda *r: None)(other, bad)  # the same verdict
    garbage = SimpleNamespace(from_id=other.to_bytes(), seqno=b"3", data=b"not a batch")
    assert not await validate(other, garbage)

    # Copies of one message forwarded by several peers while it is being checked are checked once.
    order.clear()
    copy = SimpleNamespace(from_id=other.to_bytes(), seqno=b"4", data=pack_batch([b"tx7", b"tx8"]))
    verdicts: list[bool] = []

    async def forwarded_by(peer: ID, message: object = copy) -> None:
        verdicts.append(await validate(peer, message))

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(forwarded_by, ID(b"\x00\x01peer" + bytes([i])))
    assert verdicts == [True, True, True] and order == ["tx7", "tx8"]

    # A copy waiting on a check that was cancelled (its connection closed) checks the message itself.
    order.clear()
    other_copy = SimpleNamespace(from_id=other.to_bytes(), seqno=b"5", data=pack_batch([b"tx9", b"tx10", b"tx11"]))
    async with trio.open_nursery() as nursery:
        first = trio.CancelScope()

        async def cancelled_first() -> None:
            with first:
                await validate(ID(b"\x00\x01peerA"), other_copy)

        nursery.start_soon(cancelled_first)
        while not order:  # the first copy checks its first item, then waits for its next turn
            await trio.sleep(0)
        nursery.start_soon(forwarded_by, ID(b"\x00\x01peerB"), other_copy)
        first.cancel()
    # (The first copy may check one more item before the cancellation reaches it: the lane's turns are
    # taken at shielded checkpoints.)
    assert verdicts[-1] is True and len(order) > 3 and order[-3:] == ["tx9", "tx10", "tx11"], order


def test_a_connection_refused_during_shutdown_logs_one_line_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    from node.net.logs import SHUTDOWN_NOISE, attach_libp2p_logger

    attach_libp2p_logger()
    swarm = logging.getLogger("libp2p.network.swarm")
    try:
        raise RuntimeError(SHUTDOWN_NOISE)
    except RuntimeError as exc:
        swarm.warning("[ADDCONN_FAIL] add_conn failed", exc_info=True)
        # The library's own form: the traceback formatted into the message.
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        swarm.warning("[ADDCONN_FAIL] add_conn failed for peer %s: %r\n%s", "12D3KooWpeer", exc, text)
    records = [r for r in caplog.records if "ADDCONN_FAIL" in r.getMessage()]
    assert all(r.exc_info is None for r in records)
    assert {r.getMessage() for r in records} == {
        "[ADDCONN_FAIL] add_conn failed",
        f"[ADDCONN_FAIL] add_conn failed for peer 12D3KooWpeer: RuntimeError({SHUTDOWN_NOISE!r})",
    }
    assert "Traceback" not in caplog.text


async def test_the_handler_gets_what_the_validator_decoded_and_nothing_is_decoded_twice() -> None:
    """The validator runs in py-libp2p's relay path, the handler later in the subscription's task: the
    decoded values travel between them by message id, so each item is decoded once. A message the validator
    never saw (py-libp2p let it through on an earlier verdict) is validated by the worker instead."""
    from node.net.gossip import Subscription, make_libp2p_validator, run_subscription

    me, other = ID(b"\x00\x01me"), ID(b"\x00\x01other")
    decoded: list[bytes] = []
    handled: list[tuple[str, int]] = []

    def decode_number(origin: str, item: bytes) -> int:
        decoded.append(item)
        return int(item)

    async def handler(origin: str, value: int) -> None:
        handled.append((origin, value))

    sub = Subscription("t", decode_number, handler, True, 1 << 20, 1 << 10, False)
    relay_check = make_libp2p_validator(sub, me, lambda forwarder, topic, reason: None)
    validated = SimpleNamespace(from_id=other.to_bytes(), seqno=b"1", data=pack_batch([b"1", b"2"]))
    unseen = SimpleNamespace(from_id=other.to_bytes(), seqno=b"2", data=pack_batch([b"3"]))
    assert relay_check(other, validated)
    messages, incoming = trio.open_memory_channel[object](2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_subscription, sub, SimpleNamespace(get=incoming.receive), me)
        await messages.send(validated)
        await messages.send(unseen)
        while len(handled) < 3:
            await trio.sleep(0)
        nursery.cancel_scope.cancel()
    assert handled == [(other.to_base58(), 1), (other.to_base58(), 2), (other.to_base58(), 3)]
    assert decoded == [b"1", b"2", b"3"] and not sub.awaiting
