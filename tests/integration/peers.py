"""Bare libp2p hosts that play other peers: an attacker that publishes whatever bytes it likes on the
chain's topics, and a listener that records everything that reaches it, to tell what the nodes relayed."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from node.fuzz.targets.network import peer_config
from node.net import P2PHost, open_host
from node.node import Node
from node.topics import Topics
from protocols.crypto import Keypair
from tests.integration.support import MESH_TIMEOUT_S, Cluster


def topics_of(node: Node) -> list[str]:
    t = Topics(node.genesis.chain_id)
    return [t.consensus, t.txs, t.orders, t.blocks]


async def open_peer(
    stack: AsyncExitStack, join: Node, keypair: Keypair | None = None
) -> P2PHost:
    """A bare host with its own key, joined to `join` only (one connection: it must not become a relay
    between nodes, nor dial anyone else, or "two hops away" would not hold)."""
    config = peer_config(join.host.addrs[0], keypair or Keypair.generate())
    return await stack.enter_async_context(open_host(config))


async def wait_until_publishable(cluster: Cluster, peer: P2PHost, node: Node) -> None:
    """`node` has told `peer` it subscribes to every chain topic, so `peer.publish` reaches it."""
    await cluster.wait_until(
        lambda: all(node.host.peer_id in peer.topic_peers(t) for t in topics_of(node)),
        "the test peer to see the node's subscriptions",
        MESH_TIMEOUT_S,
    )


@dataclass
class Listener:
    """Records (topic, origin, data) of every gossip message that reaches its host."""

    host: P2PHost
    received: list[tuple[str, str, bytes]] = field(default_factory=list)

    def from_origin(self, origin: str) -> list[tuple[str, str, bytes]]:
        return [r for r in self.received if r[1] == origin]

    def on(self, topic: str) -> list[bytes]:
        return [data for t, _, data in self.received if t == topic]


async def open_listener(
    stack: AsyncExitStack, cluster: Cluster, join: Node
) -> Listener:
    """A host joined to `join` only, subscribed to every chain topic, accepting (and so relaying) anything."""
    host = await open_peer(stack, join)
    listener = Listener(host)
    for topic in topics_of(join):

        async def record(origin: str, data: bytes, topic: str = topic) -> None:
            listener.received.append((topic, origin, data))

        await host.subscribe(topic, lambda origin, data: data, record)
    await cluster.wait_until(
        lambda: all(host.mesh_peers(t) for t in topics_of(join)),
        "the listener's gossip mesh",
        MESH_TIMEOUT_S,
    )
    return listener
