"""Many short-lived identities, each banned by one host, do not close that host to new peers.

The `network` fuzz target found it: after about 290 banned attacker identities validator 0 took no new
peer ("failed to negotiate the secure protocol" at the dialler) and went 208 s without a commit. The cause
was py-libp2p's inbound connection limiter, whose slot per inbound connection is given back only when the
swarm stops (node/net/host.py, `_build_libp2p`). With the library's default of 300 connections the test
would need some 300 identities; it gives the host a limit of 12 (8 inbound slots) and sends twice that.
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import trio

from node.net import HostConfig, open_host
from node.net.config import BAN_THRESHOLD, GossipConfig
from protocols.crypto import Keypair
from tests.net.support import SETTLE_TIMEOUT_S, config

MAX_CONNECTIONS = 12
GOSSIP = GossipConfig(degree_low=2, degree=3, degree_high=4)
IDENTITIES = 2 * (MAX_CONNECTIONS - GOSSIP.degree_low)


async def test_a_host_still_takes_new_peers_after_many_banned_identities() -> None:
    async with AsyncExitStack() as stack:
        target = await stack.enter_async_context(
            open_host(config("ban-target", max_connections=MAX_CONNECTIONS, gossip=GOSSIP)))
        for i in range(IDENTITIES + 1):
            identity = Keypair.from_name(f"banned-attacker-{i}")
            async with open_host(HostConfig(seed=identity.seed, bootstrap=(target.addrs[0],), gossip=GOSSIP)) as attacker:
                with trio.move_on_after(SETTLE_TIMEOUT_S):
                    while target.peer_id not in attacker.connected_peers():
                        await trio.sleep(0.01)
                joined = target.peer_id in attacker.connected_peers()
                if joined and i < IDENTITIES:  # the last one is a newcomer: it only has to get in
                    target.penalise(attacker.peer_id, "fuzzing", points=BAN_THRESHOLD)
                    assert target.is_banned(attacker.peer_id)
                    with trio.fail_after(SETTLE_TIMEOUT_S):
                        while attacker.peer_id in target.connected_peers():
                            await trio.sleep(0.01)
                # Leaving `open_host` leaves the listener open (test_hostile_peers.py): close it as an exit would.
                for listener in list(attacker._host.get_network().listeners.values()):
                    await listener.close()
            assert joined, f"identity {i} could not connect after {i} banned ones"
