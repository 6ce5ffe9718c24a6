"""The `consensus` target: a schedule for three correct Tendermint validators and a Byzantine fourth."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import msgpack

from node.fuzz.mutators import pack_tree, unpack_tree
from node.fuzz.targets.base import Target, feature
from protocols.consensus.blocks import make_certificate
from protocols.consensus.messages import (
    NIL,
    Block,
    Certificate,
    Proposal,
    Step,
    Vote,
    block_id,
    decode_message,
)
from protocols.crypto import sign
from protocols.encoding import DecodeError, encode
from protocols.fuzz.byzantine import BYZANTINE, CHAIN, CORRECT, KEYS, ByzantineCluster
from protocols.sim.scenario import SIM_PARAMS

# A schedule longer than this is cut: a few heights' worth of steps, and each input stays fast.
MAX_STEPS = 300
# Seeds: random schedules of this many steps, and how many of them.
SEED_STEPS = 120
SEED_PROGRAMS = 12
Op = list[Any]
BLOCK_VARIANTS = ("valid", "duplicate-txs", "too-many-txs", "bad-tx", "no-previous-commit", "old-time", "wrong-state",
                  "wrong-parent")
SYNC_VARIANTS = ("real", "weakened-certificate", "other-block", "forged-certificate")


def _int(op: Op, i: int) -> int:
    """Argument i of a step as a non-negative int (missing or not an int: 0), so that any tree runs."""
    value = op[i] if i < len(op) else 0
    return abs(value) if type(value) is int else 0


class _Run:
    """One schedule's execution on a fresh cluster; each step returns a feature."""

    def __init__(self) -> None:
        self.cluster = ByzantineCluster.start()

    def step(self, op: Op) -> str:
        code = _int(op, 0) % len(STEPS)
        name, run = STEPS[code]
        return feature(name, run(self, op))

    def _targets(self, a: int) -> list[int]:
        """Correct validator a % 3, or all three for a % 4 == 3 (a Byzantine broadcast)."""
        return list(CORRECT) if a % 4 == 3 else [a % len(CORRECT)]

    def deliver(self, op: Op) -> str:
        c = self.cluster
        if not c.pending:
            return "nothing"
        to, message = c.pending.pop(_int(op, 1) % len(c.pending))
        return f"{type(message).__name__} {c.deliver(to, message)}"

    def duplicate(self, op: Op) -> str:
        """Deliver again something some validator sent (gossip duplicates and reorders)."""
        c = self.cluster
        if not c.sent:
            return "nothing"
        message = c.sent[_int(op, 1) % len(c.sent)]
        return f"{type(message).__name__} {c.deliver(_int(op, 2) % len(CORRECT), message)}"

    def fire(self, op: Op) -> str:
        c = self.cluster
        if not c.timers:
            return "nothing"
        c.fire(_int(op, 1) % len(c.timers))
        return "fired"

    def advance(self, op: Op) -> str:
        self.cluster.now += _int(op, 1) % 2_000
        return "advanced"

    def byzantine_vote(self, op: Op) -> str:
        c = self.cluster
        to = self._targets(_int(op, 1))
        height = max(1, c.machines[to[0]].height + _int(op, 2) % 3 - 1)
        known = [block_id(m.block) for m in c.sent if isinstance(m, Proposal)]
        choice = _int(op, 5) % 3
        bid = NIL if choice == 0 or not known else known[_int(op, 6) % len(known)] if choice == 1 else bytes([_int(op, 6) % 256]) * 32
        vote = sign(KEYS[BYZANTINE], CHAIN, Vote(height, _int(op, 3) % 6, int((Step.PREVOTE, Step.PRECOMMIT)[_int(op, 4) % 2]), bid))
        return " ".join(sorted({c.deliver(i, vote) for i in to}))

    def byzantine_message(self, op: Op) -> str:
        """A message tree from the schedule (where mutations land), decoded and re-signed by the Byzantine key."""
        c = self.cluster
        tree = op[2] if len(op) > 2 else None
        try:
            message = decode_message(pack_tree(tree))
        except DecodeError as exc:
            return f"undecodable {exc.reason.split(':')[0]}"
        except (OverflowError, ValueError, TypeError):
            return "unpackable"
        signed = sign(KEYS[BYZANTINE], CHAIN, message)
        return " ".join(sorted({c.deliver(i, signed) for i in self._targets(_int(op, 1))}))

    def byzantine_proposal(self, op: Op) -> str:
        """A block of its own for the target's height, proposed by the Byzantine validator for some round:
        a valid conflicting value (equivocation against the correct proposer), or one broken in one way."""
        c = self.cluster
        to = self._targets(_int(op, 1))
        machine = c.machines[to[0]]
        tip = machine.tip
        txs: tuple[bytes, ...] = (f"set b {_int(op, 3) % 10}".encode(),) if _int(op, 4) % 4 else ()
        block = Block(tip.height + 1, max(c.now, tip.time + 1), tip.block_id, machine.app.state_digest(), txs, tip.certificate)
        variant = BLOCK_VARIANTS[_int(op, 6) % len(BLOCK_VARIANTS)]
        if variant == "duplicate-txs":
            block = replace(block, txs=(b"set d 1", b"set d 1"))
        elif variant == "too-many-txs":
            block = replace(block, txs=tuple(f"set m {i}".encode() for i in range(SIM_PARAMS.max_block_txs + 1)))
        elif variant == "bad-tx":
            block = replace(block, txs=(b"not a kv transaction",))
        elif variant == "no-previous-commit":
            block = replace(block, previous_commit=None)
        elif variant == "old-time":
            block = replace(block, time=tip.time)
        elif variant == "wrong-state":
            block = replace(block, state_digest=bytes(32))
        elif variant == "wrong-parent":
            block = replace(block, previous_hash=bytes(32))
        round = _int(op, 2) % 6
        valid_round = (_int(op, 5) % (round + 1)) - 1
        proposal = sign(KEYS[BYZANTINE], CHAIN, Proposal(block.height, round, valid_round, block))
        return f"{variant} " + " ".join(sorted({c.deliver(i, proposal) for i in to}))

    def sync_block(self, op: Op) -> str:
        """A decided block offered over sync: a real one, or one with a weakened or forged certificate."""
        c = self.cluster
        if not c.certified:
            return "nothing"
        block, cert = c.certified[_int(op, 2) % len(c.certified)]
        variant = _int(op, 3) % len(SYNC_VARIANTS)
        if variant == 1:
            cert = Certificate(cert.height, cert.round, cert.block_id, cert.signatures[:-1])
        elif variant == 2:
            block = Block(block.height, block.time + 1, block.previous_hash, block.state_digest, block.txs, block.previous_commit)
        elif variant == 3:
            forged = Block(block.height, block.time, block.previous_hash, block.state_digest, (b"set z 9",), block.previous_commit)
            vote = sign(KEYS[BYZANTINE], CHAIN, Vote(forged.height, 0, int(Step.PRECOMMIT), block_id(forged)))
            block, cert = forged, make_certificate([vote])
        return f"{SYNC_VARIANTS[variant]} {c.offer_sync(_int(op, 1) % len(CORRECT), block, cert)}"

    def add_tx(self, op: Op) -> str:
        c = self.cluster
        i = _int(op, 1) % len(CORRECT)
        mempool = c.machines[i].mempool
        reason = mempool.add(f"set k{_int(op, 2) % 5} {_int(op, 3) % 100}".encode())  # type: ignore[union-attr]
        c.perform(i, c.machines[i].on_txs_available(c.now))
        return reason or "added"


STEPS: list[tuple[str, Callable[[_Run, Op], str]]] = [
    ("deliver", _Run.deliver),
    ("deliver", _Run.deliver),
    ("deliver", _Run.deliver),
    ("duplicate", _Run.duplicate),
    ("fire", _Run.fire),
    ("advance", _Run.advance),
    ("byzantine-vote", _Run.byzantine_vote),
    ("byzantine-message", _Run.byzantine_message),
    ("byzantine-proposal", _Run.byzantine_proposal),
    ("sync-block", _Run.sync_block),
    ("add-tx", _Run.add_tx),
]


class ConsensusTarget(Target):
    """Tendermint with 3 correct validators and a fuzzer-controlled Byzantine one: schedules of delivery,
    duplication, timers, time, Byzantine votes and proposals, re-signed mutated messages, forged sync blocks.

    Input: a msgpack array of steps, each an array `[step, arguments...]` (see STEPS); a Byzantine
    message step carries a message tree that mutations change and the target re-signs with the Byzantine
    key. Every input runs on a fresh cluster (protocols/fuzz/byzantine.py).
    Oracles, on every step:
    - no two different blocks committed at one height; each validator commits heights in order;
    - a message or sync block refused with InvalidMessage leaves the validator's state unchanged;
    - no exception but InvalidMessage escapes a state machine;
    - stored messages stay bounded.
    """

    name = "consensus"

    def seeds(self) -> list[bytes]:
        cluster = ByzantineCluster.start()
        proposal = next(m for _, m in cluster.pending if isinstance(m, Proposal)) if cluster.pending else None
        trees = [unpack_tree(encode(sign(KEYS[BYZANTINE], CHAIN, Vote(1, 0, int(Step.PREVOTE), NIL))))]
        if proposal is not None:
            trees.append(unpack_tree(encode(proposal)))
        seeds = []
        for n in range(SEED_PROGRAMS):
            rng = random.Random(n)
            program: list[Op] = []
            for _ in range(SEED_STEPS):
                code = rng.randrange(len(STEPS))
                op: Op = [code, *(rng.randrange(1_000) for _ in range(6))]
                if STEPS[code][0] == "byzantine-message":
                    op[2] = rng.choice(trees)
                program.append(op)
            seeds.append(msgpack.packb(program, use_bin_type=True))
        return seeds

    def execute(self, data: bytes) -> set[str]:
        program = unpack_tree(data)
        if not isinstance(program, list):
            return {"not a schedule"}
        run = _Run()
        features = {run.step(op if isinstance(op, list) else [op]) for op in program[:MAX_STEPS]}
        heights = [m.height for m in run.cluster.machines]
        rounds = [m.round for m in run.cluster.machines]
        features.add(f"heights {min(heights)}-{max(heights)}")
        features.add(f"max round {min(max(rounds), 8)}")
        if run.cluster.evidence:
            features.add("evidence")
        if run.cluster.sync_requests:
            features.add("sync requested")
        return features
