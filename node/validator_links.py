"""Validators stay connected to each other: only they are on the consensus topic, so their votes must not
depend on a path through followers (DESIGN.md section 8)."""

from __future__ import annotations

import logging

import trio

from node.consensus_link import ConsensusLinks
from node.directory import Directory, reach
from node.net.host import P2PHost
from protocols.consensus.validators import ValidatorSet
from protocols.crypto import address_of

log = logging.getLogger(__name__)

# How often a validator checks that it is connected to every other validator it knows an address of.
VALIDATOR_LINK_S = 2.0


async def link_validators(
    host: P2PHost, directory: Directory, validators: ValidatorSet, own_key: bytes, links: ConsensusLinks | None
) -> None:
    """Stay connected to every other validator and gossip with it as a direct peer, so consensus
    messages go straight between validators (and over `links`, if any); runs until cancelled."""
    others = [address_of(key) for key in validators.keys if key != own_key]
    linked: set[bytes] = set()
    while True:
        for account in others:
            peer = await reach(host, directory, account)
            if peer is not None:
                host.keep_direct(peer)
                link_addresses = directory.link_addresses_of(account)
                if links is not None and link_addresses:  # none: a validator without links (gossip only)
                    links.link(peer, link_addresses)
            if peer is not None and account not in linked:
                log.info("event=validator-linked validator=0x%s peer=%s", account.hex(), peer)
                linked.add(account)
            elif peer is None and account in linked:
                log.warning("event=validator-unreachable validator=0x%s", account.hex())
                linked.discard(account)
        await trio.sleep(VALIDATOR_LINK_S)
