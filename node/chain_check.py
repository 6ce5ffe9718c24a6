"""`/pocnet/chain/1`: which chain a peer is on, so a node started with the wrong genesis is told so.

Topics and signatures carry the chain id, so two chains never mix: a node whose genesis differs from its
peers' hears nothing it can use and stays at height 0 for ever, logging only that certificates do not
verify. That is an operator mistake (the wrong `--genesis`, or the wrong `--join`), so the node asks each
of its bootstrap peers for its chain id and genesis hash once it is connected. A peer on another chain is
logged and dropped; when every bootstrap peer has answered and none is on our chain, the node stops with
one line naming the chain its peers are on (`WrongChainError`). Peers that do not answer (older nodes, or
gone) count for nothing either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated

import trio
from libp2p.peer.peerinfo import info_from_p2p_addr
from multiaddr import Multiaddr

from node.net.host import P2PHost
from node.net.streams import RequestError
from node.operator_errors import OperatorError
from protocols.encoding import Bytes32, DecodeError, MaxLen, decode, encode, wire
from protocols.genesis import Genesis

log = logging.getLogger(__name__)

CHAIN_PROTOCOL = "/pocnet/chain/1"
# One small round trip; a loaded peer answers within a second, and a peer that does not is asked again.
CHAIN_TIMEOUT_S = 5.0
# How often the bootstrap peers not yet heard from are asked (they may still be starting or unreachable).
CHAIN_RETRY_S = 1.0
# A connected peer that fails to answer this many times does not speak the protocol (an older node, or
# not a pocnet node): it is no longer asked, and counts for nothing.
MAX_FAILED_ASKS = 5
# As protocols.genesis bounds a chain id.
MAX_CHAIN_ID_CHARS = 63


class WrongChainError(OperatorError):
    """Every bootstrap peer is on another chain than our genesis."""


@wire(tag=181)
@dataclass(frozen=True)
class ChainHello:
    chain_id: Annotated[str, MaxLen(MAX_CHAIN_ID_CHARS)]
    genesis_hash: Bytes32


def describe(hello: ChainHello) -> str:
    return f"chain {hello.chain_id!r} (genesis 0x{hello.genesis_hash.hex()[:16]}...)"


class ChainCheck:
    """Serves our chain's identity and checks the bootstrap peers'."""

    def __init__(self, host: P2PHost, genesis: Genesis, bootstrap: tuple[str, ...]) -> None:
        self.host = host
        self.ours = ChainHello(genesis.chain_id, genesis.genesis_hash)
        self._answer = encode(self.ours)
        self.bootstrap = [info_from_p2p_addr(Multiaddr(addr)).peer_id.to_base58() for addr in bootstrap]
        self.host.set_request_handler(CHAIN_PROTOCOL, self.serve)

    async def serve(self, peer: str, request: bytes) -> bytes:
        return self._answer  # the request carries nothing: who asks learns who we are

    async def ask(self, peer: str) -> ChainHello | None:
        """The peer's chain, or None if it does not answer sensibly (it is not held against it here)."""
        try:
            data = await self.host.request(peer, CHAIN_PROTOCOL, b"", CHAIN_TIMEOUT_S)
            return decode(ChainHello, data)
        except (RequestError, DecodeError) as exc:
            log.debug("event=chain-check-no-answer peer=%s error=%r", peer, exc)
            return None

    async def run(self) -> None:
        """Ask each bootstrap peer once it is connected, until every one has answered. Raises
        `WrongChainError` when all answered and none is on our chain."""
        pending = [peer for peer in dict.fromkeys(self.bootstrap) if peer != self.host.peer_id]
        others: dict[str, ChainHello] = {}
        failures = dict.fromkeys(pending, 0)
        agreeing = 0
        while pending:
            connected = set(self.host.connected_peers())
            for peer in [p for p in pending if p in connected]:
                hello = await self.ask(peer)
                if hello is None:
                    failures[peer] += 1
                    if failures[peer] >= MAX_FAILED_ASKS:
                        pending.remove(peer)
                    continue
                pending.remove(peer)
                if hello == self.ours:
                    agreeing += 1
                    continue
                others[peer] = hello
                log.error("event=peer-on-another-chain peer=%s theirs=%r ours=%r", peer, describe(hello), describe(self.ours))
                await self.host.disconnect(peer)
            await trio.sleep(CHAIN_RETRY_S)
        if others and not agreeing:
            theirs = sorted({describe(hello) for hello in others.values()})
            raise WrongChainError(
                f"the peers given by --join are on {', '.join(theirs)}, but --genesis is {describe(self.ours)}: "
                "start with their genesis file and a fresh --data-dir, or join peers of your own chain"
            )
