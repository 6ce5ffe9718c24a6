"""`pocnet/<chain>/peers`: signed peer records (which multiaddrs an account's node listens on), learnt into
the directory, and our own record announced (node/directory.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import trio

from node.consensus_driver import wall_ms
from node.directory import MAX_ADDRESSES, Directory, PeerRecord
from node.net.gossip import Rejected
from node.net.host import P2PHost
from protocols.crypto import Keypair, sign
from protocols.encoding import encode

# Our peer record goes out at start, again after each of these delays (nodes started together hear of
# each other within seconds), then every PEER_RECORD_S for nodes that joined since (gossip has no history).
# Every record reaches every node: at one per node per 5 s, a 30-node devnet spent a third of its idle CPU
# on them.
PEER_RECORD_EARLY_S = (2.0, 4.0, 8.0, 16.0)
PEER_RECORD_S = 30.0


class PeerRecordTopic:
    batched = False

    def __init__(
        self, directory: Directory, keypair: Keypair, chain_id: str, host: P2PHost, topic: str,
        link_addrs: Callable[[], list[str]] = list,
    ) -> None:
        """`link_addrs`: where our consensus link host listens, if we have one (a validator's)."""
        self._directory = directory
        self._link_addrs = link_addrs
        self._keypair = keypair
        self._chain_id = chain_id
        self._host = host
        self._topic = topic

    def validate(self, peer: str, data: bytes) -> PeerRecord | Rejected:
        return self._directory.check(data)

    async def handle(self, peer: str, record: PeerRecord) -> None:
        self._directory.learn(record)

    async def announce(self) -> None:
        """Announce our own record, forever (see PEER_RECORD_EARLY_S); runs in the node's nursery."""
        sequence = wall_ms()
        for delay in itertools.chain(PEER_RECORD_EARLY_S, itertools.repeat(PEER_RECORD_S)):
            addresses = tuple(self._host.addrs[:MAX_ADDRESSES])
            record = sign(
                self._keypair, self._chain_id,
                PeerRecord(addresses, sequence, tuple(self._link_addrs()[:MAX_ADDRESSES])),
            )
            self._directory.learn(record)
            await self._host.publish(self._topic, encode(record))
            await trio.sleep(delay)
