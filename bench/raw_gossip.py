"""Publish-to-all latency of bare py-libp2p hosts, one per process, with a node's gossip settings.

The yardstick of issue 11's light-load target: a commit needs about five gossip phases (transaction to the
proposer, proposal, prevotes, precommits, block to followers), so a pocnet commit p50 within 8x of this p50
is the goal, measured on the same machine in the same run (bench/liveness.py's `latency` scenario).

`--processes` hosts (default 10, like the liveness devnet), each in its own Python process as pocnet nodes
are, with node/node.py's host settings (GossipSub parameters, batching), no pocnet logic. Host i joins the
first min(i, 4) hosts, as followers join the devnet's managers. Host 0 publishes a small message every
`--gap` seconds (light load: far below capacity); every host notes the wall-clock arrival time; a sample is
the time from publish until the last host had it. All processes share one machine and its clock.

    .venv/bin/python -m bench.raw_gossip [--processes 10] [--samples 100] [--gap 0.2]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from node.net import open_host
from node.node import host_config
from protocols.crypto import Keypair

TOPIC = "pocnet/bench/raw-gossip"
# Each host joins at most this many earlier hosts: the devnet's followers join its 4 managers.
JOIN_FIRST = 4
PAYLOAD_BYTES = 200  # about one vote
# Time for the gossip mesh to form after the last host is up (GossipSub grafts at each 1 s heartbeat).
MESH_SETTLE_S = 5.0
DRAIN_S = 3.0
START_TIMEOUT_S = 60.0


def accept(origin: str, data: bytes) -> bytes:
    return data


async def child(index: int, workdir: Path, samples: int, gap: float) -> None:
    """One host: write its address, wait for the start signal, publish (host 0) or note arrivals."""
    logging.basicConfig(level=logging.ERROR)
    joins = tuple((workdir / f"{j}.addr").read_text().strip() for j in range(min(index, JOIN_FIRST)))
    arrivals: dict[int, float] = {}

    async def handle(origin: str, data: bytes) -> None:
        (seq,) = struct.unpack_from(">Q", data)
        arrivals.setdefault(seq, time.time())

    config = host_config(Keypair.from_name(f"raw-gossip-{index}").seed, "/ip4/127.0.0.1/tcp/0", joins)
    async with open_host(config) as host:
        await host.subscribe(TOPIC, accept, handle)
        (workdir / f"{index}.addr.tmp").write_text(host.addrs[0])
        os.replace(workdir / f"{index}.addr.tmp", workdir / f"{index}.addr")
        while not (workdir / "go").exists():
            await trio.sleep(0.05)
        sent: dict[int, float] = {}
        if index == 0:
            for seq in range(samples):
                sent[seq] = time.time()
                await host.publish(TOPIC, struct.pack(">Q", seq) + b"\x00" * (PAYLOAD_BYTES - 8))
                await trio.sleep(gap)
        else:
            await trio.sleep(samples * gap)
        await trio.sleep(DRAIN_S)
        (workdir / f"{index}.json").write_text(json.dumps({"sent": sent, "arrivals": arrivals}))


def publish_to_all_ms(processes: int, samples: int, gap: float) -> list[float]:
    """Run the hosts and return each fully delivered sample's publish-to-all latency in ms."""
    with tempfile.TemporaryDirectory(prefix="pocnet-raw-gossip-") as tmp:
        workdir = Path(tmp)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for i in range(processes):
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "bench.raw_gossip", "--child", str(i), "--dir", tmp,
                     "--samples", str(samples), "--gap", str(gap)],
                ))
                deadline = time.monotonic() + START_TIMEOUT_S
                while not (workdir / f"{i}.addr").exists():
                    if procs[-1].poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"raw gossip host {i} did not start")
                    time.sleep(0.05)
            time.sleep(MESH_SETTLE_S)
            (workdir / "go").touch()
            for proc in procs:
                proc.wait(timeout=samples * gap + DRAIN_S + START_TIMEOUT_S)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        results = [json.loads((workdir / f"{i}.json").read_text()) for i in range(processes)]
    sent = {int(k): v for k, v in results[0]["sent"].items()}
    latencies = []
    for seq, t0 in sent.items():
        times = [r["arrivals"].get(str(seq)) for r in results[1:]]
        if all(t is not None for t in times):
            latencies.append((max(times) - t0) * 1000)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=10)
    parser.add_argument("--samples", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between published messages")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        trio.run(child, args.child, Path(args.dir), args.samples, args.gap)
        return
    latencies = sorted(publish_to_all_ms(args.processes, args.samples, args.gap))
    if not latencies:
        sys.exit("no message reached every host")
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(f"raw py-libp2p publish-to-all over {args.processes} processes: p50 {statistics.median(latencies):.1f} ms "
          f"p95 {p95:.1f} ms (samples {len(latencies)}/{args.samples})")


if __name__ == "__main__":
    main()
