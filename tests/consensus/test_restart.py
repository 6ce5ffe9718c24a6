"""Restart safety: a validator that forgets its lock after a crash acts like a second Byzantine one.

The schedule below (n = 4, validator 3 Byzantine) makes validator 1 lock on block v and precommit it,
validator 2 decide v, then validator 1 crash and restart. Restarted without its write-ahead log, it
re-votes freely and, with the Byzantine validator, lets validator 0 decide another block at the same
height. Restarted with the log (`restore=`), it keeps its lock and its signed votes, and agreement holds.
"""

from __future__ import annotations

from protocols.consensus.actions import Broadcast, Commit, ScheduleTimeout, Timeout, TimeoutKind
from protocols.consensus.messages import NIL, Proposal, Step, Vote, block_id
from protocols.consensus.tendermint import Tendermint
from tests.consensus.helpers import T0, keys, machine, vote

K = keys(4)
TX = b"set a 1"


class Node:
    """A machine plus what it sent and what it decided, fed by hand."""

    def __init__(self, m: Tendermint) -> None:
        self.m = m
        self.sent: list[Proposal | Vote] = []
        self.timers: list[ScheduleTimeout] = []
        self.decided: list[bytes] = []
        self.wal: list[Proposal | Vote] = []

    def take(self, actions: list) -> None:  # type: ignore[type-arg]
        for a in actions:
            if isinstance(a, Broadcast):
                self.sent.append(a.message)
                self.wal.append(a.message)
            elif isinstance(a, ScheduleTimeout):
                self.timers.append(a)
            elif isinstance(a, Commit):
                self.decided.append(block_id(a.block))

    def start(self, now: int) -> None:
        self.m.mempool.add(TX)  # type: ignore[union-attr]
        self.take(self.m.start(now))

    def receive(self, msg: Proposal | Vote, now: int) -> None:
        self.wal.append(msg)
        self.take(self.m.on_message(msg, now))

    def fire(self, kind: TimeoutKind, now: int) -> None:
        """Fire the pending timeouts of this kind for the current (height, round)."""
        for t in [t for t in self.timers if isinstance(t.timeout, Timeout) and t.timeout.kind is kind
                  and t.timeout.round == self.m.round]:
            self.timers.remove(t)
            self.take(self.m.on_timeout(t.timeout, now))

    def last(self, step: Step | None = None) -> Proposal | Vote:
        if step is None:
            return [m for m in self.sent if isinstance(m, Proposal)][-1]
        return [m for m in self.sent if isinstance(m, Vote) and m.step == step][-1]


def schedule(with_wal: bool) -> tuple[Node, Node, bytes]:
    d, a, c = Node(machine(me=0)), Node(machine(me=1)), Node(machine(me=2))
    for node in (d, a, c):
        node.start(T0)
    # Round 0: validator 0 proposes v; validators 1 and 2 prevote it, and so does the Byzantine 3.
    p = d.last()
    v = block_id(p.block)  # type: ignore[union-attr]
    for node in (a, c):
        node.receive(p, T0 + 5)
    a.receive(c.last(Step.PREVOTE), T0 + 6)
    c.receive(a.last(Step.PREVOTE), T0 + 6)
    for node in (a, c):
        node.receive(vote(K[3], 1, 0, Step.PREVOTE, v), T0 + 7)
    assert a.m.locked_round == 0 and c.m.locked_round == 0
    # Validator 2 decides v with the precommits of 1, 2 and the Byzantine 3.
    c.receive(a.last(Step.PRECOMMIT), T0 + 8)
    c.receive(vote(K[3], 1, 0, Step.PRECOMMIT, v), T0 + 8)
    assert c.decided == [v]
    # Validator 1 crashes and restarts, with or without its log. Validator 0 saw nothing but its own
    # prevote; the Byzantine validator tells it "nil".
    restarted = Node(machine(me=1, restore=a.wal if with_wal else ()))
    restarted.start(T0 + 100)
    a = restarted
    a.fire(TimeoutKind.PROPOSE, T0 + 400)  # round 0 again for the restarted validator
    d.receive(vote(K[3], 1, 0, Step.PREVOTE, NIL), T0 + 401)
    d.receive(a.last(Step.PREVOTE), T0 + 402)
    a.receive(d.last(Step.PREVOTE), T0 + 402)
    a.receive(vote(K[3], 1, 0, Step.PREVOTE, NIL), T0 + 402)
    for node in (a, d):
        node.fire(TimeoutKind.PREVOTE, T0 + 600)
    d.receive(a.last(Step.PRECOMMIT), T0 + 601)
    a.receive(d.last(Step.PRECOMMIT), T0 + 601)
    for node in (a, d):
        node.receive(vote(K[3], 1, 0, Step.PRECOMMIT, NIL), T0 + 602)
        node.fire(TimeoutKind.PRECOMMIT, T0 + 800)
    assert a.m.round == 1 and d.m.round == 1
    # Round 1: validator 1 proposes; 0, 1 and the Byzantine 3 prevote and precommit whatever it is.
    p1 = a.last()
    d.receive(p1, T0 + 801)
    d.receive(a.last(Step.PREVOTE), T0 + 802)
    a.receive(d.last(Step.PREVOTE), T0 + 802)
    proposed = block_id(p1.block)  # type: ignore[union-attr]
    for node in (a, d):
        node.receive(vote(K[3], 1, 1, Step.PREVOTE, proposed), T0 + 803)
    if a.m.step == Step.PRECOMMIT:
        d.receive(a.last(Step.PRECOMMIT), T0 + 804)
    for node in (a, d):
        node.receive(vote(K[3], 1, 1, Step.PRECOMMIT, proposed), T0 + 805)
    return d, c, v


def test_without_the_log_a_restart_breaks_agreement() -> None:
    d, c, v = schedule(with_wal=False)
    assert d.decided and d.decided != c.decided  # the failure the log exists to prevent


def test_with_the_log_agreement_holds() -> None:
    d, c, v = schedule(with_wal=True)
    assert d.decided in ([], [v])
