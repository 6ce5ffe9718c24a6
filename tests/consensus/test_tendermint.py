"""The state machine, rule by rule (line numbers of Algorithm 1), driven by hand-made messages."""

from __future__ import annotations

import dataclasses

import pytest

from protocols.consensus.actions import (
    Broadcast,
    Commit,
    RebroadcastTimer,
    RecordEvidence,
    RequestSync,
    ScheduleTimeout,
    Timeout,
    TimeoutKind,
    WaitTimer,
)
from protocols.consensus.blocks import genesis_tip, verify_certificate
from protocols.consensus.evidence import check_duplicate_vote
from protocols.consensus.messages import NIL, Proposal, Step, Vote, block_id
from protocols.consensus.tendermint import PROPOSE_TIMEOUT_MARGIN, Blame, InvalidMessage, Tendermint
from protocols.consensus.votes import FUTURE_ROUND_WINDOW
from protocols.crypto import Keypair, SignatureVerifier, sign
from protocols.sim.kvapp import KVApp
from tests.consensus.helpers import (
    CHAIN,
    CONFIG,
    GENESIS_HASH,
    PARAMS,
    T0,
    block,
    certificate,
    keys,
    machine,
    proposal,
    validator_set,
    vote,
)

K = keys(4)
TX = b"set a 1"


def broadcasts(actions: list) -> list:  # type: ignore[type-arg]
    return [a.message for a in actions if isinstance(a, Broadcast)]


def timeouts(actions: list) -> list[ScheduleTimeout]:  # type: ignore[type-arg]
    return [a for a in actions if isinstance(a, ScheduleTimeout) and not isinstance(a.timeout, RebroadcastTimer)]


def started_validator(me: int = 1, now: int = T0 + 10):  # type: ignore[no-untyped-def]
    m = machine(me=me)
    assert m.mempool is not None and m.mempool.add(TX) is None
    return m, m.start(now)


def test_line_11_proposer_proposes_a_fresh_block_and_line_22_prevotes_it() -> None:
    m, actions = started_validator(me=0)
    sent = broadcasts(actions)
    assert isinstance(sent[0], Proposal) and sent[0].block.txs == (TX,) and sent[0].valid_round == -1
    assert isinstance(sent[1], Vote) and sent[1].step == Step.PREVOTE and sent[1].block_id == block_id(sent[0].block)
    assert m.step == Step.PREVOTE


def test_line_19_non_proposer_schedules_timeout_propose() -> None:
    m, actions = started_validator(me=1)
    assert [t.timeout for t in timeouts(actions)] == [Timeout(TimeoutKind.PROPOSE, 1, 0)]
    assert timeouts(actions)[0].at == T0 + 10 + CONFIG.propose_timeout(0)


def test_a_height_from_proposal_to_commit() -> None:
    m, _ = started_validator(me=1)
    b = block(time=T0 + 10, txs=(TX,))
    bid = block_id(b)
    out = m.on_message(proposal(K[0], b), T0 + 20)
    assert broadcasts(out) == [vote(K[1], 1, 0, Step.PREVOTE, bid)]  # line 24
    m.on_message(vote(K[0], 1, 0, Step.PREVOTE, bid), T0 + 21)
    out = m.on_message(vote(K[2], 1, 0, Step.PREVOTE, bid), T0 + 22)
    assert broadcasts(out) == [vote(K[1], 1, 0, Step.PRECOMMIT, bid)]  # line 40
    assert m.locked_round == 0 and block_id(m.locked_value) == bid and m.valid_round == 0
    m.on_message(vote(K[0], 1, 0, Step.PRECOMMIT, bid), T0 + 23)
    out = m.on_message(vote(K[3], 1, 0, Step.PRECOMMIT, bid), T0 + 24)
    commits = [a for a in out if isinstance(a, Commit)]
    assert len(commits) == 1 and commits[0].block == b
    assert verify_certificate(commits[0].certificate, 1, bid, validator_set(4), SignatureVerifier(CHAIN)) is None
    assert m.height == 2 and m.locked_round == -1 and m.valid_value is None  # line 53
    assert m.app.state.values == {"a": 1}
    assert len(m.mempool) == 0


def test_a_commit_carries_what_the_application_returned_for_its_block() -> None:
    """The shell persists the block's result from the Commit action itself (no side queue to pop)."""
    m, _ = started_validator(me=1)
    apply_block = m.app.commit_block
    m.app.commit_block = lambda txs, time: (apply_block(txs, time), ("result of", txs))[1]  # type: ignore[method-assign]
    b = block(time=T0 + 10, txs=(TX,))
    bid = block_id(b)
    m.on_message(proposal(K[0], b), T0 + 20)
    for i, k in enumerate((K[0], K[2], K[3])):
        m.on_message(vote(k, 1, 0, Step.PREVOTE, bid), T0 + 21 + i)
    out = [a for i, k in enumerate((K[0], K[2], K[3])) for a in m.on_message(vote(k, 1, 0, Step.PRECOMMIT, bid), T0 + 30 + i)]
    assert [a.result for a in out if isinstance(a, Commit)] == [("result of", (TX,))]


def test_lines_57_61_65_timeouts_and_growing_durations() -> None:
    m, _ = started_validator(me=3)
    out = m.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 0), T0 + 400)
    assert broadcasts(out) == [vote(K[3], 1, 0, Step.PREVOTE, NIL)]  # line 59
    m.on_message(vote(K[0], 1, 0, Step.PREVOTE, b"\x07" * 32), T0 + 401)
    out = m.on_message(vote(K[1], 1, 0, Step.PREVOTE, b"\x08" * 32), T0 + 402)
    assert [t.timeout for t in timeouts(out)] == [Timeout(TimeoutKind.PREVOTE, 1, 0)]  # line 35
    out = m.on_timeout(Timeout(TimeoutKind.PREVOTE, 1, 0), T0 + 600)
    assert broadcasts(out) == [vote(K[3], 1, 0, Step.PRECOMMIT, NIL)]  # line 63
    m.on_message(vote(K[0], 1, 0, Step.PRECOMMIT, NIL), T0 + 601)
    out = m.on_message(vote(K[1], 1, 0, Step.PRECOMMIT, NIL), T0 + 602)
    assert [t.timeout for t in timeouts(out)] == [Timeout(TimeoutKind.PRECOMMIT, 1, 0)]  # line 48
    out = m.on_timeout(Timeout(TimeoutKind.PRECOMMIT, 1, 0), T0 + 800)
    assert m.round == 1 and m.step == Step.PROPOSE  # line 67
    # Round 1's proposer is validator 1; we wait for it longer than in round 0.
    assert timeouts(out)[0].at - (T0 + 800) == CONFIG.propose_timeout(1) > CONFIG.propose_timeout(0)
    # Stale timeouts do nothing.
    assert m.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 0), T0 + 900) == []


def test_line_44_polka_for_nil() -> None:
    m, _ = started_validator(me=1)
    m.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 0), T0 + 400)
    m.on_message(vote(K[0], 1, 0, Step.PREVOTE, NIL), T0 + 401)
    out = m.on_message(vote(K[2], 1, 0, Step.PREVOTE, NIL), T0 + 402)
    assert vote(K[1], 1, 0, Step.PRECOMMIT, NIL) in broadcasts(out)
    assert m.step == Step.PRECOMMIT and m.locked_round == -1


def lock_on_round_0(m):  # type: ignore[no-untyped-def]
    """Validator 3 locks on validator 0's block in round 0, the round ends without decision."""
    b = block(time=T0 + 10, txs=(TX,))
    m.on_message(proposal(K[0], b), T0 + 20)
    for k in (K[0], K[1]):
        m.on_message(vote(k, 1, 0, Step.PREVOTE, block_id(b)), T0 + 21)
    assert m.locked_round == 0
    for k in (K[0], K[1]):
        m.on_message(vote(k, 1, 0, Step.PRECOMMIT, NIL), T0 + 22)
    m.on_timeout(Timeout(TimeoutKind.PRECOMMIT, 1, 0), T0 + 300)
    assert m.round == 1
    return b


def test_line_23_a_locked_validator_prevotes_nil_for_another_fresh_block() -> None:
    m, _ = started_validator(me=3)
    lock_on_round_0(m)
    other = block(time=T0 + 200, txs=(b"set b 2",))
    out = m.on_message(proposal(K[1], other, round=1), T0 + 310)
    assert broadcasts(out) == [vote(K[3], 1, 1, Step.PREVOTE, NIL)]


def test_line_23_a_locked_validator_prevotes_its_locked_block() -> None:
    m, _ = started_validator(me=3)
    b = lock_on_round_0(m)
    # A proposer that missed the polka re-proposes the same block as fresh.
    out = m.on_message(proposal(K[1], b, round=1, valid_round=-1), T0 + 310)
    assert broadcasts(out) == [vote(K[3], 1, 1, Step.PREVOTE, block_id(b))]


def end_round_1_with_polka_for(m, other):  # type: ignore[no-untyped-def]
    m.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 1), T0 + 700)
    for k in (K[0], K[1], K[2]):
        m.on_message(vote(k, 1, 1, Step.PREVOTE, block_id(other)), T0 + 701)
    for k in (K[0], K[1], K[2]):
        m.on_message(vote(k, 1, 1, Step.PRECOMMIT, NIL), T0 + 702)
    m.on_timeout(Timeout(TimeoutKind.PRECOMMIT, 1, 1), T0 + 900)
    assert m.round == 2 and m.locked_round == 0


def test_line_28_reproposal_with_a_later_polka_unlocks() -> None:
    m, _ = started_validator(me=3)
    lock_on_round_0(m)
    # Round 1: another block gets a polka we do not take part in (we timed out to nil).
    other = block(time=T0 + 200, txs=(b"set b 2",))
    end_round_1_with_polka_for(m, other)
    # Round 2: validator 2 re-proposes `other` with valid_round 1 >= our lock round 0.
    out = m.on_message(proposal(K[2], other, round=2, valid_round=1), T0 + 910)
    assert broadcasts(out) == [vote(K[3], 1, 2, Step.PREVOTE, block_id(other))]  # line 30


def test_line_29_reproposal_with_an_older_polka_does_not_unlock() -> None:
    m, _ = started_validator(me=3)
    b = lock_on_round_0(m)
    other = block(time=T0 + 200, txs=(b"set b 2",))
    end_round_1_with_polka_for(m, b)  # a polka for our block in round 1 ...
    m.locked_round = 1  # ... which we took part in: locked at round 1
    # A re-proposal of another block citing a polka of round 0 < our lock round (an equivocating
    # validator's votes make that polka possible).
    out = m.on_message(proposal(K[2], other, round=2, valid_round=0), T0 + 910)
    assert broadcasts(out) == []  # line 28 waits for the polka of round 0
    for k in (K[0], K[1], K[2]):
        out += m.on_message(vote(k, 1, 0, Step.PREVOTE, block_id(other)), T0 + 911)
    assert broadcasts(out) == [vote(K[3], 1, 2, Step.PREVOTE, NIL)]  # line 32


def test_line_49_decides_from_an_earlier_round() -> None:
    m, _ = started_validator(me=3)
    b = lock_on_round_0(m)  # round 0 ended with nil precommits at our side
    assert m.height == 1
    out: list = []  # type: ignore[type-arg]
    for k in (K[0], K[1], K[2]):
        out += m.on_message(vote(k, 1, 1, Step.PRECOMMIT, block_id(b)), T0 + 401)
    # The block is known from round 0's proposal; round 1's precommits decide it.
    assert m.height == 2 and [a.block for a in out if isinstance(a, Commit)] == [b]


def test_line_55_round_skip_needs_f_plus_1_validators() -> None:
    m, _ = started_validator(me=1)
    m.on_message(vote(K[2], 1, 3, Step.PREVOTE, NIL), T0 + 20)
    assert m.round == 0  # one validator ahead could be Byzantine
    m.on_message(vote(K[3], 1, 5, Step.PRECOMMIT, NIL), T0 + 21)
    assert m.round == 3  # two validators at rounds >= 3: one of them is correct


def test_decision_waits_for_the_block_and_asks_for_sync() -> None:
    m, _ = started_validator(me=1)
    bid = b"\x05" * 32
    out: list = []  # type: ignore[type-arg]
    for k in (K[0], K[2], K[3]):
        out += m.on_message(vote(k, 1, 0, Step.PRECOMMIT, bid), T0 + 20)
    assert RequestSync(1) in out and m.height == 1


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: "not a message", "not a consensus message"),
        (lambda: vote(Keypair.from_name("outsider"), 1, 0, Step.PREVOTE, NIL), "not a validator"),
        (lambda: proposal(K[2], block()), "not from its proposer"),
        (lambda: Vote(1, 0, int(Step.PREVOTE), NIL, vote(K[2], 1, 1, Step.PREVOTE, NIL).signature), "bad signature"),
        (lambda: Vote(2, 0, int(Step.PREVOTE), NIL, vote(K[2], 1, 0, Step.PREVOTE, NIL).signature), "bad signature"),
        (lambda: sign(K[2], "other-chain", Vote(1, 0, int(Step.PREVOTE), NIL)), "bad signature"),
    ],
)
def test_invalid_messages_are_rejected_and_change_nothing(make, reason) -> None:  # type: ignore[no-untyped-def]
    m, _ = started_validator(me=1)
    before = m.snapshot()
    with pytest.raises(InvalidMessage, match=reason):
        m.on_message(make(), T0 + 20)
    assert m.snapshot() == before


def test_stale_messages_are_ignored() -> None:
    m, _ = started_validator(me=1)
    m.height = 5  # pretend we are further
    before = m.snapshot()
    assert m.on_message(vote(K[2], 3, 0, Step.PREVOTE, NIL), T0) == []
    assert m.snapshot() == before


def test_double_votes_are_recorded_as_evidence() -> None:
    m, _ = started_validator(me=1)
    a = vote(K[2], 1, 0, Step.PREVOTE, b"\x01" * 32)
    b = vote(K[2], 1, 0, Step.PREVOTE, NIL)
    assert m.on_message(a, T0 + 20) == []
    out = m.on_message(b, T0 + 21)
    ev = [x.evidence for x in out if isinstance(x, RecordEvidence)]
    assert len(ev) == 1 and (ev[0].first, ev[0].second) == (a, b)
    assert check_duplicate_vote(ev[0], validator_set(4), SignatureVerifier(CHAIN)) is None
    # Once per (validator, round, step); the same vote again is no news.
    assert m.on_message(vote(K[2], 1, 0, Step.PREVOTE, b"\x02" * 32), T0 + 22) == []
    assert m.on_message(a, T0 + 23) == []


def test_evidence_check_rejects_non_proofs() -> None:
    from protocols.consensus.messages import DuplicateVoteEvidence

    vs, v = validator_set(4), SignatureVerifier(CHAIN)
    a = vote(K[2], 1, 0, Step.PREVOTE, NIL)
    assert "same block" in check_duplicate_vote(DuplicateVoteEvidence(a, a), vs, v)
    other_validator = vote(K[3], 1, 0, Step.PREVOTE, b"\x01" * 32)
    assert "different validators" in check_duplicate_vote(DuplicateVoteEvidence(a, other_validator), vs, v)
    other_round = vote(K[2], 1, 1, Step.PREVOTE, b"\x01" * 32)
    assert "different (height" in check_duplicate_vote(DuplicateVoteEvidence(a, other_round), vs, v)
    forged = Vote(1, 0, int(Step.PREVOTE), b"\x01" * 32, a.signature)
    assert "invalid signature" in check_duplicate_vote(DuplicateVoteEvidence(a, forged), vs, v)


def test_memory_per_height_is_bounded_against_a_spamming_validator() -> None:
    m, _ = started_validator(me=1)
    for r in range(0, 60):
        for i in range(6):
            for step in (Step.PREVOTE, Step.PRECOMMIT):
                m.on_message(vote(K[3], 1, r, step, bytes([i + 1]) * 32), T0 + 20)
                m.on_message(vote(K[3], 2, r, step, bytes([i + 1]) * 32), T0 + 20)  # next height: buffered
    # Only rounds within the window are stored, one vote per (round, step) for unknown blocks.
    assert m.stored_messages <= 2 * (FUTURE_ROUND_WINDOW + 1) + 8
    assert m.round == 0


def test_catch_up_with_a_certified_block() -> None:
    m, _ = started_validator(me=1)
    b = block(time=T0 + 10, txs=(TX,))
    before = m.snapshot()
    with pytest.raises(InvalidMessage, match="needs 3"):
        m.on_decided_block(b, certificate(b, K[:2]), T0 + 30)
    with pytest.raises(InvalidMessage, match="expected 1"):
        m.on_decided_block(block(height=2), certificate(block(height=2), K[:3]), T0 + 30)
    assert m.snapshot() == before
    out = m.on_decided_block(b, certificate(b, K[1:]), T0 + 30)
    assert [a.block for a in out if isinstance(a, Commit)] == [b] and m.height == 2
    assert m.on_decided_block(b, certificate(b, K[1:]), T0 + 31) == []  # already decided


def test_an_out_of_order_sync_block_is_nobodys_fault_and_a_bad_one_the_senders() -> None:
    """The shell lowers a peer's score by `blame`, not by the wording of the reason."""
    m, _ = started_validator(me=1)
    b = block(time=T0 + 10, txs=(TX,))
    with pytest.raises(InvalidMessage) as ahead:
        m.on_decided_block(block(height=2), certificate(block(height=2), K[:3]), T0 + 30)
    assert ahead.value.blame is Blame.NOBODY
    with pytest.raises(InvalidMessage) as short:
        m.on_decided_block(b, certificate(b, K[:2]), T0 + 30)
    assert short.value.blame is Blame.SENDER


def test_next_height_messages_are_kept_until_we_get_there() -> None:
    m, _ = started_validator(me=3)
    b = block(time=T0 + 10, txs=(TX,))
    cert = certificate(b, K[:3])
    app = KVApp()
    app.commit_block(b.txs, b.time)
    b2 = block(height=2, time=T0 + 50, txs=(b"set z 9",), app=app, previous=block_id(b), cert=cert)
    m.on_message(proposal(K[0], b), T0 + 20)
    m.on_message(proposal(K[1], b2), T0 + 40)  # proposer of (2, 0) is validator 1; we are at height 1
    assert m.height == 1
    out = m.on_decided_block(b, cert, T0 + 45)
    assert m.height == 2 and vote(K[3], 2, 0, Step.PREVOTE, block_id(b2)) in broadcasts(out)


def test_rebroadcast_resends_our_messages_and_the_last_certificate_to_a_laggard() -> None:
    m, _ = started_validator(me=1)
    b = block(time=T0 + 10, txs=(TX,))
    m.on_message(proposal(K[0], b), T0 + 20)
    out = m.on_timeout(RebroadcastTimer(), T0 + 250)
    assert broadcasts(out) == []  # first tick: we made progress since the start
    out = m.on_timeout(RebroadcastTimer(), T0 + 500)
    assert vote(K[1], 1, 0, Step.PREVOTE, block_id(b)) in broadcasts(out)  # stuck for an interval
    assert any(isinstance(a, ScheduleTimeout) and isinstance(a.timeout, RebroadcastTimer) for a in out)
    m.on_decided_block(b, certificate(b, K[:3]), T0 + 600)
    m.on_timeout(RebroadcastTimer(), T0 + 750)
    out = m.on_timeout(RebroadcastTimer(), T0 + 1000)
    assert broadcasts(out) == []  # idle, and nobody showed it is behind: nothing to re-send
    m.on_message(vote(K[3], 1, 0, Step.PREVOTE, block_id(b)), T0 + 1100)  # validator 3 is still at height 1
    out = m.on_timeout(RebroadcastTimer(), T0 + 1250)
    assert {v.signature for v in broadcasts(out)} == set(certificate(b, K[:3]).signatures)
    out = m.on_timeout(RebroadcastTimer(), T0 + 1500)
    assert broadcasts(out) == []  # once per sign of a laggard


def test_a_forged_message_of_the_previous_height_is_rejected() -> None:
    m, _ = started_validator(me=1)
    b = block(time=T0 + 10, txs=(TX,))
    m.on_decided_block(b, certificate(b, K[:3]), T0 + 600)
    forged = dataclasses.replace(vote(K[3], 1, 0, Step.PREVOTE, block_id(b)), round=1)
    with pytest.raises(InvalidMessage):
        m.on_message(forged, T0 + 700)
    out = m.on_timeout(RebroadcastTimer(), T0 + 750)
    out += m.on_timeout(RebroadcastTimer(), T0 + 1000)
    assert broadcasts(out) == []


def test_no_block_while_nothing_waits_then_an_empty_block_at_the_deadline() -> None:
    app = KVApp()
    app.commit_block((f"timer t {T0 + 1000}".encode(),), T0)  # something waits on time at T0 + 1000
    m = machine(me=0, app=app)
    out = m.start(T0 + 10)
    assert not m.started and not broadcasts(out)
    wait = [t for t in timeouts(out) if isinstance(t.timeout, WaitTimer)]
    assert wait and wait[0].at == T0 + 1000
    out = m.on_timeout(wait[0].timeout, T0 + 1000)
    sent = broadcasts(out)
    assert isinstance(sent[0], Proposal) and sent[0].block.txs == () and sent[0].block.time == T0 + 1000


def test_nothing_at_all_without_transactions_or_deadlines() -> None:
    m = machine(me=0)
    out = m.start(T0 + 10)
    assert not m.started and broadcasts(out) == [] and timeouts(out) == []
    m.mempool.add(TX)
    out = m.on_txs_available(T0 + 20)
    assert m.started and isinstance(broadcasts(out)[0], Proposal)


def test_a_restarted_validator_keeps_its_lock_and_never_signs_twice() -> None:
    m, _ = started_validator(me=3)
    b = lock_on_round_0(m)
    wal = [proposal(K[0], b)] + [vote(k, 1, 0, Step.PREVOTE, block_id(b)) for k in (K[0], K[1], K[3])]
    wal += [vote(K[3], 1, 0, Step.PRECOMMIT, block_id(b))]
    fresh = machine(me=3, restore=wal)
    assert fresh.locked_round == 0 and block_id(fresh.locked_value) == block_id(b)
    fresh.mempool.add(TX)
    fresh.start(T0 + 1000)
    # Round 0 again: the proposal is now too old to be timely (it would prevote nil), but it re-sends
    # the prevote it signed before instead of signing a second, different one.
    out = fresh.on_timeout(Timeout(TimeoutKind.PROPOSE, 1, 0), T0 + 1400)
    prevotes = [v for v in broadcasts(out) if isinstance(v, Vote) and v.step == Step.PREVOTE]
    assert prevotes in ([], [vote(K[3], 1, 0, Step.PREVOTE, block_id(b))])
    assert fresh.snapshot()[2] >= Step.PREVOTE


def test_a_follower_decides_from_gossip_without_voting() -> None:
    follower = Tendermint(
        chain_id=CHAIN, validators=validator_set(4), app=KVApp(), config=CONFIG, params=PARAMS, tip=genesis_tip(GENESIS_HASH, T0)
    )
    follower.start(T0)
    assert follower.me is None
    b = block(time=T0 + 10, txs=(TX,))
    out = follower.on_message(proposal(K[0], b), T0 + 20)
    for k in K[:3]:
        out += follower.on_message(vote(k, 1, 0, Step.PRECOMMIT, block_id(b)), T0 + 30)
    assert broadcasts(out) == []
    assert [a.block for a in out if isinstance(a, Commit)] == [b] and follower.height == 2


def test_an_invalid_proposal_does_not_start_an_idle_height() -> None:
    m = machine(me=1)
    m.start(T0)
    assert not m.started
    m.on_message(proposal(K[0], block(txs=())), T0 + 5)  # empty block while nothing waits: invalid
    assert not m.started
    m.on_message(proposal(K[0], block(txs=(TX,))), T0 + 6)  # a real block: worth taking part
    assert m.started and m.step == Step.PREVOTE


def test_the_propose_timeout_follows_the_median_proposal_delay() -> None:
    m, _ = started_validator(me=1)
    configured = CONFIG.propose_timeout(0)
    assert m._propose_timeout(0) == configured  # nothing measured yet
    m._proposal_delays.extend([1_000] * 5)  # a network where proposals take a second
    assert m._propose_timeout(0) == PROPOSE_TIMEOUT_MARGIN * 1_000
    assert m._propose_timeout(2) == PROPOSE_TIMEOUT_MARGIN * 1_000 + 2 * CONFIG.timeout_propose_delta
    # Byzantine proposers that send just before the timeout are a minority of the samples: no effect.
    m._proposal_delays.extend([100_000] * 4)
    assert m._propose_timeout(0) == PROPOSE_TIMEOUT_MARGIN * 1_000
    m._proposal_delays.extend([10] * 9)  # a fast network again: back to the configured value
    assert m._propose_timeout(0) == configured
