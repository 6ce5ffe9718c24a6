"""The `network` target: a hostile libp2p peer against a real node listening on 127.0.0.1."""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import trio

from node.config import NodeConfig
from node.fuzz.mutators import pack_tree, unpack_tree
from node.fuzz.nodescene import (
    CLIENT,
    MAX_STEPS,
    STEP_KINDS,
    VALIDATOR_KEYS,
    make_genesis,
    seed_inputs,
)
from node.fuzz.targets.base import Target, feature
from node.fuzz.trio_thread import TrioThread
from node.keys import KEY_FILE, write_key
from node.net import (
    GossipConfig,
    HostConfig,
    P2PHost,
    Rejected,
    RemoteError,
    RequestError,
    open_host,
)
from node.net.batching import pack_batch
from node.node import Node, run_node
from node.sync import SYNC_PROTOCOL, SyncResponse
from node.topic_handlers import TopicHandler
from node.topics import Topics
from node.trio_compat import TaskStatus
from protocols.consensus.messages import ConsensusMessage
from protocols.crypto import Keypair, sign
from protocols.encoding import DecodeError, decode, encode
from protocols.fuzz.oracles import OracleViolation, require
from protocols.ledger.transactions import Transaction, Transfer, TxBody

log = logging.getLogger(__name__)

# A hostile peer keeps one connection (to the node it joins): it must not become a relay, nor dial
# anyone else.
SINGLE_PEER_GOSSIP = GossipConfig(degree_low=1, degree=1, degree_high=2)
# How long a step waits for the node to react (a penalty); gossip on loopback takes milliseconds.
REACTION_S = 0.5
# Meshes and subscriptions form within a second or two on loopback; this bounds a stuck start.
MESH_TIMEOUT_S = 20.0
# A banned peer is disconnected at once; this bounds the check.
BAN_DISCONNECT_S = 10.0
# Not the node scene's chain id, so that the seeds' signatures are worthless here (see _Harness).
CHAIN_ID = "pocnet-fuzz-network"
# Validators of the chain under attack, like the devnet's managers; all run in this process.
MANAGERS = 4
# The load: one transfer per this interval keeps blocks coming, so gaps between them mean something.
LOAD_INTERVAL_S = 1.0
# A commit takes about a second on a 4-validator loopback chain; the bound covers a loaded machine.
LIVENESS_TIMEOUT_S = 30.0
# The node proves it is live (commits a transfer of our own) after this many inputs, and at the end.
LIVENESS_EVERY = 100
# A hostile identity is replaced after this many steps (or once banned): GossipSub ignores a peer whose
# score fell, so a long-lived attacker would only test the graylist.
STEPS_PER_IDENTITY = 40
# Messages that pass their topic's validator and whose handler never judges the sender: penalising one
# of them would punish an honest peer. (A valid-looking vote or block can still be refused by consensus,
# which rightly penalises its sender.)
NEVER_PENALISED = ("txs", "raw-txs-batch", "signed-tx", "orders", "peers")
# At least this many invalid messages from one identity must have cost it something.
INVALID_BEFORE_PENALTY = 3


def peer_config(bootstrap: str, keypair: Keypair) -> HostConfig:
    """A bare host joined to one node only (tests use it too, for attackers and listeners)."""
    return HostConfig(seed=keypair.seed, bootstrap=(bootstrap,), gossip=SINGLE_PEER_GOSSIP)


async def send_garbage(peer: P2PHost, target: str, protocol: str, frame: bytes) -> None:
    """Open a raw stream, write `frame` (any bytes: a broken varint, an oversize announcement, a cut frame),
    half-close, and read until the server resets or closes the stream (bounded)."""
    raw = await peer._open_raw_stream(target, protocol)
    try:
        await raw.write(frame)
        await raw.close()
        with trio.move_on_after(2):
            while await raw.read(1024):
                pass
    except Exception as exc:
        log.debug("event=garbage-stream-ended error=%r", exc)


class _Attacker:
    """One hostile identity: its host runs in a task of its own until `done` is set."""

    def __init__(self, host: P2PHost, done: trio.Event) -> None:
        self.host = host
        self.done = done
        self.steps = 0
        self.invalid = 0
        self.penalised = 0


class _Harness:
    """MANAGERS validator nodes on 127.0.0.1 (each run as `pocnet node` runs it), a steady load of
    transfers, and the current attacker (joined to validator 0 only), in a trio world."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="fuzz-network-", dir="/tmp"))
        # Another chain id than the node scene's: the seeds' signatures (three validators certify a block)
        # are then worthless here, and the only key the fuzzer signs with is one validator's (f = 1).
        self.genesis = replace(make_genesis(), chain_id=CHAIN_ID)
        self.topics = Topics(self.genesis.chain_id)
        self.nodes: list[Node] = []
        self._nursery: trio.Nursery | None = None
        self.attacker: _Attacker | None = None
        self.identities = 0
        self.bans = 0
        self.last_commit = 0.0  # trio clock of validator 0's last commit
        self.max_gap_s = 0.0  # the longest time between two commits of validator 0 while the load ran
        self.world = TrioThread(self._setup)

    @property
    def node(self) -> Node:
        """The node under attack: validator 0."""
        return self.nodes[0]

    @property
    def nursery(self) -> trio.Nursery:
        """The trio world's nursery, where attackers run."""
        if self._nursery is None:
            raise RuntimeError("the nodes have not started")
        return self._nursery

    async def _setup(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        for i, key in enumerate(VALIDATOR_KEYS[:MANAGERS]):
            directory = self.directory / f"manager-{i}"
            directory.mkdir()
            write_key(directory / KEY_FILE, key)
            join = tuple(n.host.addrs[0] for n in self.nodes[-2:])  # a line with shortcuts, as the devnet joins
            config = NodeConfig(("manager",), directory, self.genesis, "/ip4/127.0.0.1/tcp/0", join)
            ready = trio.Event()

            async def on_ready(node: Node, ready: trio.Event = ready) -> None:
                self.nodes.append(node)
                ready.set()

            nursery.start_soon(run_node, config, on_ready)
            await ready.wait()
        with trio.fail_after(MESH_TIMEOUT_S):
            while not all(n.host.mesh_peers(self.topics.consensus) for n in self.nodes):
                await trio.sleep(0.05)
        self.last_commit = trio.current_time()
        nursery.start_soon(self._watch_commits)
        nursery.start_soon(self._load)

    async def _watch_commits(self) -> None:
        while True:
            async with self.node.driver.committed:
                await self.node.driver.committed.wait()
            now = trio.current_time()
            self.max_gap_s = max(self.max_gap_s, now - self.last_commit)
            self.last_commit = now

    async def _load(self) -> None:
        """A transfer every LOAD_INTERVAL_S through the last validator, so that blocks keep coming."""
        while True:
            await self.nodes[-1].submit(Transfer(CLIENT.address, 1))
            await trio.sleep(LOAD_INTERVAL_S)

    def close(self) -> None:
        self.world.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    # --- the attacker ----------------------------------------------------------------------------

    async def _run_attacker(self, keypair: Keypair, task_status: TaskStatus[_Attacker]) -> None:
        done = trio.Event()
        async with open_host(peer_config(self.node.host.addrs[0], keypair)) as host:
            task_status.started(_Attacker(host, done))
            await done.wait()

    async def attacker_ready(self) -> _Attacker:
        """The current attacker, replaced by a fresh identity once banned or worn out."""
        node = self.node
        if self.attacker is not None and (self.attacker.steps >= STEPS_PER_IDENTITY or self._banned(self.attacker)):
            await self._retire(self.attacker)
            self.attacker = None
        if self.attacker is not None:
            return self.attacker
        self.identities += 1
        attacker: _Attacker = await self.nursery.start(self._run_attacker, Keypair.from_name(f"fuzz-attacker-{self.identities}"))
        topics = [self.topics.consensus, self.topics.txs, self.topics.orders, self.topics.blocks, self.topics.peers]
        with trio.move_on_after(MESH_TIMEOUT_S):
            while not all(node.host.peer_id in attacker.host.topic_peers(t) for t in topics):
                await trio.sleep(0.05)
        if not all(node.host.peer_id in attacker.host.topic_peers(t) for t in topics):
            attacker.done.set()
            raise OracleViolation(f"a new peer could not join validator 0 within {MESH_TIMEOUT_S:.0f} s "
                                  f"(after {self.identities - 1} identities, {self.bans} banned)")
        self.attacker = attacker
        return attacker

    def _banned(self, attacker: _Attacker) -> bool:
        return self.node.host.penalties.is_banned(attacker.host.peer_id, trio.current_time())

    async def _retire(self, attacker: _Attacker) -> None:
        """Check what the node owed this identity, then stop it."""
        node = self.node
        if attacker.invalid >= INVALID_BEFORE_PENALTY:
            require(attacker.penalised > 0, f"{attacker.invalid} invalid messages from one peer and no penalty")
        if self._banned(attacker):
            self.bans += 1
            with trio.move_on_after(BAN_DISCONNECT_S):
                while attacker.host.peer_id in node.host.connected_peers():
                    await trio.sleep(0.05)
            require(attacker.host.peer_id not in node.host.connected_peers(), "a banned peer is still connected")
        attacker.done.set()

    # --- one input -------------------------------------------------------------------------------

    async def run(self, steps: list[Any]) -> set[str]:
        return {await self.step(step) for step in steps}

    async def step(self, step: Any) -> str:
        if not isinstance(step, list) or len(step) < 3 or type(step[0]) is not int or type(step[1]) is not int:
            return "malformed step"
        attacker = await self.attacker_ready()
        attacker.steps += 1
        kind, tree = STEP_KINDS[step[0] % len(STEP_KINDS)], step[2]
        data = tree if type(tree) is bytes else pack_tree(tree)
        if kind == "sync":
            return await self.sync(attacker, data)
        if kind == "control":  # the control socket is local: over the network, garbage stream frames instead
            await send_garbage(attacker.host, self.node.host.peer_id, SYNC_PROTOCOL, data)
            return "garbage stream"
        topic, message = self._gossip_message(kind, tree, data)
        if message is None:
            return feature(kind, "not sendable")
        return await self.publish(attacker, kind, topic, message)

    def _gossip_message(self, kind: str, tree: Any, data: bytes) -> tuple[str, bytes | None]:
        t, node = self.topics, self.node
        if kind in ("txs", "orders"):
            items = [t_ if type(t_) is bytes else pack_tree(t_) for t_ in tree] if isinstance(tree, list) else [data]
            return (t.txs if kind == "txs" else t.orders), pack_batch([i for i in items if i] or [b"\xc0"])
        if kind == "raw-txs-batch":
            return t.txs, data
        if kind == "signed-tx":
            try:
                body = decode(TxBody, data)
            except DecodeError:
                return t.txs, None
            nonce = node.ledger_view().account(CLIENT.address).nonce
            return t.txs, pack_batch([encode(sign(CLIENT, self.genesis.chain_id, Transaction(nonce, body)))])
        if kind == "signed-vote":  # signed by the one Byzantine validator (its node runs honestly besides)
            try:
                message = decode(ConsensusMessage, data)
            except DecodeError:
                return t.consensus, None
            return t.consensus, encode(sign(VALIDATOR_KEYS[MANAGERS - 1], self.genesis.chain_id, message))
        return {"consensus": t.consensus, "blocks": t.blocks, "peers": t.peers}[kind], data

    def _invalid(self, kind: str, data: bytes) -> bool:
        """Does the node's own validator reject this message? (What it must then penalise.)"""
        node = self.node
        gossip = node.gossip
        handlers: dict[str, TopicHandler[Any]] = {"txs": gossip.txs, "raw-txs-batch": gossip.txs, "signed-tx": gossip.txs, "orders": gossip.orders,
                    "consensus": gossip.consensus, "signed-vote": gossip.consensus, "blocks": gossip.blocks,
                    "peers": gossip.peers}
        validate = handlers[kind].validate
        if kind in ("txs", "raw-txs-batch", "signed-tx", "orders"):
            from node.net.batching import BatchError, unpack_batch
            from node.net.gossip import MAX_BATCH_ITEMS

            try:
                items = unpack_batch(data, MAX_BATCH_ITEMS, len(data))
            except BatchError:
                return True
            return any(isinstance(validate("fuzz", item), Rejected) for item in items)
        return isinstance(validate("fuzz", data), Rejected)

    async def publish(self, attacker: _Attacker, kind: str, topic: str, message: bytes) -> str:
        node = self.node
        peer = attacker.host.peer_id
        before = node.host.peer_penalty(peer)
        invalid = self._invalid(kind, message)
        try:
            await attacker.host.publish(topic, message)
        except ValueError:  # over the gossip size limit: the attacker's own host refuses it
            return feature(kind, "too large to publish")
        unresolved = attacker.invalid > attacker.penalised  # an earlier penalty may still be on its way
        attacker.invalid += invalid
        with trio.move_on_after(REACTION_S if invalid else 0.05):
            while node.host.peer_penalty(peer) <= before:
                await trio.sleep(0.01)
        penalised = node.host.peer_penalty(peer) > before
        attacker.penalised += penalised
        if penalised and not invalid and not unresolved and kind in NEVER_PENALISED:
            raise OracleViolation(f"a valid {kind} message was penalised")
        return feature(kind, "invalid" if invalid else "valid", "penalised" if penalised else "")

    async def sync(self, attacker: _Attacker, request: bytes) -> str:
        node = self.node
        try:
            answer = await attacker.host.request(node.host.peer_id, SYNC_PROTOCOL, request, 5.0)
        except RemoteError:
            return "sync refused"
        except RequestError as exc:
            return feature("sync failed", type(exc).__name__)
        try:
            response = decode(SyncResponse, answer)
        except DecodeError as exc:
            raise OracleViolation(f"the sync answer does not decode: {exc.reason}") from None
        require(response.tip_height <= node.height, f"sync answer claims tip {response.tip_height} above {node.height}")
        return feature("sync answered", "blocks" if response.blocks else "nothing")

    async def check_live(self) -> None:
        """The node commits a transaction of its own within LIVENESS_TIMEOUT_S."""
        node = self.node
        tx = await node.submit(Transfer(CLIENT.address, 1))
        with trio.move_on_after(LIVENESS_TIMEOUT_S):
            while node.store.tx_result(tx.tx_id) is None:
                await trio.sleep(0.05)
        require(node.store.tx_result(tx.tx_id) is not None, f"the node committed nothing for {LIVENESS_TIMEOUT_S:.0f} s")
        chains = [dict(n.store.block_hashes()) for n in self.nodes]
        for height in set.intersection(*(set(c) for c in chains)):
            require(len({c[height] for c in chains}) == 1, f"validators decided different blocks at height {height}")


class NetworkTarget(Target):
    """A hostile libp2p peer against a real node on 127.0.0.1 (TCP, Noise, Yamux, GossipSub): mutated gossip
    batches on every topic, sync requests, garbage stream frames; the node must stay live, never crash,
    penalise and ban the peer.

    Input: the `node` target's steps (node/fuzz/nodescene.py), sent over the wire by the current attacker
    identity to validator 0 of four, all in this process, with a transfer a second as load; the only key
    the fuzzer signs consensus messages with is validator 3's (f = 1). The nodes live across inputs;
    identities rotate when banned or after STEPS_PER_IDENTITY steps. `report` gives the longest gap
    between two blocks of the attacked validator.
    Oracles:
    - the node never crashes (its task in the trio world never raises);
    - every LIVENESS_EVERY inputs and at the end, it commits a transfer of its own within 30 s;
    - a transaction, order or peer record the node's validator accepts never costs its sender a penalty;
      an identity that sent at least three invalid messages was penalised;
    - the validators never decide different blocks at one height;
    - a banned identity is disconnected within 10 s, and a fresh identity can still join within 20 s;
    - a sync request is answered with a decodable response (tip not above the node's) or refused.
    """

    name = "network"
    focus = (0, 2)

    def __init__(self) -> None:
        self._started: _Harness | None = None  # the nodes start with the first input (seeds need none)
        self._inputs = 0

    @property
    def _harness(self) -> _Harness:
        if self._started is None:
            self._started = _Harness()
        return self._started

    def seeds(self) -> list[bytes]:
        return seed_inputs()

    def execute(self, data: bytes) -> set[str]:
        self._inputs += 1
        steps = unpack_tree(data)
        features: set[str] = {"not a list of steps"}
        if isinstance(steps, list):
            features = self._harness.world.call(self._harness.run, steps[:MAX_STEPS])
        if self._inputs % LIVENESS_EVERY == 0:
            self._harness.world.call(self._harness.check_live)
        return features | ({"banned"} if self._harness.bans else set())

    def report(self) -> list[str]:
        if self._started is None:
            return []
        h = self._started
        h.world.call(h.check_live)
        return [f"network: {MANAGERS} validators, height {h.node.height}, {h.identities} attacker identities, "
                f"{h.bans} banned, longest gap between blocks {h.max_gap_s:.1f} s"]

    def close(self) -> None:
        if self._started is not None:
            self._started.close()
            self._started = None
