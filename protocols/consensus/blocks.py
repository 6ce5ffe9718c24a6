"""Block validity (the paper's valid(v)) and commit certificates.

`check_block` is deterministic in the block, the chain tip and the committed application state, so two
correct validators always agree on it; that is what the paper requires of valid(v). The clock check
(`check_timely`) is not part of it: it depends on the local clock, so it is only applied when prevoting a
fresh proposal (Algorithm 1 line 22), as CometBFT's proposer-based timestamps do. A block decided in
one round is thus never refused later because time moved on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from protocols.chain_params import ChainParams
from protocols.consensus.application import Application
from protocols.consensus.messages import Block, Certificate, Step, Vote, block_id
from protocols.consensus.validators import ValidatorSet
from protocols.crypto import SignatureVerifier


@dataclass(frozen=True)
class ChainTip:
    """What a validator knows of the last decided block: the parent of the next one.

    At genesis `height` is 0, `block_id` the genesis hash, `time` the genesis time, no certificate.
    """

    height: int
    block_id: bytes
    time: int
    certificate: Certificate | None


def genesis_tip(genesis_hash: bytes, genesis_time: int) -> ChainTip:
    if len(genesis_hash) != 32:
        raise ValueError(f"genesis hash must be 32 bytes, got {len(genesis_hash)}")
    return ChainTip(0, genesis_hash, genesis_time, None)


def verify_certificate(
    cert: Certificate, height: int, expected_block_id: bytes, validators: ValidatorSet, verifier: SignatureVerifier
) -> str | None:
    """None if `cert` proves that more than two thirds of `validators` precommitted the block, else why not."""
    if cert.height != height:
        return f"certificate for height {cert.height}, expected {height}"
    if cert.block_id != expected_block_id:
        return "certificate is for another block"
    seen: set[int] = set()
    for sig in cert.signatures:
        index = validators.index_of(sig.public_key)
        if index is None:
            return "certificate signed by a non-validator"
        if index in seen:
            return "certificate counts a validator twice"
        seen.add(index)
    if len(seen) < validators.quorum:
        return f"certificate has {len(seen)} signatures, needs {validators.quorum}"
    for sig in cert.signatures:
        vote = Vote(cert.height, cert.round, int(Step.PRECOMMIT), cert.block_id, sig)
        if not verifier.verify(vote):
            return "certificate has an invalid signature"
    return None


def make_certificate(precommits: Iterable[Vote]) -> Certificate:
    """The certificate made of these precommits (same height, round and block), in a canonical order."""
    votes = sorted(precommits, key=lambda v: v.signature.public_key)
    first = votes[0]
    return Certificate(first.height, first.round, first.block_id, tuple(v.signature for v in votes))


def check_block(
    block: Block,
    tip: ChainTip,
    app: Application,
    validators: ValidatorSet,
    verifier: SignatureVerifier,
    params: ChainParams,
) -> str | None:
    """valid(v): None if `block` may follow `tip` given the committed application state, else the reason."""
    if block.height != tip.height + 1:
        return f"block height {block.height}, expected {tip.height + 1}"
    if block.previous_hash != tip.block_id:
        return "previous hash is not the last decided block"
    if block.time <= tip.time:
        return f"block time {block.time} not after the previous block's {tip.time}"
    if block.state_digest != app.state_digest():
        return "state digest differs from ours"
    if tip.height == 0:
        if block.previous_commit is not None:
            return "first block must not carry a previous commit"
    else:
        if block.previous_commit is None:
            return "missing certificate of the previous block"
        reason = verify_certificate(block.previous_commit, tip.height, tip.block_id, validators, verifier)
        if reason is not None:
            return f"previous commit: {reason}"
    if len(block.txs) > params.max_block_txs:
        return f"{len(block.txs)} transactions exceed {params.max_block_txs}"
    if sum(len(tx) for tx in block.txs) > params.max_block_bytes:
        return f"transactions exceed {params.max_block_bytes} bytes"
    largest = max((len(tx) for tx in block.txs), default=0)
    if largest > params.max_tx_bytes:
        return f"a transaction of {largest} bytes exceeds {params.max_tx_bytes}"
    if len(set(block.txs)) != len(block.txs):
        return "duplicate transaction in block"
    if not block.txs:
        reason = check_empty_block_allowed(block.time, tip, app, params)
        if reason is not None:
            return reason
    return app.validate_block_txs(block.txs, block.time)


def check_empty_block_allowed(time: int, tip: ChainTip, app: Application, params: ChainParams) -> str | None:
    """Empty blocks only while something waits on time, and at most every `empty_block_interval_ms`."""
    deadline = app.next_deadline()
    if deadline is None:
        return "empty block while nothing waits on time"
    if deadline > time:
        return f"empty block at {time} before the next deadline {deadline}"
    if time < tip.time + params.empty_block_interval_ms:
        return f"empty block at {time} within {params.empty_block_interval_ms} ms of the previous block"
    return None


def check_timely(block: Block, now: int, params: ChainParams, round: int = 0, slack: int = 0) -> str | None:
    """Is the block's time within the drift bound of our clock? Only for fresh proposals (see module doc).

    The bound grows with the round, `max_clock_drift_ms * (round + 1)`, as the timeouts do and as CometBFT's
    proposer-based timestamps relax their message delay in later rounds. The lag a receiver sees is clock
    drift plus the time the proposer took to build the block and the time it took to reach us, and on a
    slow or overloaded machine the latter two alone exceed any fixed bound: a devnet limited to half a
    core (bench/liveness.py) saw 2-4 s lags against the 2 s bound, so every correct validator prevoted nil
    and the round failed, again and again. A bound that grows still lets some round through, whatever the
    machine's speed. What it costs: a proposer may skew its block's time by the bound of its round, and only
    in rounds after every earlier one failed.

    `slack` (ms, added to the bound) is how late proposals have recently been accepted here (tendermint.py
    measures it): where they always take a few seconds, round 0 then takes them too, instead of failing at
    every height. A median of several heights, so f Byzantine proposers cannot inflate it.
    """
    bound = params.max_clock_drift_ms * (round + 1) + slack
    if abs(block.time - now) > bound:
        return (
            f"block time {block.time} is {block.time - now} ms from our clock {now} (bound {bound} ms in round {round})"
        )
    return None


def first_empty_block_time(tip: ChainTip, app: Application, params: ChainParams) -> int | None:
    """The earliest time an empty block may carry, or None if none is worth making."""
    deadline = app.next_deadline()
    if deadline is None:
        return None
    return max(deadline, tip.time + params.empty_block_interval_ms, tip.time + 1)


__all__ = [
    "ChainTip",
    "block_id",
    "check_block",
    "check_empty_block_allowed",
    "check_timely",
    "first_empty_block_time",
    "genesis_tip",
    "make_certificate",
    "verify_certificate",
]
