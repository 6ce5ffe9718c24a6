"""The discrete-event simulation: validators running `Tendermint` over a lossy, partitioned network.

Events sit in a heap ordered by (simulated time, sequence number); the sequence number and one seeded
`random.Random` make every run a pure function of its `Scenario`. Messages cross the wire as bytes
(`encode`, then the strict `decode`), so signatures and the decoder are exercised as on a real network.

What it models, and how:
- delays uniform in [min_delay, max_delay] per copy, hence reordering; loss and duplication per copy;
- partitions that drop messages between groups until they heal;
- congestion (`Congestion`): a per-node budget of messages per window, the excess dropped, like the
  bounded gossip queues a transaction flood fills; the drops fall on bursts, unlike independent loss;
- crashes (timers and mempool lost, chain and application kept, like a process with a database) and
  restarts that hand the state machine its write-ahead log of the current height (`restore=`);
- Byzantine validators (`byzantine.py`);
- the sync protocol: `RequestSync` is answered by a random reachable correct validator with its decided
  blocks and certificates after `sync_delay`; it is a stream, so not lossy, but partitions cut it.

Safety is checked at every commit of a correct validator: one block per height, a valid certificate, a
chain of previous hashes. Violations are collected, not raised, so a test can print the scenario.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import random
from dataclasses import dataclass, field

from protocols.consensus.actions import (
    Action,
    Broadcast,
    Commit,
    RecordEvidence,
    RequestSync,
    ScheduleTimeout,
    Timer,
)
from protocols.consensus.blocks import ChainTip, genesis_tip, verify_certificate
from protocols.consensus.mempool import Mempool
from protocols.consensus.messages import (
    Block,
    Certificate,
    DuplicateVoteEvidence,
    Proposal,
    Vote,
    block_id,
    decode_message,
)
from protocols.consensus.tendermint import InvalidMessage, Tendermint
from protocols.consensus.validators import ValidatorSet
from protocols.crypto import Keypair, SignatureVerifier
from protocols.encoding import DecodeError, encode
from protocols.sim.byzantine import ByzantineSender
from protocols.sim.kvapp import KVApp
from protocols.sim.scenario import GENESIS_TIME, Scenario

log = logging.getLogger(__name__)

CHAIN_ID = "pocnet-sim"
GENESIS_HASH = hashlib.sha256(b"pocnet-sim-genesis").digest()
# A sync answer carries at most this many blocks; the node asks again if still behind.
SYNC_BATCH = 50
# How many forwarded-message hashes a relaying node remembers (gossipsub's seen cache is time-based).
RELAY_MEMORY = 100_000


@dataclass
class SimNode:
    index: int
    keypair: Keypair
    app: KVApp
    machine: Tendermint
    mempool: Mempool
    skew: int
    byzantine: ByzantineSender | None = None
    alive: bool = True
    epoch: int = 0  # bumped by a crash: timers of an older epoch died with the process
    chain: list[tuple[Block, Certificate]] = field(default_factory=list)
    # The write-ahead log of the current height: messages sent and accepted, by signature (no duplicates).
    wal: dict[bytes, Proposal | Vote] = field(default_factory=dict)
    evidence: list[DuplicateVoteEvidence] = field(default_factory=list)
    rejected: int = 0
    relayed: set[bytes] = field(default_factory=set)  # hashes of messages already forwarded (relay mode)
    commit_times: list[int] = field(default_factory=list)

    @property
    def tip(self) -> ChainTip:
        if not self.chain:
            return genesis_tip(GENESIS_HASH, GENESIS_TIME)
        block, cert = self.chain[-1]
        return ChainTip(block.height, block_id(block), block.time, cert)


@dataclass
class SimResult:
    scenario: Scenario
    nodes: list[SimNode]
    violations: list[str]
    messages_sent: int
    events: int
    verifications: int

    @property
    def correct(self) -> list[SimNode]:
        byz = self.scenario.byzantine_nodes
        return [n for n in self.nodes if n.index not in byz]

    def heights(self) -> list[int]:
        return [len(n.chain) for n in self.correct]

    def decided_rounds(self) -> dict[int, int]:
        """Height -> the round its certificate is from (0 = decided in the first round), as seen by
        the correct validator with the longest chain."""
        longest = max(self.correct, key=lambda n: len(n.chain))
        return {b.height: c.round for b, c in longest.chain}

    def committed_txs(self) -> int:
        longest = max(self.correct, key=lambda n: len(n.chain))
        return sum(len(b.txs) for b, _ in longest.chain)


class Simulation:
    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.rng = random.Random(scenario.seed)
        self.keys = [Keypair.from_name(f"sim-validator-{i}") for i in range(scenario.n)]
        self.validators = ValidatorSet([k.public_key for k in self.keys])
        self._shared = SignatureVerifier(CHAIN_ID) if scenario.shared_verifier else None
        self._checker = self._shared or SignatureVerifier(CHAIN_ID)
        self.now = GENESIS_TIME
        self._queue: list[tuple[int, int, str, object]] = []
        self._seq = 0
        self._decided: dict[int, bytes] = {}
        self.violations: list[str] = []
        self.messages_sent = 0
        self.events = 0
        self._tx_counter = 0
        self._window_counts: dict[tuple[int, int, int], int] = {}
        self.congestion_drops = 0
        byz = dict(scenario.byzantine)
        self.nodes: list[SimNode] = []
        for i, kp in enumerate(self.keys):
            app = KVApp()
            mempool = Mempool(app)
            skew = self.rng.randint(-scenario.clock_skew, scenario.clock_skew)
            sender = ByzantineSender(byz[i], kp, CHAIN_ID, random.Random(self.rng.random())) if i in byz else None
            machine = self._new_machine(kp, app, mempool, genesis_tip(GENESIS_HASH, GENESIS_TIME), [])
            node = SimNode(i, kp, app, machine, mempool, skew, sender)
            self.nodes.append(node)

    def _verifier(self) -> SignatureVerifier:
        return self._shared if self._shared is not None else SignatureVerifier(CHAIN_ID)

    def _new_machine(
        self, kp: Keypair, app: KVApp, mempool: Mempool, tip: ChainTip, restore: list[Proposal | Vote]
    ) -> Tendermint:
        return Tendermint(
            chain_id=CHAIN_ID,
            validators=self.validators,
            app=app,
            config=self.scenario.consensus,
            params=self.scenario.params,
            tip=tip,
            keypair=kp,
            mempool=mempool,
            verifier=self._verifier(),
            restore=restore,
        )

    # --- the event loop --------------------------------------------------------------------------

    def _push(self, at: int, kind: str, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (max(at, self.now), self._seq, kind, payload))

    def run(self) -> SimResult:
        sc = self.scenario
        end = GENESIS_TIME + sc.duration
        for crash in sc.crashes:
            self._push(GENESIS_TIME + crash.at, "crash", crash.node)
            if crash.restart_at is not None:
                self._push(GENESIS_TIME + crash.restart_at, "restart", crash.node)
        if sc.tx_interval:
            self._push(GENESIS_TIME + sc.tx_interval, "client", 0)
        for node in self.nodes:
            self._perform(node, node.machine.start(self._local(node)))
        while self._queue and self._queue[0][0] <= end:
            self.now, _, kind, payload = heapq.heappop(self._queue)
            self.events += 1
            getattr(self, f"_on_{kind}")(payload)
        verifications = self._shared.verifications if self._shared else sum(
            n.machine._verifier.verifications for n in self.nodes
        )
        return SimResult(sc, self.nodes, self.violations, self.messages_sent, self.events, verifications)

    def _local(self, node: SimNode) -> int:
        return self.now + node.skew

    # Each `_on_KIND` takes the payload `_push` queued with that kind (dispatched by name in `run`).

    def _on_deliver(self, payload: tuple[int, bytes]) -> None:
        to, data = payload
        node = self.nodes[to]
        if not node.alive:
            return
        height = node.machine.height
        try:
            msg = decode_message(data)
            actions = node.machine.on_message(msg, self._local(node))
        except (DecodeError, InvalidMessage):
            node.rejected += 1
            return
        if msg.height == height:
            node.wal[msg.signature.signature] = msg
        if self.scenario.relay and node.byzantine is None:
            self._relay(node, data)
        self._perform(node, actions)

    def _relay(self, node: SimNode, data: bytes) -> None:
        h = hashlib.sha256(data).digest()
        if h in node.relayed:
            return
        if len(node.relayed) > RELAY_MEMORY:
            node.relayed.clear()
        node.relayed.add(h)
        for p in range(self.scenario.n):
            if p != node.index:
                self._send(node.index, p, data)

    def _on_timeout(self, payload: tuple[int, int, Timer]) -> None:
        index, epoch, timeout = payload
        node = self.nodes[index]
        if node.alive and node.epoch == epoch:
            self._perform(node, node.machine.on_timeout(timeout, self._local(node)))

    def _on_client(self, batch: int) -> None:
        sc = self.scenario
        txs = []
        for _ in range(sc.txs_per_batch):
            self._tx_counter += 1
            c = self._tx_counter
            if self.rng.random() >= sc.cas_share:
                txs.append(f"set k{c} {c}".encode())
            else:  # a compare-and-set that is often stale: conflicts, evictions, invalid blocks
                txs.append(f"cas c{c % 3} {self.rng.randrange(3)} {self.rng.randrange(3)}".encode())
        if sc.timer_every and batch % sc.timer_every == 0:
            txs.append(f"timer t{batch} {self.now + self.rng.randrange(100, 2000)}".encode())
        for node in self.nodes:
            if not node.alive:
                continue
            added = False
            for tx in txs:
                if self.rng.random() >= sc.loss and node.mempool.add(tx) is None:
                    added = True
            if added:
                self._perform(node, node.machine.on_txs_available(self._local(node)))
        self._push(self.now + sc.tx_interval, "client", batch + 1)

    def _on_crash(self, index: int) -> None:
        node = self.nodes[index]
        node.alive = False
        node.epoch += 1

    def _on_restart(self, index: int) -> None:
        node = self.nodes[index]
        node.alive = True
        node.mempool = Mempool(node.app)
        node.machine = self._new_machine(node.keypair, node.app, node.mempool, node.tip, list(node.wal.values()))
        self._perform(node, node.machine.start(self._local(node)))

    def _on_sync(self, payload: tuple[int, list[tuple[Block, Certificate]]]) -> None:
        to, blocks = payload
        node = self.nodes[to]
        if not node.alive:
            return
        for block, cert in blocks:
            try:
                actions = node.machine.on_decided_block(block, cert, self._local(node))
            except InvalidMessage:
                node.rejected += 1
                return
            self._perform(node, actions)

    # --- performing actions ----------------------------------------------------------------------

    def _perform(self, node: SimNode, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Broadcast):
                node.wal[action.message.signature.signature] = action.message
                self._broadcast(node, action.message)
            elif isinstance(action, ScheduleTimeout):
                self._push(action.at - node.skew, "timeout", (node.index, node.epoch, action.timeout))
            elif isinstance(action, Commit):
                self._on_commit(node, action.block, action.certificate)
            elif isinstance(action, RecordEvidence):
                node.evidence.append(action.evidence)
            elif isinstance(action, RequestSync):
                self._request_sync(node, action.from_height)

    def _broadcast(self, node: SimNode, msg: Proposal | Vote) -> None:
        peers = [p for p in range(self.scenario.n) if p != node.index]
        if node.byzantine is not None:
            outgoing = node.byzantine.corrupt(msg, peers)
        else:
            outgoing = [(p, msg) for p in peers]
        encoded: dict[int, bytes] = {}
        for to, m in outgoing:
            data = encoded.get(id(m))
            if data is None:
                data = encoded[id(m)] = encode(m)
            self._send(node.index, to, data)

    def _send(self, frm: int, to: int, data: bytes) -> None:
        sc = self.scenario
        t = self.now - GENESIS_TIME
        if any(p.separates(frm, to, t) for p in sc.partitions):
            return
        copies = 2 if self.rng.random() < sc.duplicate else 1
        for _ in range(copies):
            if self.rng.random() < sc.loss or self._congested(to, t):
                continue
            self.messages_sent += 1
            self._push(self.now + self.rng.randint(sc.min_delay, sc.max_delay), "deliver", (to, data))

    def _congested(self, to: int, t: int) -> bool:
        """Count one message towards `to`'s capacity in the current congestion window; True if over it."""
        for i, c in enumerate(self.scenario.congestion):
            if c.active(t):
                key = (i, to, t // c.window)
                self._window_counts[key] = self._window_counts.get(key, 0) + 1
                if self._window_counts[key] > c.capacity:
                    self.congestion_drops += 1
                    return True
        return False

    def _request_sync(self, node: SimNode, from_height: int) -> None:
        t = self.now - GENESIS_TIME
        byz = self.scenario.byzantine_nodes
        candidates = [
            p
            for p in self.nodes
            if p.index != node.index
            and p.alive
            and p.index not in byz
            and len(p.chain) >= from_height
            and not any(part.separates(node.index, p.index, t) for part in self.scenario.partitions)
        ]
        if not candidates:
            return
        peer = self.rng.choice(candidates)
        blocks = peer.chain[from_height - 1 : from_height - 1 + SYNC_BATCH]
        self._push(self.now + self.scenario.sync_delay, "sync", (node.index, blocks))

    def _on_commit(self, node: SimNode, block: Block, cert: Certificate) -> None:
        node.chain.append((block, cert))
        node.commit_times.append(self.now)
        node.wal = {k: m for k, m in node.wal.items() if m.height > block.height}
        if node.index in self.scenario.byzantine_nodes:
            return
        bid = block_id(block)
        if len(node.chain) != block.height:
            self.violations.append(f"node {node.index} committed height {block.height} as its block {len(node.chain)}")
        known = self._decided.setdefault(block.height, bid)
        if known != bid:
            self.violations.append(f"node {node.index} committed a different block at height {block.height}")
        reason = verify_certificate(cert, block.height, bid, self.validators, self._checker)
        if reason is not None:
            self.violations.append(f"node {node.index} height {block.height}: certificate invalid: {reason}")
        previous = GENESIS_HASH if block.height == 1 else block_id(node.chain[-2][0])
        if block.previous_hash != previous:
            self.violations.append(f"node {node.index} height {block.height}: previous hash does not chain")


def run(scenario: Scenario) -> SimResult:
    return Simulation(scenario).run()


__all__ = ["CHAIN_ID", "GENESIS_HASH", "SimNode", "SimResult", "Simulation", "run"]
