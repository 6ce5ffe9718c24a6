"""Real hosts on 127.0.0.1 with ephemeral ports, in one trio run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from itertools import pairwise

import trio

from node.net import HostConfig, P2PHost, open_host
from protocols.crypto import Keypair

TOPIC = "pocnet/test/orders"
# Mesh formation on loopback takes well under a second; 10 s only bounds a broken run.
SETTLE_TIMEOUT_S = 10.0


def config(name: str, bootstrap: Sequence[str] = (), **overrides: object) -> HostConfig:
    return HostConfig(seed=Keypair.from_name(name).seed, bootstrap=tuple(bootstrap), **overrides)  # type: ignore[arg-type]


async def start_line(stack: AsyncExitStack, n: int, prefix: str = "h") -> list[P2PHost]:
    """Hosts 0..n-1, each bootstrapped to the one before it: a line."""
    hosts: list[P2PHost] = []
    for i in range(n):
        boot = (hosts[-1].addrs[0],) if hosts else ()
        hosts.append(await stack.enter_async_context(open_host(config(f"{prefix}{i}", boot))))
    return hosts


async def wait_until(predicate: Callable[[], bool], timeout_s: float = SETTLE_TIMEOUT_S, what: str = "") -> None:
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.02)


async def wait_for_line_mesh(hosts: list[P2PHost], topic: str = TOPIC) -> None:
    """Every neighbour pair of the line is in each other's mesh for `topic`."""

    def ready() -> bool:
        for a, b in pairwise(hosts):
            if b.peer_id not in a.mesh_peers(topic) or a.peer_id not in b.mesh_peers(topic):
                return False
        return True

    await wait_until(ready, what="line mesh")


def accept(origin: str, data: bytes) -> bytes:
    return data
