"""Several items in one gossip message, because gossip hops, not bytes, are what the network runs out of.

A gossip hop costs about 1.3 ms of CPU whatever its size (reference/py-libp2p.md: ~750 hops/s/core), so a
node gathers what it publishes to a topic for a few milliseconds and sends one message. The wire form is a
msgpack array of byte strings; `unpack_batch` is strict (untrusted input) and bounded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import msgpack
import trio

from node.net.config import BatchConfig

log = logging.getLogger(__name__)

# Per-item overhead of the msgpack framing in the worst case: a bin32 header (5 bytes). The array header
# is at most 5 bytes too. Used to keep a packed batch under its byte limit without packing it twice.
ITEM_OVERHEAD_BYTES = 5
ARRAY_OVERHEAD_BYTES = 5


class BatchError(ValueError):
    """Bytes that are not a valid batch."""


def pack_batch(items: list[bytes]) -> bytes:
    return msgpack.packb(items, use_bin_type=True)


def packed_size(items_bytes: int, item_count: int) -> int:
    """An upper bound of `len(pack_batch(items))` from the items' total length and count."""
    return ARRAY_OVERHEAD_BYTES + items_bytes + ITEM_OVERHEAD_BYTES * item_count


def unpack_batch(data: bytes, max_items: int, max_item_bytes: int) -> list[bytes]:
    """The items of a batch. Raises BatchError unless `data` is exactly one msgpack array of at most
    `max_items` non-empty byte strings of at most `max_item_bytes` each."""
    try:
        # msgpack checks these limits while parsing, so a forged length cannot allocate anything big.
        value = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            max_array_len=max_items,
            max_bin_len=max_item_bytes,
            max_str_len=0,
            max_map_len=0,
            max_ext_len=0,
        )
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise BatchError(f"not a batch: {type(exc).__name__}: {exc}") from None
    if type(value) is not list:
        raise BatchError(f"a batch is an array, got {type(value).__name__}")
    if not value:
        raise BatchError("empty batch")
    for index, item in enumerate(value):
        if type(item) is not bytes:
            raise BatchError(f"batch item {index} is {type(item).__name__}, not bytes")
        if not item:
            raise BatchError(f"batch item {index} is empty")
    return value


Publish = Callable[[str, bytes], Awaitable[None]]


class Batcher:
    """Gathers items for one topic and publishes them as batches.

    `add()` returns as soon as the item is queued; the flusher task publishes a batch `delay_s` after its
    first item, but not sooner than the minimum interval after the previous batch (`config.min_interval_s`
    until the owner sets another with `pace`), or at once when the batch is full. `add()` waits
    (back-pressure) while a full batch is waiting to be published, so a producer cannot queue without bound.
    The interval bounds the messages a node sends under load, whatever the item rate, while a lone item
    still leaves after `delay_s`: a gossip message costs every node of the network about the same CPU
    whatever its size.
    """

    def __init__(self, topic: str, publish: Publish, config: BatchConfig, max_message_bytes: int) -> None:
        self.topic = topic
        self._publish = publish
        self._config = config
        self._max_bytes = min(config.max_bytes, max_message_bytes)
        self._items: list[bytes] = []
        self._bytes = 0
        self._has_items = trio.Event()
        self._full = False
        self._wake = trio.Event()  # the batch is full, or the pace changed: the flusher looks again
        self._space = trio.Event()
        self._last_publish = -math.inf
        self._min_interval_s = config.min_interval_s
        self.batches_sent = 0
        self.items_sent = 0

    def _would_overflow(self, item_bytes: int) -> bool:
        count = len(self._items) + 1
        return count > self._config.max_items or packed_size(self._bytes + item_bytes, count) > self._max_bytes

    async def add(self, item: bytes) -> None:
        if not item:
            raise ValueError("a batch item cannot be empty")
        if packed_size(len(item), 1) > self._max_bytes:
            raise ValueError(f"item of {len(item)} bytes cannot fit a batch of at most {self._max_bytes} bytes")
        while self._items and self._would_overflow(len(item)):
            self._full = True
            self._wake.set()
            await self._space.wait()
        self._items.append(item)
        self._bytes += len(item)
        if len(self._items) >= self._config.max_items:
            self._full = True
            self._wake.set()
        self._has_items.set()

    def pace(self, min_interval_s: float) -> None:
        """From now on batches leave at most once per `min_interval_s`; a batch already waiting is timed
        anew (a shorter pace releases it sooner)."""
        self._min_interval_s = min_interval_s
        self._wake.set()

    async def run(self) -> None:
        """The flusher; runs until cancelled. A failed publish is logged and its batch dropped (gossip is
        best effort: every protocol above re-announces what must arrive)."""
        while True:
            await self._has_items.wait()
            first_item_at = trio.current_time()
            while not self._full:
                due = max(first_item_at + self._config.delay_s, self._last_publish + self._min_interval_s)
                if trio.current_time() >= due:
                    break
                self._wake = trio.Event()
                with trio.move_on_at(due):
                    await self._wake.wait()
            self._has_items = trio.Event()
            self._full = False
            await self.flush()
            self._last_publish = trio.current_time()

    async def flush(self) -> None:
        """Publish what is gathered now (also called on shutdown paths and by tests)."""
        if not self._items:
            return
        items, self._items, self._bytes = self._items, [], 0
        space, self._space = self._space, trio.Event()
        space.set()
        try:
            await self._publish(self.topic, pack_batch(items))
        except Exception as exc:
            log.warning("event=batch-publish-failed topic=%s items=%d error=%r", self.topic, len(items), exc)
            return
        self.batches_sent += 1
        self.items_sent += len(items)
