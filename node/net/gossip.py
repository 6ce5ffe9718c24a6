"""Topic subscriptions over py-libp2p's GossipSub: validation before relay, one drain per subscription.

What py-libp2p does and why we wrap it (reference/py-libp2p.md):
- A subscription's queue holds 32 messages and drops the rest with only a warning. So each subscription
  has a pump task that moves messages at once into our own larger buffer, and a separate worker task that
  runs the handler: a slow handler fills its own buffer (drops are counted and logged), a crashing handler
  is logged and the next message goes on; neither touches other subscriptions.
- A topic validator runs inside the relay path, before the message is forwarded: a rejected message is
  neither delivered nor relayed, and GossipSub counts it against the forwarder (P4 score). Our validator
  returns `Rejected(reason)` instead of False, so the rejection is logged and reported with its cause.
- A validator that accepts returns the value it decoded, and the handler receives that value: each message
  is decoded once. py-libp2p passes the handler's side only the raw message, so the values wait in the
  subscription, by message id, between the validator and the pump that takes the message off its queue.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import trio
from libp2p.peer.id import ID

from node.net.batching import BatchError, unpack_batch
from node.net.bulk_lane import BulkLane

log = logging.getLogger(__name__)

# Messages buffered per subscription between libp2p's queue and the handler. At the measured ceiling of a
# few hundred messages/s per host this absorbs a handler pause of a few seconds.
SUBSCRIPTION_BUFFER = 1_024
# Bounds on a received batch: the publisher's limits (config.BATCH_MAX_ITEMS) with room to spare.
MAX_BATCH_ITEMS = 4_096
# Validated messages whose decoded values wait for the pump. py-libp2p queues at most 32 messages between
# its validators and our pump and drops the rest after validating them; the oldest values are forgotten
# beyond this, and a message whose values are gone is validated again by the worker.
MAX_AWAITING_DELIVERY = 256

T = TypeVar("T")


@dataclass(frozen=True)
class Rejected:
    """A validator's verdict on an invalid item: why (logged, and counted against the forwarder)."""

    reason: str


# `validator(origin, item)` returns the item's decoded value, or Rejected; `handler(origin, value)` gets it.
Validator = Callable[[str, bytes], "T | Rejected"]
GossipHandler = Callable[[str, T], Awaitable[None]]
InvalidReport = Callable[[str, str, str], None]  # (forwarder peer id, topic, reason)


@dataclass
class SubscriptionStats:
    delivered: int = 0
    rejected: int = 0
    dropped: int = 0
    handler_errors: int = 0
    last_rejection: str | None = None
    rejections: list[tuple[str, str]] = field(default_factory=list)  # (forwarder, reason), most recent last


# Rejections remembered per subscription for inspection (tests, the control API): recent ones only.
MAX_REMEMBERED_REJECTIONS = 32


@dataclass
class Subscription(Generic[T]):
    topic: str
    validator: Validator[T]
    handler: GossipHandler[T]
    batched: bool
    max_message_bytes: int
    max_item_bytes: int
    deliver_own: bool
    stats: SubscriptionStats = field(default_factory=SubscriptionStats)
    # Decoded values of validated messages, by message id, until the pump takes the message.
    awaiting: OrderedDict[tuple[bytes, bytes], list[T]] = field(default_factory=OrderedDict)
    # A batched topic's items are bulk work: checked and handled in turns of the node's lane (the host
    # shares one between its batched topics, node/net/bulk_lane.py).
    lane: BulkLane = field(default_factory=BulkLane)

    def items(self, data: bytes) -> list[bytes]:
        """The payloads in one gossip message (a batch has several). Raises BatchError."""
        if not self.batched:
            return [data]
        return unpack_batch(data, MAX_BATCH_ITEMS, self.max_item_bytes)

    def check(self, origin: str, data: bytes) -> list[T] | Rejected:
        """The message's decoded items, or why it is invalid. Never raises: a validator bug rejects, it
        does not crash."""
        return _collect(self._verdicts(origin, data))

    async def check_yielding(self, origin: str, data: bytes) -> list[T] | Rejected:
        """`check`, in turns of the bulk lane (see make_libp2p_batch_validator)."""
        return _collect(await self.lane.drain(self._verdicts(origin, data)))

    def _verdicts(self, origin: str, data: bytes) -> Iterator[T | Rejected]:
        """Each item's decoded value, in order, up to the first rejection (the message's own, if any)."""
        if len(data) > self.max_message_bytes:
            yield Rejected(f"message of {len(data)} bytes exceeds the limit of {self.max_message_bytes}")
            return
        try:
            items = self.items(data)
        except BatchError as exc:
            yield Rejected(str(exc))
            return
        for item in items:
            try:
                verdict = self.validator(origin, item)
            except Exception as exc:
                log.exception("event=validator-failed topic=%s origin=%s", self.topic, origin)
                verdict = Rejected(f"validator raised {type(exc).__name__}")
            yield verdict
            if isinstance(verdict, Rejected):
                return

    def hold(self, msg: Any, values: list[T]) -> None:
        """Keep a validated message's values for the handler (see MAX_AWAITING_DELIVERY)."""
        self.awaiting[message_id(msg)] = values
        if len(self.awaiting) > MAX_AWAITING_DELIVERY:
            self.awaiting.popitem(last=False)

    def take(self, msg: Any) -> list[T] | None:
        """The values the validator decoded from `msg`, or None if it did not run (our own message, or a
        message py-libp2p let through on an earlier verdict) or they were forgotten."""
        return self.awaiting.pop(message_id(msg), None)


def message_id(msg: Any) -> tuple[bytes, bytes]:
    """py-libp2p's own message identity (its default msg_id: origin and sequence number)."""
    return (msg.from_id, msg.seqno)



def _collect(verdicts: Iterable[T | Rejected]) -> list[T] | Rejected:
    """The values, or the first rejection among the verdicts."""
    values: list[T] = []
    for verdict in verdicts:
        if isinstance(verdict, Rejected):
            return verdict
        values.append(verdict)
    return values


def origin_of(msg: Any) -> str:
    """The publisher's peer id. Trustworthy: strict signing checks `msg.key` against `from_id` before
    validators run."""
    return ID(msg.from_id).to_base58()


def make_libp2p_validator(sub: Subscription, self_id: ID, report: InvalidReport) -> Callable[[ID, Any], bool]:
    """The synchronous validator py-libp2p calls as `validator(forwarder, msg) -> bool`.

    Our own messages are not validated here: the caller checks what it publishes, and validating a batch
    of our own signed items again would double the CPU cost of publishing.
    """

    def validate(forwarder: ID, msg: Any) -> bool:
        if forwarder == self_id:
            return True
        return _verdict(sub, forwarder, msg, sub.check(origin_of(msg), msg.data), report)

    return validate


def make_libp2p_batch_validator(
    sub: Subscription, self_id: ID, report: InvalidReport
) -> Callable[[ID, Any], Awaitable[bool]]:
    """The asynchronous validator for a batched topic: `make_libp2p_validator` with a checkpoint between items.

    py-libp2p runs a synchronous validator inside the task that reads the forwarder's stream, and nothing
    else of the node runs until it returns. A batch of a few hundred transactions is a few hundred decodes
    and signature checks: ~90 ms of CPU on a free core, about 2 s at the 5% of a core a node gets under
    --cpu-limit 0.5, during which no vote arriving on a consensus link was even read. With a checkpoint after
    each item, consensus waited for one item per peer sending batches; with the items of every batch taking
    turns in one lane (node/net/bulk_lane.py), it waits for one turn in all, on any machine.
    """

    # py-libp2p marks a message seen only once it is validated, so the copies of a batch that other peers
    # forward meanwhile (a mesh relays each to us several times within milliseconds) would each be checked
    # again, side by side. They wait for the first copy's verdict instead: (origin, seqno) -> its outcome.
    # A check that was cancelled (its connection closed) leaves no outcome: a waiting copy then checks itself.
    running: dict[tuple[bytes, bytes], tuple[trio.Event, list[list[Any] | Rejected]]] = {}

    async def validate(forwarder: ID, msg: Any) -> bool:
        if forwarder == self_id:
            return True
        key = message_id(msg)
        while key in running:
            done, outcome = running[key]
            await done.wait()
            if outcome:
                return _verdict(sub, forwarder, msg, outcome[0], report)
        done, outcome = running[key] = (trio.Event(), [])
        try:
            outcome.append(await sub.check_yielding(origin_of(msg), msg.data))
        finally:
            del running[key]
            done.set()
        return _verdict(sub, forwarder, msg, outcome[0], report)

    return validate


def _verdict(sub: Subscription, forwarder: ID, msg: Any, verdict: list[Any] | Rejected, report: InvalidReport) -> bool:
    """py-libp2p's answer for a checked message: accepted (its values kept for the handler), or rejected and
    counted against the forwarder."""
    if not isinstance(verdict, Rejected):
        sub.hold(msg, verdict)
        return True
    reason = verdict.reason
    sub.stats.rejected += 1
    sub.stats.last_rejection = reason
    sub.stats.rejections.append((forwarder.to_base58(), reason))
    del sub.stats.rejections[:-MAX_REMEMBERED_REJECTIONS]
    report(forwarder.to_base58(), sub.topic, reason)
    return False


async def _handle(sub: Subscription[Any], origin: str, value: Any) -> None:
    """One item to the subscription's handler; a crash is counted and logged, the next item goes on."""
    try:
        await sub.handler(origin, value)
        sub.stats.delivered += 1
    except Exception:
        sub.stats.handler_errors += 1
        log.exception("event=gossip-handler-failed topic=%s origin=%s", sub.topic, origin)


async def run_subscription(sub: Subscription, libp2p_subscription: Any, self_id: ID) -> None:
    """Pump and worker for one subscription; runs until cancelled."""
    send, receive = trio.open_memory_channel[tuple[str, bytes, "list[Any] | None"]](SUBSCRIPTION_BUFFER)
    self_b58 = self_id.to_base58()

    async def pump() -> None:
        while True:
            msg = await libp2p_subscription.get()
            origin = origin_of(msg)
            values = sub.take(msg)
            if origin == self_b58 and not sub.deliver_own:
                continue
            try:
                send.send_nowait((origin, msg.data, values))
            except trio.WouldBlock:
                sub.stats.dropped += 1
                log.warning(
                    "event=subscription-overflow topic=%s dropped=%d buffer=%d",
                    sub.topic,
                    sub.stats.dropped,
                    SUBSCRIPTION_BUFFER,
                )

    async def work() -> None:
        async for origin, data, validated in receive:
            values = validated if validated is not None else sub.check(origin, data)
            if isinstance(values, Rejected):  # our own (never validated), or one whose values were forgotten
                log.error("event=undeliverable-message topic=%s origin=%s reason=%r", sub.topic, origin, values.reason)
                continue
            # Handlers seldom wait (a transaction's is a synchronous mempool check): a batch handled in one go
            # was ~40 ms of CPU on a free core, close to a second at the 5% of a core a node gets under
            # --cpu-limit 0.5, during which no vote that arrived on the consensus link was handled. A batched
            # topic's items are handled in turns of the bulk lane; other topics' (one per message) yield.
            handle = functools.partial(_handle, sub, origin)
            if sub.batched:
                await sub.lane.each(values, handle)
            else:  # one item per message
                for value in values:
                    await handle(value)
                    await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pump)
        nursery.start_soon(work)
