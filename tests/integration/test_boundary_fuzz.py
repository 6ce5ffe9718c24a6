"""Fuzzing at the network boundary of a running node: mutated gossip (votes, proposals, transactions,
orders, decided blocks), mutated /pocnet/sync/1 requests and garbage stream frames. The node must answer
cleanly or reject, never crash, and stay live. A seeded random loop keeps every run identical."""

from __future__ import annotations

import os
import random
from contextlib import AsyncExitStack
from typing import Any

import pytest
import trio.lowlevel

from node.fuzz.mutators import mutate_bytes
from node.fuzz.targets.network import send_garbage
from node.net import Rejected, RemoteError, RequestError
from node.net.batching import pack_batch
from node.net.framing import encode_uvarint
from node.node import Node
from node.sync import SYNC_PROTOCOL, SyncRequest, parse_response
from node.topic_handlers import TopicHandler
from protocols.consensus.messages import Block, DecidedBlock, Proposal, Step, Vote
from protocols.crypto import ZERO_ADDRESS, sign
from protocols.encoding import encode
from protocols.ledger.transactions import Transaction, Transfer
from protocols.orders import NO_TAG, AppOrder
from tests.integration.peers import open_peer, topics_of, wait_until_publishable
from tests.integration.support import Cluster

# Real nodes on a shared 2-core machine: py-libp2p gossip timing under load occasionally needs another
# try (see the closing notes of issue 4); a failure that repeats is a real one.
pytestmark = [pytest.mark.slow, pytest.mark.flaky(reruns=1)]

SEED = 4
# Counts: enough to reach the decoders' odd corners on every run, small enough for a few seconds.
DIRECT_MESSAGES = 400  # fed to the node's gossip validators and handlers in-process
GOSSIP_ROUNDS, GOSSIP_PER_ROUND = (
    6,
    6,
)  # over the wire, a fresh identity per round (penalties ban after ~10)
SYNC_REQUESTS = 60
GARBAGE_STREAMS, STREAMS_PER_IDENTITY = 15, 5
def valid_samples(cluster: Cluster, node: Node) -> dict[str, list[bytes]]:
    """Well-formed, correctly signed messages of each topic, the seeds of the mutations. Votes and the
    proposal are for a height not yet started and nothing unmutated is ever sent, so no validator
    is made to equivocate."""
    chain_id = cluster.genesis.chain_id
    keys = {m.keypair.public_key: m.keypair for m in cluster.members.values()}
    height = node.height + 5
    proposer = keys[node.validators.proposer(height, 0)]
    block = Block(
        height,
        node.driver.machine.tip.time + 1,
        bytes(32),
        node.app.state_digest(),
        (),
        None,
    )
    m0 = cluster.members["m0"].keypair
    requester = cluster.members["f1"].keypair
    decided = node.store.decided_block(1)
    assert decided is not None
    order = AppOrder(
        os.urandom(20), 5, 10, NO_TAG, ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, b"salt"
    )
    return {
        "consensus": [
            encode(sign(m0, chain_id, Vote(height, 0, Step.PREVOTE, os.urandom(32)))),
            encode(sign(m0, chain_id, Vote(height, 1, Step.PRECOMMIT, b""))),
            encode(sign(proposer, chain_id, Proposal(height, 0, -1, block))),
        ],
        "txs": [
            encode(
                sign(requester, chain_id, Transaction(1_000, Transfer(m0.address, 1)))
            )
        ],
        "orders": [encode(sign(requester, chain_id, order))],
        "blocks": [encode(DecidedBlock(*decided))],
    }


def handlers(node: Node) -> dict[str, TopicHandler[Any]]:
    gossip = node.gossip
    return {"consensus": gossip.consensus, "txs": gossip.txs, "orders": gossip.orders, "blocks": gossip.blocks}


async def test_mutated_gossip_is_rejected_and_the_node_stays_live(
    network: Cluster,
) -> None:
    """Every mutation goes through what a subscription does (validator, then handler if accepted) in
    process, and a share of them over the wire from short-lived peers; nothing may raise, and the chain
    commits afterwards with every node in agreement."""
    rng = random.Random(SEED)
    target = network["f0"]
    await network.wait_for_height(1, ["f0"])  # a real decided block to mutate
    samples = valid_samples(network, target)
    kinds = sorted(samples)
    checks = handlers(target)
    peer_id = network[
        "m3"
    ].host.peer_id  # penalties in the direct phase land on a real, connected peer
    accepted = 0
    for _ in range(DIRECT_MESSAGES):
        kind = rng.choice(kinds)
        data = mutate_bytes(rng, rng.choice(samples[kind]))
        verdict = checks[kind].validate(peer_id, data)  # a validator never raises: it rejects
        if not isinstance(verdict, Rejected):
            accepted += 1
            await checks[kind].handle(peer_id, verdict)
        await trio.lowlevel.checkpoint()
    assert accepted < DIRECT_MESSAGES // 2, (
        "most mutations must be rejected at the validator"
    )

    # Over the wire the target is a validator: followers are not on the consensus topic.
    wire_target = network["m3"]
    topic_of = dict(
        zip(("consensus", "txs", "orders", "blocks"), topics_of(wire_target), strict=True)
    )
    for _ in range(GOSSIP_ROUNDS):
        async with AsyncExitStack() as stack:
            attacker = await open_peer(stack, wire_target)
            await wait_until_publishable(network, attacker, wire_target)
            for _ in range(GOSSIP_PER_ROUND):
                kind = rng.choice(kinds)
                data = mutate_bytes(rng, rng.choice(samples[kind]))
                await attacker.publish(
                    topic_of[kind],
                    pack_batch([data]) if kind in ("txs", "orders") else data,
                )
            await network.wait_until(
                lambda a=attacker: wire_target.host.peer_penalty(a.peer_id) > 0, "a penalty"
            )

    await network.transfer("f1", "m0")
    assert all(m.node is not None for m in network.members.values())
    network.assert_agree()


async def test_mutated_sync_requests_and_garbage_frames_are_answered_or_dropped(
    network: Cluster,
) -> None:
    """A peer sends /pocnet/sync/1 requests near a valid one and streams of broken frames (bad varints,
    oversize announcements, cut frames). Each request gets a response or an error answer; a broken stream
    is dropped; afterwards the node still serves a valid request and the chain commits."""
    rng = random.Random(SEED + 1)
    target = network["m1"]
    valid = [
        encode(SyncRequest(1, 10)),
        encode(SyncRequest(2, 256)),
        encode(SyncRequest(1, 1)),
    ]
    async with AsyncExitStack() as stack:
        client = await open_peer(stack, target)
        await network.wait_until(
            lambda: target.host.peer_id in client.connected_peers(), "the sync client"
        )
        answered = rejected = 0
        for i in range(SYNC_REQUESTS):
            payload = (
                mutate_bytes(rng, rng.choice(valid))
                if i % 4
                else rng.randbytes(rng.randrange(1, 64))
            )
            try:
                response = parse_response(
                    await client.request(
                        target.host.peer_id, SYNC_PROTOCOL, payload, 5.0
                    )
                )
                assert response.tip_height == target.height
                answered += 1
            except RemoteError:
                rejected += 1
        assert answered + rejected == SYNC_REQUESTS and rejected > 0

    frames = [
        b"\xff" * 11,  # a varint that never ends
        b"\x80\x00",  # a non-minimal varint
        encode_uvarint(1 << 40),  # announces a frame far above the limit
        encode_uvarint(100) + b"cut short",
        encode_uvarint(3) + b"\xc1\xc1\xc1",
    ]
    for first in range(0, GARBAGE_STREAMS, STREAMS_PER_IDENTITY):
        async with AsyncExitStack() as stack:
            peer = await open_peer(stack, target)
            await network.wait_until(
                lambda p=peer: target.host.peer_id in p.connected_peers(),
                "the garbage peer",
            )
            for i in range(first, first + STREAMS_PER_IDENTITY):
                frame = (
                    frames[i % len(frames)]
                    if i < len(frames)
                    else mutate_bytes(rng, rng.choice(frames))
                )
                await send_garbage(peer, target.host.peer_id, SYNC_PROTOCOL, frame)

    async with AsyncExitStack() as stack:
        client = await open_peer(stack, target)
        await network.wait_until(
            lambda: target.host.peer_id in client.connected_peers(), "a fresh client"
        )
        await network.transfer("f0", "f1")
        response = parse_response(
            await client.request(target.host.peer_id, SYNC_PROTOCOL, valid[0], 5.0)
        )
        assert [b.block.height for b in response.blocks] == list(
            range(1, target.height + 1)
        )
    network.assert_agree()


async def test_sync_request_for_a_height_beyond_sqlite_integers_is_answered(
    network: Cluster,
) -> None:
    target = network["m1"]
    async with AsyncExitStack() as stack:
        client = await open_peer(stack, target)
        await network.wait_until(
            lambda: target.host.peer_id in client.connected_peers(), "the sync client"
        )
        for height in (2**63 - 1, 2**63, 2**64 - 1):
            try:
                response = parse_response(
                    await client.request(
                        target.host.peer_id,
                        SYNC_PROTOCOL,
                        encode(SyncRequest(height, 5)),
                        5.0,
                    )
                )
            except RequestError as exc:
                pytest.fail(f"from_height={height}: {exc}")
            assert response.blocks == ()
