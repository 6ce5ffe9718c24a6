"""valid(v) and commit certificates."""

from __future__ import annotations

from dataclasses import replace

from protocols.consensus.blocks import ChainTip, check_block, check_timely, genesis_tip, verify_certificate
from protocols.consensus.messages import Certificate, Step, block_id
from protocols.crypto import SignatureVerifier
from protocols.sim.kvapp import KVApp
from tests.consensus.helpers import CHAIN, GENESIS_HASH, PARAMS, T0, block, certificate, keys, validator_set, vote

VS = validator_set(4)


def check(b, tip=None, app=None):  # type: ignore[no-untyped-def]
    app = app or KVApp()
    return check_block(b, tip or genesis_tip(GENESIS_HASH, T0), app, VS, SignatureVerifier(CHAIN), PARAMS)


def test_a_good_first_block_is_valid() -> None:
    assert check(block()) is None


def test_block_rules() -> None:
    b = block()
    assert "height" in check(replace(b, height=2))
    assert "previous hash" in check(replace(b, previous_hash=b"\x00" * 32))
    assert "not after" in check(replace(b, time=T0))
    assert "state digest" in check(replace(b, state_digest=b"\x00" * 32))
    assert "duplicate" in check(replace(b, txs=(b"set a 1", b"set a 1")))
    assert "malformed" in check(replace(b, txs=(b"nonsense",)))
    assert "stale-cas" in check(replace(b, txs=(b"cas a 5 6",)))
    assert "previous commit" in check(replace(b, previous_commit=certificate(b, keys(4)[:3])))


def test_the_chains_size_limits() -> None:
    big = b"set a " + b"1" * PARAMS.max_tx_bytes
    assert f"exceeds {PARAMS.max_tx_bytes}" in check(block(txs=(big,)))
    many = tuple(f"set k{i} 1".encode() for i in range(PARAMS.max_block_txs + 1))
    assert f"exceed {PARAMS.max_block_txs}" in check(block(txs=many))


def test_second_block_needs_the_certificate_of_the_first() -> None:
    ks = keys(4)
    b1 = block()
    cert = certificate(b1, ks[:3])
    app = KVApp()
    app.commit_block(b1.txs, b1.time)
    tip = ChainTip(1, block_id(b1), b1.time, cert)
    b2 = block(height=2, time=b1.time + 5, previous=block_id(b1), cert=cert, app=app)
    assert check(b2, tip, app) is None
    assert "missing certificate" in check(replace(b2, previous_commit=None), tip, app)
    weak = certificate(b1, ks[:2])
    assert "needs 3" in check(replace(b2, previous_commit=weak), tip, app)


def test_empty_blocks_only_when_a_deadline_is_due_and_not_too_often() -> None:
    app = KVApp()
    assert "nothing waits" in check(block(txs=()), app=app)
    app.commit_block((f"timer t {T0 + 1000}".encode(),), T0 + 1)
    tip = ChainTip(1, b"\x01" * 32, T0 + 1, certificate(block(), keys(4)[:3]))
    cert = tip.certificate
    early = block(height=2, time=T0 + 500, txs=(), app=app, previous=tip.block_id, cert=cert)
    # The certificate is for another block, so build the tip from it to isolate the empty-block rule.
    tip = ChainTip(1, cert.block_id, T0 + 1, cert)
    early = replace(early, previous_hash=cert.block_id)
    assert "before the next deadline" in check(early, tip, app)
    due = replace(early, time=T0 + 1000)
    assert check(due, tip, app) is None
    tip_recent = ChainTip(1, cert.block_id, T0 + 900, cert)
    assert "within" in check(due, tip_recent, app)


def test_timeliness_is_a_separate_clock_check() -> None:
    b = block(time=T0 + 10)
    assert check_timely(b, T0 + 10 + PARAMS.max_clock_drift_ms, PARAMS) is None
    assert check_timely(b, T0 + 11 + PARAMS.max_clock_drift_ms, PARAMS) is not None
    assert check_timely(b, T0 + 9 - PARAMS.max_clock_drift_ms, PARAMS) is not None


def test_timeliness_bound_grows_with_the_round() -> None:
    b = block(time=T0)
    late = T0 + PARAMS.max_clock_drift_ms + 1
    assert check_timely(b, late, PARAMS, round=0) is not None
    assert check_timely(b, late, PARAMS, round=1) is None
    assert check_timely(b, T0 + 2 * PARAMS.max_clock_drift_ms + 1, PARAMS, round=1) is not None
    assert check_timely(b, T0 - 3 * PARAMS.max_clock_drift_ms, PARAMS, round=2) is None
    assert check_timely(b, late + 99, PARAMS, round=0, slack=100) is None
    assert check_timely(b, late + 100, PARAMS, round=0, slack=100) is not None


def test_certificate_verification() -> None:
    ks = keys(4)
    b = block()
    bid = block_id(b)
    v = SignatureVerifier(CHAIN)
    good = certificate(b, ks[:3])
    assert verify_certificate(good, 1, bid, VS, v) is None
    assert verify_certificate(certificate(b, ks), 1, bid, VS, v) is None
    assert "height" in verify_certificate(good, 2, bid, VS, v)
    assert "another block" in verify_certificate(good, 1, b"\x00" * 32, VS, v)
    twice = Certificate(1, 0, bid, (good.signatures[0], good.signatures[0], good.signatures[1]))
    assert "twice" in verify_certificate(twice, 1, bid, VS, v)
    outsider = keys(5)[4]
    foreign = Certificate(1, 0, bid, good.signatures[:2] + (vote(outsider, 1, 0, Step.PRECOMMIT, bid).signature,))
    assert "non-validator" in verify_certificate(foreign, 1, bid, VS, v)
    wrong_round = Certificate(1, 1, bid, good.signatures)
    assert "invalid signature" in verify_certificate(wrong_round, 1, bid, VS, v)
    prevotes = Certificate(1, 0, bid, tuple(vote(k, 1, 0, Step.PREVOTE, bid).signature for k in ks[:3]))
    assert "invalid signature" in verify_certificate(prevotes, 1, bid, VS, v)


def test_quorum_sizes() -> None:
    assert [(validator_set(n).quorum, validator_set(n).f_plus_one) for n in (1, 4, 5, 7, 10)] == [
        (1, 1), (3, 2), (4, 2), (5, 3), (7, 4)
    ]
