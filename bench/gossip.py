"""Gossip over real py-libp2p hosts in one process: publish-to-all latency and sustained delivery rate.

Five hosts in a line on 127.0.0.1 (TCP + Noise + Yamux, GossipSub v1.1, node/net's settings). Measures
(a) latency from publish at one end until every other host's handler ran, p50 / p95, with messages paced
far below capacity; (b) for several offered rates, the rate of messages delivered to every host and the
fraction delivered; (c) the same with the publish batcher (items/s), which is what orders and
transactions use. All hosts share one core here, so every hop's CPU counts against the same budget
(reference/py-libp2p.md: ~750 hops/s/core, about 86-380 msg/s for 10-3 hosts in a line).

Run: python -m bench.gossip [--hosts 5] [--seconds 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import struct
from contextlib import AsyncExitStack
from itertools import pairwise

import trio

from node.net import HostConfig, P2PHost, open_host
from protocols.crypto import Keypair

TOPIC = "pocnet/bench/gossip"
BATCHED_TOPIC = "pocnet/bench/batched"
LATENCY_SAMPLES = 200
LATENCY_GAP_S = 0.02  # far below capacity: measures latency, not queueing
DRAIN_S = 2.0  # after a rate step, time for in-flight messages to arrive
PAYLOAD_BYTES = 200  # about one signed order


def accept(origin: str, data: bytes) -> bytes:
    return data


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[int, float] = {}

    async def handle(self, origin: str, data: bytes) -> None:
        (seq,) = struct.unpack_from(">Q", data)
        self.arrivals[seq] = trio.current_time()


def payload(seq: int) -> bytes:
    return struct.pack(">Q", seq) + b"\x00" * (PAYLOAD_BYTES - 8)


async def start(stack: AsyncExitStack, count: int) -> tuple[list[P2PHost], list[Receiver], list[Receiver]]:
    hosts: list[P2PHost] = []
    for i in range(count):
        boot = (hosts[-1].addrs[0],) if hosts else ()
        hosts.append(
            await stack.enter_async_context(
                open_host(HostConfig(seed=Keypair.from_name(f"bench{i}").seed, bootstrap=boot))
            )
        )
    plain = [Receiver() for _ in hosts]
    batched = [Receiver() for _ in hosts]
    for host, r1, r2 in zip(hosts, plain, batched):
        await host.subscribe(TOPIC, accept, r1.handle)
        await host.subscribe(BATCHED_TOPIC, accept, r2.handle, batched=True)
    with trio.fail_after(20):
        while not all(
            b.peer_id in a.mesh_peers(t) and a.peer_id in b.mesh_peers(t)
            for a, b in pairwise(hosts)
            for t in (TOPIC, BATCHED_TOPIC)
        ):
            await trio.sleep(0.05)
    return hosts, plain, batched


async def measure_latency(publisher: P2PHost, receivers: list[Receiver], base: int) -> list[float]:
    sent: dict[int, float] = {}
    for seq in range(base, base + LATENCY_SAMPLES):
        sent[seq] = trio.current_time()
        await publisher.publish(TOPIC, payload(seq))
        await trio.sleep(LATENCY_GAP_S)
    await trio.sleep(DRAIN_S)
    latencies = []
    for seq, t0 in sent.items():
        times = [r.arrivals[seq] for r in receivers if seq in r.arrivals]
        if len(times) == len(receivers):
            latencies.append(max(times) - t0)
    return latencies


async def offer(
    publisher: P2PHost, receivers: list[Receiver], rate: float, seconds: float, base: int, batched: bool
) -> tuple[float, float]:
    """Publish at `rate`/s for `seconds`; returns (delivered-to-all per second, fraction delivered)."""
    total = int(rate * seconds)
    started = trio.current_time()
    for i in range(total):
        due = started + i / rate
        now = trio.current_time()
        if due > now:
            await trio.sleep(due - now)
        if batched:
            await publisher.publish_item(BATCHED_TOPIC, payload(base + i))
        else:
            await publisher.publish(TOPIC, payload(base + i))
    await trio.sleep(DRAIN_S)
    seqs = range(base, base + total)
    complete = [s for s in seqs if all(s in r.arrivals for r in receivers)]
    if not complete:
        return 0.0, 0.0
    last = max(max(r.arrivals[s] for r in receivers) for s in complete)
    return len(complete) / (last - started), len(complete) / total


async def run(count: int, seconds: float) -> None:
    logging.basicConfig(level=logging.ERROR)
    async with AsyncExitStack() as stack:
        hosts, plain, batched = await start(stack, count)
        publisher, receivers, batch_receivers = hosts[0], plain[1:], batched[1:]
        print(f"hosts={count} topology=line payload_bytes={PAYLOAD_BYTES} one process, one trio run")
        latencies = sorted(await measure_latency(publisher, receivers, base=0))
        p50 = statistics.median(latencies) * 1000
        p95 = latencies[int(0.95 * (len(latencies) - 1))] * 1000
        print(f"latency publish-to-all: p50={p50:.1f} ms p95={p95:.1f} ms samples={len(latencies)}/{LATENCY_SAMPLES}")
        base = 1_000_000
        for rate in (1_000, 4_000, 16_000):
            delivered, fraction = await offer(publisher, batch_receivers, rate, seconds, base, batched=True)
            print(f"batched offered={rate:5d} item/s delivered_to_all={delivered:7.1f} item/s fraction={fraction:.3f}")
            base += 1_000_000
        for rate in (100, 200, 400, 800):
            delivered, fraction = await offer(publisher, receivers, rate, seconds, base, batched=False)
            print(f"plain   offered={rate:5d} msg/s delivered_to_all={delivered:7.1f} msg/s fraction={fraction:.3f}")
            base += 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    trio.run(run, args.hosts, args.seconds)


if __name__ == "__main__":
    main()
