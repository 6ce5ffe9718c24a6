"""Shared fixtures-by-function for the consensus tests: keys, a validator set, machines, signed messages."""

from __future__ import annotations

import hashlib

from protocols.chain_params import MAX_BLOCK_BYTES, ChainParams
from protocols.consensus.blocks import ChainTip, genesis_tip, make_certificate
from protocols.consensus.config import ConsensusConfig
from protocols.consensus.mempool import Mempool
from protocols.consensus.messages import NIL, Block, Certificate, Proposal, Step, Vote, block_id
from protocols.consensus.tendermint import Tendermint
from protocols.consensus.validators import ValidatorSet
from protocols.crypto import Keypair, SignatureVerifier, sign
from protocols.sim.kvapp import KVApp

CHAIN = "pocnet-test"
GENESIS_HASH = hashlib.sha256(b"test-genesis").digest()
T0 = 1_000_000
CONFIG = ConsensusConfig(
    timeout_propose=300,
    timeout_propose_delta=100,
    timeout_prevote=150,
    timeout_prevote_delta=50,
    timeout_precommit=150,
    timeout_precommit_delta=50,
    rebroadcast_interval=250,
)
PARAMS = ChainParams(
    max_block_txs=1_000,
    max_block_bytes=MAX_BLOCK_BYTES,
    empty_block_interval_ms=300,
    max_clock_drift_ms=500,
)


def keys(n: int) -> list[Keypair]:
    return [Keypair.from_name(f"test-validator-{i}") for i in range(n)]


def validator_set(n: int) -> ValidatorSet:
    return ValidatorSet([k.public_key for k in keys(n)])


def machine(
    n: int = 4,
    me: int = 0,
    app: KVApp | None = None,
    tip: ChainTip | None = None,
    with_mempool: bool = True,
    **kw: object,
) -> Tendermint:
    app = app if app is not None else KVApp()
    return Tendermint(
        chain_id=CHAIN,
        validators=validator_set(n),
        app=app,
        config=CONFIG,
        params=PARAMS,
        tip=tip if tip is not None else genesis_tip(GENESIS_HASH, T0),
        keypair=keys(n)[me],
        mempool=Mempool(app) if with_mempool else None,
        verifier=SignatureVerifier(CHAIN),
        **kw,  # type: ignore[arg-type]
    )


def block(height: int = 1, time: int = T0 + 10, txs: tuple[bytes, ...] = (b"set a 1",), app: KVApp | None = None,
          previous: bytes = GENESIS_HASH, cert: Certificate | None = None) -> Block:
    app = app if app is not None else KVApp()
    return Block(height, time, previous, app.state_digest(), txs, cert)


def proposal(signer: Keypair, blk: Block, round: int = 0, valid_round: int = -1) -> Proposal:
    return sign(signer, CHAIN, Proposal(blk.height, round, valid_round, blk))


def vote(signer: Keypair, height: int, round: int, step: Step, bid: bytes = NIL) -> Vote:
    return sign(signer, CHAIN, Vote(height, round, int(step), bid))


def certificate(blk: Block, signers: list[Keypair], round: int = 0) -> Certificate:
    return make_certificate(vote(k, blk.height, round, Step.PRECOMMIT, block_id(blk)) for k in signers)
