"""Identity, addresses, bootstrap reconnection."""

from __future__ import annotations

from contextlib import AsyncExitStack

from node.net import open_host, peer_id_of_seed, public_key_of
from protocols.crypto import Keypair
from tests.net.support import config, start_line, wait_until


async def test_identity_and_addresses() -> None:
    keypair = Keypair.from_name("ident")
    async with open_host(config("ident")) as host:
        assert host.peer_id == peer_id_of_seed(keypair.seed)
        assert public_key_of(host.peer_id) == keypair.public_key
        assert host.addrs and all(
            a.startswith("/ip4/127.0.0.1/tcp/") and a.endswith("/p2p/" + host.peer_id) for a in host.addrs
        )
        assert not host.addrs[0].startswith("/ip4/127.0.0.1/tcp/0/")


async def test_bootstrap_peer_is_redialled_after_a_disconnect() -> None:
    async with AsyncExitStack() as stack:
        a, b = await start_line(stack, 2, prefix="redial")
        await wait_until(lambda: a.peer_id in b.connected_peers())
        await a.disconnect(b.peer_id)
        await wait_until(lambda: a.peer_id not in b.connected_peers(), timeout_s=3)
        await wait_until(lambda: a.peer_id in b.connected_peers(), timeout_s=5)


async def test_unreachable_bootstrap_does_not_block_start_or_stop() -> None:
    dead = "/ip4/127.0.0.1/tcp/1/p2p/" + peer_id_of_seed(Keypair.from_name("nobody").seed)
    async with open_host(config("lonely", (dead, "/not/a/multiaddr"))) as host:
        await wait_until(lambda: True)
        assert host.connected_peers() == []
