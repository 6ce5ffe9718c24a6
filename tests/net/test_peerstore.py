"""A host that has heard of more peers than py-libp2p's peer store keeps still answers identify: the library's
eviction used to drop the host's own entry first (it has keys but no addresses), after which every identify
request it answered raised `PeerStoreError('peer ID not found')` (node/net/host.py, `keep_own_peer_entry`)."""

from __future__ import annotations

from contextlib import AsyncExitStack

import trio
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.peer.peerstore import PeerStoreError
from multiaddr import Multiaddr

from node.net import HostConfig, open_host
from protocols.crypto import Keypair
from tests.net.support import SETTLE_TIMEOUT_S, config

MAX_PEERS = 5


async def test_a_host_keeps_its_own_keys_when_its_peer_store_overflows() -> None:
    async with AsyncExitStack() as stack:
        target = await stack.enter_async_context(open_host(config("crowded")))
        store = target._host.get_peerstore()
        store.max_peers = MAX_PEERS
        for port in range(1, 3 * MAX_PEERS):  # peers learnt of and gone, as attacker identities leave them
            stranger = ID.from_pubkey(create_new_key_pair(port.to_bytes(32, "big")).public_key)
            store.add_addrs(stranger, [Multiaddr(f"/ip4/127.0.0.1/tcp/{port}")], 3600)
        assert len(store.peer_ids()) <= MAX_PEERS + 1
        assert target._host.get_public_key() is not None
        newcomer = await stack.enter_async_context(
            open_host(HostConfig(seed=Keypair.from_name("newcomer").seed, bootstrap=(target.addrs[0],))))
        with trio.fail_after(SETTLE_TIMEOUT_S):  # identify answered: the newcomer learns the target's protocols
            while not _protocols_known(newcomer._host.get_peerstore(), target._host.get_id()):
                await trio.sleep(0.05)
        assert target.peer_id in newcomer.connected_peers()


def _protocols_known(store: object, peer: ID) -> bool:
    try:
        return bool(store.get_protocols(peer))  # type: ignore[attr-defined]
    except PeerStoreError:  # not heard of yet
        return False
