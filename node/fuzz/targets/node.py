"""The `node` target: an in-process node with a fake host, fed gossip, sync and control requests."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import trio
import trio.testing

from node.config import NodeConfig
from node.control import (
    ControlRejected,
    ControlRequest,
    DeployAppRequest,
    DeployDatasetRequest,
    FetchResultRequest,
    RunRequest,
)
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
from node.net import RequestError, RequestRejected
from node.net.batching import pack_batch
from node.net.bulk_lane import BulkLane
from node.net.counters import HostCounters
from node.net.gossip import MAX_BATCH_ITEMS, Rejected, Subscription
from node.node import STORE_FILE, Node
from node.storage import Store
from node.sync import SyncResponse
from protocols.consensus.blocks import verify_certificate
from protocols.consensus.messages import ConsensusMessage, block_id
from protocols.crypto import sign
from protocols.encoding import MAX_MESSAGE_BYTES, DecodeError, decode, encode
from protocols.fuzz.oracles import OracleViolation, require
from protocols.ledger.transactions import Transaction, TxBody

# A long-lived node collects mempool entries, orders and blocks; a fresh one every so many inputs keeps
# executions comparable (and the store small).
RESET_EVERY = 500
# Control requests that write bundles or datasets to disk or start a whole run are left out: their
# parsing is the `decode` target's, and their work is not a boundary a peer can reach.
SKIPPED_CONTROL = (DeployAppRequest, DeployDatasetRequest, RunRequest, FetchResultRequest)
PEERS = 4


class FakeHost:
    """The part of P2PHost a Node uses, without a network: publications and penalties are counted."""

    peer_id = "fuzz-node-under-test"
    addrs = ["/ip4/127.0.0.1/tcp/9/p2p/fuzz-node-under-test"]

    def __init__(self) -> None:
        self.published = 0
        self.penalties = 0
        self.counters = HostCounters()  # read by the node's metrics
        self.bulk_lane = BulkLane()  # the mempool re-check and local submissions take turns in it

    def connected_peers(self) -> list[str]:
        return []

    def subscription_stats(self) -> dict[str, Any]:
        return {}

    def keep_direct(self, peer_id: str) -> None:
        """No peers: nothing to keep."""

    async def publish(self, topic: str, data: bytes, *, urgent: bool = False) -> None:
        self.published += 1

    async def publish_item(self, topic: str, item: bytes) -> None:
        self.published += 1

    def pace_publishing(self, min_interval_s: float) -> None:
        """Nothing is batched here: every publication is counted at once."""

    def penalise(self, peer_id: str, reason: str, points: float = 1.0) -> None:
        self.penalties += 1

    async def request(self, peer_id: str, protocol_id: str, payload: bytes, timeout_s: float, limits: Any = None) -> bytes:
        raise RequestError("the fuzzed node has no peers")


def _bytes(tree: Any) -> bytes:
    """The bytes a step's tree stands for: a byte string as is, anything else packed."""
    return tree if type(tree) is bytes else pack_tree(tree)


class _Harness:
    """One node (validator 0 of the fuzz chain) with a fake host, in a trio world of its own."""

    def __init__(self, root: Path) -> None:
        self.directory = Path(tempfile.mkdtemp(dir=root))
        self.host = FakeHost()
        self.store: Store | None = None
        self._node: Node | None = None
        self.world = TrioThread(self._setup)

    @property
    def node(self) -> Node:
        if self._node is None:
            raise RuntimeError("the fuzzed node has not started")
        return self._node

    async def _setup(self, nursery: trio.Nursery) -> None:
        genesis = make_genesis()
        self.store = Store(self.directory / STORE_FILE)
        self.store.bind_genesis(genesis.genesis_hash)
        config = NodeConfig(("manager",), self.directory, genesis, "/ip4/127.0.0.1/tcp/0", ())
        self._node = Node(config, VALIDATOR_KEYS[0], self.store, self.host)  # type: ignore[arg-type]
        await nursery.start(self._node.driver.run)

    def close(self) -> None:
        self.world.stop()
        if self.store is not None:
            self.store.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # --- one input, in the trio world -------------------------------------------------------------

    async def run(self, steps: list[Any]) -> set[str]:
        return {await self.step(step) for step in steps}

    async def step(self, step: Any) -> str:
        if not isinstance(step, list) or len(step) < 3 or type(step[0]) is not int or type(step[1]) is not int:
            return "malformed step"
        kind, arg, tree = STEP_KINDS[step[0] % len(STEP_KINDS)], step[1], step[2]
        peer = f"fuzz-peer-{arg % PEERS}"
        if kind in ("consensus", "blocks", "peers"):
            return await self.gossip(kind, peer, _bytes(tree))
        if kind in ("txs", "orders"):
            items = [_bytes(t) for t in tree] if isinstance(tree, list) else [_bytes(tree)]
            return await self.gossip(kind, peer, pack_batch(items))
        if kind == "raw-txs-batch":
            return await self.gossip("txs", peer, _bytes(tree))
        if kind == "sync":
            return await self.sync(peer, _bytes(tree))
        if kind == "control":
            return await self.control(_bytes(tree))
        if kind == "signed-vote":
            return await self.signed_vote(arg, peer, _bytes(tree))
        return await self.signed_tx(peer, _bytes(tree))

    def state(self) -> tuple[object, ...]:
        node = self.node
        return (node.app.state_digest(), len(node.mempool), len(node.order_book), node.driver.machine.snapshot(), node.height)

    async def gossip(self, topic: str, peer: str, data: bytes) -> str:
        """What a subscription does with a message (node/net/gossip.py): the topic's validator on every item
        (before relay), then, if all pass, its handler on each decoded value; then the node's tasks run
        until idle. `topic` names the handler in `Node.gossip`."""
        handler = getattr(self.node.gossip, topic)
        sub = Subscription(topic, handler.validate, handler.handle, handler.batched, MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES, False)
        before = self.state()
        values = sub.check(peer, data)
        if isinstance(values, Rejected):
            reason = values.reason
            require(not reason.startswith("validator raised"), f"{topic} validator raised: {reason}")
            require(self.state() == before, f"a rejected {topic} message changed the node ({reason})")
            return feature(topic, "rejected", reason.split(":")[0])
        require(len(values) <= MAX_BATCH_ITEMS, f"{len(values)} items in one batch")
        for value in values:
            await handler.handle(peer, value)  # a handler that raises is a finding: the subscription would only log it
        await trio.testing.wait_all_tasks_blocked()
        return feature(topic, "accepted")

    async def sync(self, peer: str, request: bytes) -> str:
        node = self.node
        try:
            answer = await node.serve_sync(peer, request)
        except RequestRejected as exc:
            return feature("sync rejected", str(exc).split(":")[0])
        try:
            response = decode(SyncResponse, answer)
        except DecodeError as exc:
            raise OracleViolation(f"the sync answer does not decode: {exc.reason}") from None
        require(response.tip_height == node.height, f"sync answer says tip {response.tip_height}, the node is at {node.height}")
        first = response.blocks[0].block.height if response.blocks else 0
        for offset, decided in enumerate(response.blocks):
            block = decided.block
            require(block.height == first + offset, "sync answer blocks are not consecutive")
            reason = verify_certificate(decided.certificate, block.height, block_id(block), node.validators, node.verifier)
            require(reason is None, f"sync answer block {block.height} has a bad certificate: {reason}")
        return feature("sync answered", "blocks" if response.blocks else "nothing")

    async def control(self, data: bytes) -> str:
        node = self.node
        try:
            request = decode(ControlRequest, data)
        except DecodeError:
            return "control malformed"
        if isinstance(request, SKIPPED_CONTROL):
            return feature("control skipped", type(request).__name__)
        try:
            response = await node.handle_control(request)
        except ControlRejected as exc:
            return feature("control rejected", type(request).__name__, str(exc).split(":")[0])
        encode(response)  # the control server sends it: it must be a wire value
        await trio.testing.wait_all_tasks_blocked()
        return feature("control", type(request).__name__, type(response).__name__)

    async def signed_vote(self, arg: int, peer: str, data: bytes) -> str:
        """A consensus message from the input, signed by a real validator (1-3, never the node's own key)."""
        try:
            message = decode(ConsensusMessage, data)
        except DecodeError:
            return "signed-vote undecodable"
        signed = sign(VALIDATOR_KEYS[1 + arg % 3], make_genesis().chain_id, message)
        return await self.gossip("consensus", peer, encode(signed))

    async def signed_tx(self, peer: str, data: bytes) -> str:
        """A transaction body from the input, signed by the funded client with the nonce the node expects."""
        node = self.node
        try:
            body = decode(TxBody, data)
        except DecodeError:
            return "signed-tx undecodable"
        nonce = node.ledger_view().account(CLIENT.address).nonce
        tx = sign(CLIENT, node.genesis.chain_id, Transaction(nonce, body))
        return await self.gossip("txs", peer, pack_batch([encode(tx)]))


class NodeTarget(Target):
    """An in-process node (validator 0 of 4) with a fake host: gossip batches through the topic validators
    and handlers, sync requests, control requests, and messages re-signed with real validator keys.

    Input: a msgpack array of steps `[kind, argument, tree]` (kinds in node/fuzz/nodescene.py); seeds hold
    real validators' votes, a certified block of height 1, the client's transactions. The node lives across
    inputs, as a real one does (a fresh one every RESET_EVERY inputs, and for a replay).
    Oracles, on every step:
    - a topic validator returns None or a reason, never raises; a handler never raises;
    - a message its validator rejects changes nothing: ledger state, mempool, order book, consensus state;
    - a sync request is answered (a SyncResponse whose tip is the node's height and whose blocks are
      consecutive and certified) or refused with RequestRejected;
    - a control request gets a wire value or ControlRejected;
    - the node's background tasks (the consensus driver and its timers) never crash.
    """

    name = "node"
    focus = (0, 2)  # the first step's message tree

    def __init__(self) -> None:
        self._started: _Harness | None = None  # the node starts with the first input (seeds need none)
        self._root: Path | None = None  # holds every node's directory; removed by close()
        self._inputs = 0

    @property
    def _harness(self) -> _Harness:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="fuzz-node-", dir="/tmp"))
        if self._started is None:
            self._started = _Harness(self._root)
        return self._started

    def seeds(self) -> list[bytes]:
        return seed_inputs()

    def execute(self, data: bytes) -> set[str]:
        self._inputs += 1
        if self._inputs % RESET_EVERY == 0:
            self._stop_node()
        steps = unpack_tree(data)
        if not isinstance(steps, list):
            return {"not a list of steps"}
        harness = self._harness
        try:
            features: set[str] = harness.world.call(harness.run, steps[:MAX_STEPS])
        except BaseException:
            self._stop_node()  # the next input starts from a fresh node, whatever this one did
            raise
        return features

    def _stop_node(self) -> None:
        if self._started is not None:
            self._started.close()
            self._started = None

    def close(self) -> None:
        self._stop_node()
        if self._root is not None:  # whatever a node left behind (its store's files) goes with it
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None
