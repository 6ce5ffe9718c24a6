"""Fuzzing the consensus boundary: random and mutated messages are rejected cleanly (DecodeError or
InvalidMessage, nothing else), a rejected message changes nothing, and under a hypothesis-chosen
schedule with a Byzantine validator sending arbitrary signed messages, correct validators never commit
different blocks at one height. `derandomize=True` keeps CI deterministic."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.consensus.messages import NIL, Block, ConsensusMessage, Proposal, Step, Vote, block_id, decode_message
from protocols.consensus.tendermint import InvalidMessage, Tendermint
from protocols.crypto import Signature, sign
from protocols.encoding import DecodeError, decode, encode
from protocols.fuzz.byzantine import CHAIN as BYZANTINE_CHAIN
from protocols.fuzz.byzantine import ByzantineCluster
from tests.consensus.helpers import CHAIN, T0, block, keys, machine, proposal, vote

K = keys(4)
FUZZ = settings(derandomize=True, deadline=None, max_examples=150, suppress_health_check=list(HealthCheck))


def started() -> Tendermint:
    m = machine(me=1)
    m.mempool.add(b"set a 1")  # type: ignore[union-attr]
    m.start(T0)
    return m


def samples() -> list[bytes]:
    b = block(time=T0 + 5)
    return [
        encode(proposal(K[0], b)),
        encode(vote(K[2], 1, 0, Step.PREVOTE, block_id(b))),
        encode(vote(K[3], 1, 0, Step.PRECOMMIT, NIL)),
    ]


def feed(m: Tendermint, data: bytes) -> None:
    """Decode and deliver; the only acceptable failures are the two rejection types."""
    try:
        msg = decode_message(data)
    except DecodeError:
        return
    before = m.snapshot()
    try:
        m.on_message(msg, T0 + 10)
    except InvalidMessage:
        assert m.snapshot() == before


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    feed(started(), data)


@FUZZ
@given(
    st.integers(0, 2),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
    st.booleans(),
)
def test_mutated_bytes(which: int, edits: list[tuple[int, int]], truncate: bool) -> None:
    data = bytearray(samples()[which])
    for pos, value in edits:
        data[pos % len(data)] = value
    if truncate:
        data = data[: len(data) // 2]
    feed(started(), bytes(data))


ints = st.one_of(st.integers(-3, 5), st.integers(0, 2**64 + 5), st.just(2**31 - 1))
raw_values = st.recursive(
    st.one_of(st.none(), st.booleans(), ints, st.binary(max_size=40), st.text(max_size=5)),
    lambda inner: st.lists(inner, max_size=8),
    max_leaves=30,
)


@FUZZ
@given(st.integers(0, 2), st.integers(0, 9), raw_values)
def test_mutated_fields(which: int, field: int, value: object) -> None:
    """Replace one field of a valid message's array with an arbitrary msgpack value."""
    raw = msgpack.unpackb(samples()[which], raw=False)
    raw[field % len(raw)] = value
    try:
        data = msgpack.packb(raw, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return
    feed(started(), data)


def test_strict_decoder_rejects_an_unhashable_union_tag() -> None:
    raw = msgpack.unpackb(samples()[0], raw=False)
    raw[0] = []
    with pytest.raises(DecodeError):
        decode(ConsensusMessage, msgpack.packb(raw, use_bin_type=True))


block_ids = st.one_of(st.just(NIL), st.binary(min_size=32, max_size=32))


@st.composite
def wild_messages(draw: st.DrawFn) -> Proposal | Vote:
    """Well-formed messages with arbitrary content, validly signed by any validator (or badly signed)."""
    signer = K[draw(st.integers(0, 3))]
    height = draw(st.integers(1, 3))
    round = draw(st.integers(0, 12))
    if draw(st.booleans()):
        msg: Proposal | Vote = Vote(height, round, draw(st.sampled_from([1, 2])), draw(block_ids))
    else:
        hash32 = st.binary(min_size=32, max_size=32)
        txs = tuple(draw(st.lists(st.binary(max_size=12), max_size=3)))
        b = Block(height, draw(st.integers(0, T0 * 2)), draw(hash32), draw(hash32), txs, None)
        msg = Proposal(height, round, draw(st.integers(-1, round - 1)), b)
    if draw(st.booleans()):
        return sign(signer, CHAIN, msg)
    return dataclasses.replace(msg, signature=Signature(signer.public_key, draw(st.binary(min_size=64, max_size=64))))


@FUZZ
@given(st.lists(wild_messages(), max_size=25))
def test_wild_messages_never_crash_and_rejections_change_nothing(msgs: list[Proposal | Vote]) -> None:
    m = started()
    for msg in msgs:
        before = m.snapshot()
        try:
            m.on_message(msg, T0 + 10)
        except InvalidMessage:
            assert m.snapshot() == before
    assert m.stored_messages < 200


@FUZZ
@given(st.data())
def test_safety_under_fuzzed_schedules_with_a_byzantine_validator(data: st.DataObject) -> None:
    """The cluster (protocols/fuzz/byzantine.py, also the `pocnet fuzz consensus` target's) checks
    agreement on every commit and that refused messages change nothing."""
    c = ByzantineCluster.start()
    for _ in range(data.draw(st.integers(10, 120), label="steps")):
        c.now += data.draw(st.integers(0, 60))
        kind = data.draw(st.sampled_from(["deliver", "deliver", "deliver", "duplicate", "timer", "byzantine"]))
        if kind in ("deliver", "duplicate") and c.pending:
            k = data.draw(st.integers(0, len(c.pending) - 1))
            to, msg = c.pending[k] if kind == "duplicate" else c.pending.pop(k)
            c.deliver(to, msg)
        elif kind == "timer" and c.timers:
            c.fire(data.draw(st.integers(0, len(c.timers) - 1)))
        elif kind == "byzantine":
            to = data.draw(st.integers(0, 2))
            known = [block_id(m.block) for _, m in c.pending if isinstance(m, Proposal)]
            height = c.machines[to].height
            round = data.draw(st.integers(0, 4))
            bid = data.draw(st.one_of(st.just(NIL), st.sampled_from(known) if known else st.just(NIL), block_ids))
            step = data.draw(st.sampled_from([Step.PREVOTE, Step.PRECOMMIT]))
            c.deliver(to, sign(c.byzantine_key, BYZANTINE_CHAIN, Vote(height, round, int(step), bid)))
    assert all(m.height >= 1 for m in c.machines)
