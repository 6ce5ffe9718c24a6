"""Re-broadcast timing and choice (protocols/consensus/rebroadcast.py), without a state machine around it."""

from __future__ import annotations

from protocols.consensus.messages import NIL, Step, block_id
from protocols.consensus.rebroadcast import Rebroadcaster, certificate_votes, resend
from protocols.consensus.votes import HeightMessages
from tests.consensus.helpers import block, certificate, keys, proposal, validator_set, vote

K = keys(4)
QUORUM = validator_set(4).quorum
INTERVAL = 100


def test_resends_only_after_a_whole_interval_without_progress() -> None:
    r = Rebroadcaster()
    r.note_state((1, 0, 0, True), now=1_000)
    assert r.on_timer(1_050, INTERVAL) == (False, 1_100)  # quiet for 50 ms only: wait for the rest
    assert r.on_timer(1_100, INTERVAL) == (True, 1_200)  # quiet for a whole interval: re-send, then wait again


def test_progress_restarts_the_interval_and_an_unchanged_state_does_not() -> None:
    r = Rebroadcaster()
    r.note_state((1, 0, 0, True), now=1_000)
    r.note_state((1, 0, 0, True), now=1_080)  # an input that changed nothing
    assert r.on_timer(1_100, INTERVAL)[0]
    r.note_state((1, 0, 1, True), now=1_150)  # we prevoted: progress
    assert r.on_timer(1_200, INTERVAL) == (False, 1_250)


def test_the_certificate_goes_to_a_laggard_once_per_height_while_the_height_runs() -> None:
    r = Rebroadcaster()
    assert not r.take_certificate_push(started=True)  # nobody is behind
    r.note_laggard()
    assert r.take_certificate_push(started=True)
    r.note_laggard()
    assert not r.take_certificate_push(started=True)  # it fetches the block by sync from here on
    r.new_height()
    r.note_laggard()
    assert r.take_certificate_push(started=True)


def test_an_idle_height_pushes_the_certificate_at_every_sign_of_a_laggard() -> None:
    """Idle, we send nothing else that would tell the laggard it is behind."""
    r = Rebroadcaster()
    for _ in range(3):
        r.note_laggard()
        assert r.take_certificate_push(started=False)


def test_certificate_votes_are_the_precommits_it_was_made_of() -> None:
    b = block()
    cert = certificate(b, K[:3])
    votes = certificate_votes(cert)
    assert [v.signature for v in votes] == list(cert.signatures)
    assert {(v.height, v.round, v.step, v.block_id) for v in votes} == {(1, 0, int(Step.PRECOMMIT), cert.block_id)}


def test_resend_takes_our_messages_of_this_round_only() -> None:
    old, current = vote(K[0], 1, 0, Step.PREVOTE, NIL), vote(K[0], 1, 1, Step.PREVOTE, NIL)
    own = {(0, int(Step.PREVOTE)): old, (1, int(Step.PREVOTE)): current}
    msgs = HeightMessages(QUORUM)
    assert resend(round=1, own=own, valid_value=None, valid_round=-1, msgs=msgs, own_key=K[0].public_key) == [current]


def test_resend_adds_the_polka_of_an_older_valid_value_but_not_our_own_share() -> None:
    b = block()
    msgs = HeightMessages(QUORUM)
    p = proposal(K[0], b)
    msgs.add_proposal(p)
    prevotes = [vote(k, 1, 0, Step.PREVOTE, block_id(b)) for k in K[:3]]
    for i, v in enumerate(prevotes):
        msgs.add_vote(i, v)
    out = resend(round=1, own={}, valid_value=b, valid_round=0, msgs=msgs, own_key=K[2].public_key)
    assert out == [p, *prevotes[:2]]
    assert resend(round=0, own={}, valid_value=b, valid_round=0, msgs=msgs, own_key=K[2].public_key) == []
