"""Peers that gossip garbage: what a node rejects is neither relayed nor applied, its sender is penalised,
and the chain goes on. Also the node-side races and leaks these scenarios exposed (marked xfail)."""

from __future__ import annotations

import contextlib
import os
from contextlib import AsyncExitStack
from dataclasses import replace

import pytest
import trio
import trio.lowlevel
from libp2p.abc import INetConn, INetwork

from node.control import StatusRequest
from node.fuzz.targets.network import send_garbage
from node.net import HostConfig, open_host
from node.net.bans import QuietNotifee
from node.net.batching import pack_batch, unpack_batch
from node.net.config import BAN_THRESHOLD, INVALID_MESSAGE_PENALTY
from node.net.framing import encode_uvarint
from node.sync import SYNC_PROTOCOL
from protocols.consensus.messages import Block, Certificate, DecidedBlock, Step, Vote
from protocols.crypto import ZERO_ADDRESS, Keypair, sign
from protocols.encoding import decode, encode
from protocols.genesis import NRLC_PER_RLC
from protocols.ledger.evidence import offence_key
from protocols.ledger.records import Equivocation
from protocols.ledger.state import EQUIVOCATION
from protocols.ledger.transactions import RegisterApp, Transaction, Transfer
from protocols.orders import NO_TAG, AppOrder
from tests.integration.peers import (
    Listener,
    open_listener,
    open_peer,
    topics_of,
    wait_until_publishable,
)
from tests.integration.support import Cluster

# Real nodes on a shared 2-core machine: py-libp2p gossip timing under load occasionally needs another
# try (see the closing notes of issue 4); a failure that repeats is a real one.
pytestmark = [pytest.mark.slow, pytest.mark.flaky(reruns=1)]


def badly_signed_tx(keypair: Keypair, chain_id: str) -> bytes:
    """A transfer whose signature does not cover its body (the nonce changed after signing)."""
    tx = sign(keypair, chain_id, Transaction(0, Transfer(keypair.address, 1)))
    return encode(replace(tx, nonce=1))


def badly_signed_order(keypair: Keypair, chain_id: str) -> AppOrder:
    order = sign(
        keypair,
        chain_id,
        AppOrder(
            os.urandom(20), 1, 1, NO_TAG, ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, b""
        ),
    )
    return replace(order, app_price=2)


async def wait_for_block_at(cluster: Cluster, listener: Listener, height: int) -> None:
    """The listener got the decided block of `height`: gossip through its node works, so anything relayed
    before it would have arrived too."""
    topic = topics_of(cluster.running[0])[3]

    def arrived() -> bool:
        return any(
            decode(DecidedBlock, data).block.height >= height
            for data in listener.on(topic)
        )

    await cluster.wait_until(arrived, f"the block of height {height} at the listener")


async def test_garbage_gossip_is_dropped_penalised_and_not_relayed(
    network: Cluster,
) -> None:
    """An attacker joined to m3 publishes undecodable bytes and wrongly signed messages on all four topics
    (a validator: only validators are on the consensus topic). m3 must reject each before relaying (a
    listener joined to m1 never sees any), penalise the attacker, keep it out of mempools and order books,
    and the chain must keep committing."""
    target = network["m3"]
    chain_id = network.genesis.chain_id
    consensus, txs, orders, blocks = topics_of(target)
    async with AsyncExitStack() as stack:
        listener = await open_listener(stack, network, network["m1"])
        attacker_key = Keypair.generate()
        attacker = await open_peer(stack, target, attacker_key)
        await wait_until_publishable(network, attacker, target)

        bad_tx = badly_signed_tx(attacker_key, chain_id)
        bad_order = badly_signed_order(attacker_key, chain_id)
        not_a_validator = sign(
            attacker_key, chain_id, Vote(target.height + 1, 0, Step.PREVOTE, b"")
        )
        garbage = [
            (consensus, b"\xc1\xc1\xc1"),
            (consensus, os.urandom(300)),
            (consensus, encode(not_a_validator)),
            (txs, b"not a batch"),
            (txs, pack_batch([b"\x92\x00\xc1"])),
            (txs, pack_batch([bad_tx])),
            (orders, pack_batch([os.urandom(64)])),
            (orders, pack_batch([encode(bad_order)])),
            (blocks, b"\x93\x01\x02"),
            (blocks, os.urandom(500)),
        ]
        for topic, data in garbage:
            await attacker.publish(topic, data)
        # Some of it may be dropped unread once GossipSub's score of the attacker falls (that is fine too);
        # at least the first messages were read and cost the attacker.
        await network.wait_until(
            lambda: target.host.peer_penalty(attacker.peer_id) > 0, "a penalty"
        )

        height = target.height
        await network.transfer("f1", "m0")
        await wait_for_block_at(network, listener, height + 1)
        assert attacker.peer_id not in listener.host.connected_peers(), (
            "the listener must be two hops away"
        )
        assert listener.from_origin(attacker.peer_id) == []
        for node in network.running:
            assert bad_tx not in node.mempool
            assert bad_order.payload_digest not in node.order_book
        network.assert_agree()


async def test_forged_validator_signatures_are_not_relayed(network: Cluster) -> None:
    """A vote that names a validator's key but whose signature does not match, and a decided block whose
    certificate nobody signed, are garbage only a validator check can tell: it must run before relay."""
    target = network["m3"]
    consensus, _, _, blocks = topics_of(target)
    async with AsyncExitStack() as stack:
        listener = await open_listener(stack, network, network["m1"])
        attacker = await open_peer(stack, target)
        await wait_until_publishable(network, attacker, target)

        m0 = network.members["m0"].keypair
        vote = sign(
            m0, network.genesis.chain_id, Vote(target.height + 1, 0, Step.PREVOTE, b"")
        )
        forged_vote = replace(vote, round=7)  # the signature covers round 0
        far = 1_000_000
        forged_block = DecidedBlock(
            Block(far, 1, bytes(32), bytes(32), (), None),
            Certificate(far, 0, os.urandom(32), (vote.signature,)),
        )
        await attacker.publish(consensus, encode(forged_vote))
        await attacker.publish(blocks, encode(forged_block))

        height = target.height
        await network.transfer("f1", "m0")
        await wait_for_block_at(network, listener, height + 1)
        assert listener.from_origin(attacker.peer_id) == []
        # Two rejections of one point each, less the decay since (penalties fade by design).
        assert target.host.peer_penalty(attacker.peer_id) > 1.5


async def test_submit_right_after_a_commit_gets_the_right_nonce(
    network: Cluster,
) -> None:
    """A client that sees its transaction's result (TxResultRequest reads the store) and submits the next
    one at once must not be refused with bad-nonce (fixed in dc21418). Where the node announces the block
    (it proposed it), the announcement is held back, so the moment between storing the block and the
    commit hook is tested for certain rather than for one scheduling step."""
    node = network["m0"]
    announce = node.host.publish
    held, release = trio.Event(), trio.Event()
    submitted: list[Transaction] = []

    def stored() -> bool:
        return bool(submitted) and node.store.tx_result(submitted[0].tx_id) is not None

    async def held_announcement(topic: str, data: bytes, *, urgent: bool = False) -> None:
        if topic == node.topics.blocks and stored():
            held.set()
            await release.wait()
        await announce(topic, data, urgent=urgent)

    node.host.publish = held_announcement  # type: ignore[method-assign]
    try:
        submitted.append(
            await node.submit(Transfer(network.members["f1"].address, NRLC_PER_RLC))
        )
        with trio.fail_after(45):
            while not (held.is_set() or stored()):
                await (
                    trio.lowlevel.checkpoint()
                )  # look at every scheduling step, as a busy client would
        second = await node.submit(
            Transfer(network.members["f1"].address, NRLC_PER_RLC)
        )
        assert second.nonce == submitted[0].nonce + 1
    finally:
        release.set()


async def test_a_stopped_host_closes_its_sockets() -> None:
    """A node stopped in-process (tests, embedding) must look to its peers like a process that exited:
    connection gone, port closed. Otherwise the peer never meshes with the same identity again."""
    async with open_host(HostConfig(seed=Keypair.generate().seed)) as staying:
        async with open_host(
            HostConfig(seed=Keypair.generate().seed, bootstrap=(staying.addrs[0],))
        ) as leaving:
            gone, address = leaving.peer_id, leaving.addrs[0]
            with trio.fail_after(5):
                while gone not in staying.connected_peers():
                    await trio.sleep(0.01)
        port = int(address.split("/tcp/")[1].split("/")[0])
        with trio.move_on_after(2):
            while gone in staying.connected_peers():
                await trio.sleep(0.01)
        assert gone not in staying.connected_peers(), (
            "the peer still sees a connection to the stopped host"
        )
        with pytest.raises(OSError):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            await stream.aclose()


class ConnectionEvents(QuietNotifee):
    """Counts an attacker's connections to and disconnections from one peer, as its own swarm sees them."""

    def __init__(self, peer: str) -> None:
        self.peer = peer
        self.connections = 0
        self.disconnections = 0

    async def connected(self, network: INetwork, conn: INetConn) -> None:  # type: ignore[override]
        self.connections += conn.muxed_conn.peer_id.to_base58() == self.peer

    async def disconnected(self, network: INetwork, conn: INetConn) -> None:  # type: ignore[override]
        self.disconnections += conn.muxed_conn.peer_id.to_base58() == self.peer


async def test_a_banned_peer_is_kept_out(network: Cluster) -> None:
    """An attacker floods m3 with invalid transactions until m3 bans it. Its host redials m3 at once (it
    was given m3 as a bootstrap peer): m3 must close that connection, and what the attacker publishes
    during the ban, valid or not, must neither enter m3's mempool nor be relayed (the listener on m1
    never sees it). Before the fix the redial was accepted and a valid transfer went through."""
    target = network["m3"]
    chain_id = network.genesis.chain_id
    _, txs, _, _ = topics_of(target)
    async with AsyncExitStack() as stack:
        listener = await open_listener(stack, network, network["m1"])
        attacker_key = Keypair.generate()
        attacker = await open_peer(stack, target, attacker_key)
        events = ConnectionEvents(target.host.peer_id)
        attacker._host.get_network().register_notifee(events)
        await wait_until_publishable(network, attacker, target)

        # Garbage gossip first: GossipSub reads a few (each unique, or it would drop them as duplicates)
        # and then drops the rest unread by its own score gate; garbage stream frames finish the job.
        for _ in range(int(BAN_THRESHOLD / INVALID_MESSAGE_PENALTY)):
            await attacker.publish(txs, pack_batch([os.urandom(64)]))
        for _ in range(3 * int(BAN_THRESHOLD / INVALID_MESSAGE_PENALTY)):  # points decay meanwhile
            if target.host.is_banned(attacker.peer_id):
                break
            with contextlib.suppress(Exception):  # the ban may close the connection under it: fine
                await send_garbage(attacker, target.host.peer_id, SYNC_PROTOCOL, encode_uvarint(1 << 40))
        await network.wait_until(lambda: target.host.is_banned(attacker.peer_id), "the ban")

        payer = network.members["f1"].keypair
        valid = sign(payer, chain_id, Transaction(target.ledger_view().account(payer.address).nonce,
                                                  Transfer(network.members["m0"].address, 1)))
        sent = trio.Event()

        async def publish_during_the_ban() -> None:
            while True:
                with contextlib.suppress(Exception):  # no peer to publish to while disconnected: fine
                    await attacker.publish(txs, pack_batch([encode(valid)]))
                    sent.set()
                await trio.sleep(0.1)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish_during_the_ban)
            await network.wait_until(
                lambda: events.connections >= 1 and events.disconnections >= 2,
                "m3 to close the banned attacker's new connection",
            )
            height = target.height
            await network.transfer("f0", "m0")
            await wait_for_block_at(network, listener, height + 1)
            nursery.cancel_scope.cancel()
        assert sent.is_set()
        # The attacker keeps redialling (m3 is its bootstrap peer): each attempt is let in by TCP and
        # closed at once, so "not connected" is what m3 returns to, not a state it never leaves.
        await network.wait_until(lambda: attacker.peer_id not in target.host.connected_peers(), "the redial closed")
        assert listener.from_origin(attacker.peer_id) == []
        assert encode(valid) not in target.mempool
        assert target.host.is_banned(attacker.peer_id)


def app_order(app: bytes) -> AppOrder:
    return AppOrder(app, 1, 1, NO_TAG, ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, os.urandom(16))


async def test_orders_the_ledger_rules_out_are_neither_admitted_nor_relayed(network: Cluster) -> None:
    """Order-book spam: correctly signed orders for an app nobody registered, and for someone else's app.
    m3 must check them against its ledger before admitting and relaying them; an honest order published
    after them reaches the listener, so they would have too."""
    chain_id = network.genesis.chain_id
    registered = await network.commit("f0", RegisterApp("word-count", b"\x01" * 32))
    app = network["f0"].store.tx_result(registered.tx_id).created  # type: ignore[union-attr]
    target = network["m3"]
    _, _, orders, _ = topics_of(target)
    async with AsyncExitStack() as stack:
        listener = await open_listener(stack, network, network["m1"])
        attacker_key = Keypair.generate()
        attacker = await open_peer(stack, target, attacker_key)
        await wait_until_publishable(network, attacker, target)
        spam = [sign(attacker_key, chain_id, app_order(os.urandom(20))), sign(attacker_key, chain_id, app_order(app))]
        for order in spam:
            await attacker.publish(orders, pack_batch([encode(order)]))
        await network.wait_until(lambda: target.host.peer_penalty(attacker.peer_id) > 1.5, "a penalty per spam order")

        honest = await network["f0"].publish_order(app_order(app))
        await network.wait_until(
            lambda: all(honest.payload_digest in node.order_book for node in network.running)
            and any(encode(honest) in unpack_batch(data, 100, 1 << 20) for data in listener.on(orders)),
            "the honest order everywhere",
        )
        for node in network.running:
            assert all(order.payload_digest not in node.order_book for order in spam)
        assert listener.from_origin(attacker.peer_id) == []
        with pytest.raises(ValueError, match="app-not-registered"):
            await network["f0"].publish_order(app_order(os.urandom(20)))


async def test_an_equivocation_is_proven_on_every_ledger(network: Cluster) -> None:
    """A twin of m0 (m0's key in another process) sends two different prevotes for the same height and
    round. The validators that see both must put the proof on the ledger, where every node, followers
    included, finds the offence recorded once; the chain stays whole."""
    target = network["m3"]
    consensus = topics_of(target)[0]
    m0 = network.members["m0"].keypair
    async with AsyncExitStack() as stack:
        twin = await open_peer(stack, target)
        await wait_until_publishable(network, twin, target)
        height, round_ = target.height + 1, target.driver.machine.round
        for _ in range(2):
            vote = sign(m0, network.genesis.chain_id, Vote(height, round_, int(Step.PREVOTE), os.urandom(32)))
            await twin.publish(consensus, encode(vote))
        key = offence_key(m0.public_key, height, round_, int(Step.PREVOTE))
        await network.wait_until(
            lambda: all(node.ledger_view().get(key) is not None for node in network.running),
            "the equivocation recorded on every node",
        )
    record = network["f0"].ledger_view().get(key)
    assert isinstance(record, Equivocation) and record.validator == m0.public_key
    status = await network["f0"].handle_control(StatusRequest())  # what `pocnet status` prints as "evidence"
    assert status.equivocations >= 1
    network.assert_agree()


async def test_a_byzantine_manager_is_proven_to_equivocate_and_the_chain_goes_on(network: Cluster) -> None:
    """m0 restarted with `--byzantine equivocate` signs two different votes (and proposals) each time. The
    three honest managers still commit (f = 1), and the proof of m0's equivocation reaches every ledger."""
    await network.stop("m0")
    await network.start("m0", byzantine="equivocate")
    await network.wait_for_mesh()
    m0 = network.members["m0"].keypair.public_key

    def recorded() -> bool:
        return all(
            any(record.validator == m0 for _, record in node.app.ledger.state.items_with_prefix(EQUIVOCATION))
            for node in network.running
        )

    for _ in range(10):  # each transfer makes a height at which m0 votes twice; one is enough, in principle
        await network.transfer("f1", "m1")
        if recorded():
            break
    await network.wait_until(recorded, "m0's equivocation on every ledger")
    await network.transfer("f0", "m2")
    network.assert_agree()
