"""Four Tendermint validators, the last one Byzantine and driven by whoever holds this object.

Validators 0-2 are correct state machines over the simulator's key-value application; validator 3 runs
no state machine: its key signs whatever the driver (a fuzzer, a property test) wants it to send. The
driver also owns the network and the clocks: which pending message is delivered to whom and when, which
are duplicated, which timer fires, how far time advances, which decided blocks a correct validator is
offered over sync. That is every freedom an asynchronous network and f = 1 faulty validator have.

Oracles checked on every step (they raise OracleViolation):
- agreement: no two different blocks are committed at one height, by any correct validators;
- each correct validator commits heights in order, one block per height;
- a message or sync block refused with `InvalidMessage` leaves the validator's state unchanged;
- no other exception escapes a state machine;
- a validator's stored messages stay bounded (a Byzantine flood cannot grow memory without bound).
"""

from __future__ import annotations

import hashlib
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
from protocols.consensus.blocks import genesis_tip
from protocols.consensus.mempool import Mempool
from protocols.consensus.messages import Block, Certificate, Proposal, Vote, block_id
from protocols.consensus.tendermint import InvalidMessage, Tendermint
from protocols.consensus.validators import ValidatorSet
from protocols.crypto import Keypair, SignatureVerifier
from protocols.fuzz.oracles import require
from protocols.sim.kvapp import KVApp
from protocols.sim.scenario import GENESIS_TIME, SIM_CONSENSUS, SIM_PARAMS

CHAIN = "pocnet-fuzz"
GENESIS_HASH = hashlib.sha256(b"pocnet-fuzz-genesis").digest()
VALIDATORS = 4
BYZANTINE = VALIDATORS - 1
CORRECT = range(BYZANTINE)
# Far above what a correct run stores (a few rounds of 4 validators' messages per height): beyond it the
# per-validator bounds of the vote store are broken.
MAX_STORED_MESSAGES = 2_000
KEYS = tuple(Keypair.from_name(f"fuzz-validator-{i}") for i in range(VALIDATORS))


@dataclass
class ByzantineCluster:
    """The network and clocks of three correct validators and one Byzantine key (see the module doc)."""

    machines: list[Tendermint] = field(default_factory=list)
    now: int = GENESIS_TIME
    pending: list[tuple[int, Proposal | Vote]] = field(default_factory=list)  # (to, message) not yet delivered
    sent: list[Proposal | Vote] = field(default_factory=list)  # every message a correct validator sent
    timers: list[tuple[int, Timer]] = field(default_factory=list)
    decided: dict[int, bytes] = field(default_factory=dict)  # height -> block id, across validators
    committed: dict[int, int] = field(default_factory=dict)  # validator -> the last height it committed
    certified: list[tuple[Block, Certificate]] = field(default_factory=list)  # decided blocks, for sync
    sync_requests: int = 0
    evidence: int = 0

    @classmethod
    def start(cls, txs: tuple[bytes, ...] = (b"set a 1",)) -> ByzantineCluster:
        cluster = cls()
        validators = ValidatorSet([k.public_key for k in KEYS])
        for i in CORRECT:
            app = KVApp()
            machine = Tendermint(
                chain_id=CHAIN, validators=validators, app=app, config=SIM_CONSENSUS, params=SIM_PARAMS,
                tip=genesis_tip(GENESIS_HASH, GENESIS_TIME), keypair=KEYS[i], mempool=Mempool(app),
                verifier=SignatureVerifier(CHAIN),
            )
            for tx in txs:
                machine.mempool.add(tx)  # type: ignore[union-attr]
            cluster.machines.append(machine)
        for i, machine in enumerate(cluster.machines):
            cluster.perform(i, machine.start(cluster.now))
        return cluster

    @property
    def byzantine_key(self) -> Keypair:
        return KEYS[BYZANTINE]

    def perform(self, i: int, actions: list[Action]) -> None:
        """Carry out validator i's actions and check agreement on every commit."""
        for action in actions:
            if isinstance(action, Broadcast):
                self.sent.append(action.message)
                self.pending += [(j, action.message) for j in CORRECT if j != i]
            elif isinstance(action, ScheduleTimeout):
                self.timers.append((i, action.timeout))
            elif isinstance(action, Commit):
                self._check_commit(i, action.block, action.certificate)
            elif isinstance(action, RequestSync):
                self.sync_requests += 1
            elif isinstance(action, RecordEvidence):
                self.evidence += 1
        require(self.machines[i].stored_messages <= MAX_STORED_MESSAGES,
                f"validator {i} stores {self.machines[i].stored_messages} messages")

    def _check_commit(self, i: int, block: Block, certificate: Certificate) -> None:
        bid = block_id(block)
        require(self.decided.setdefault(block.height, bid) == bid, f"two different blocks committed at height {block.height}")
        last = self.committed.get(i, 0)
        require(block.height == last + 1, f"validator {i} committed height {block.height} after {last}")
        self.committed[i] = block.height
        if all(b.height != block.height for b, _ in self.certified):
            self.certified.append((block, certificate))

    def deliver(self, to: int, message: Proposal | Vote) -> str:
        """Hand a message to correct validator `to`; returns "accepted" or the rejection reason."""
        machine = self.machines[to]
        before = machine.snapshot()
        try:
            self.perform(to, machine.on_message(message, self.now))
        except InvalidMessage as exc:
            require(machine.snapshot() == before, f"validator {to} changed state on a message it refused ({exc.reason})")
            return exc.reason
        return "accepted"

    def fire(self, k: int) -> None:
        """Fire pending timer number k (any order: a timer may fire late, never early, in real time)."""
        i, timeout = self.timers.pop(k)
        self.perform(i, self.machines[i].on_timeout(timeout, self.now))

    def offer_sync(self, to: int, block: Block, certificate: Certificate) -> str:
        """Offer a decided block, as the sync protocol would; returns "accepted" or the rejection reason."""
        machine = self.machines[to]
        before = machine.snapshot()
        try:
            self.perform(to, machine.on_decided_block(block, certificate, self.now))
        except InvalidMessage as exc:
            require(machine.snapshot() == before, f"validator {to} changed state on a sync block it refused ({exc.reason})")
            return exc.reason
        return "accepted"
