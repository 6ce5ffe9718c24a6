"""The chain a fuzzed node runs on, and the valid messages its fuzz inputs start from.

Four validators whose keys the fuzzer holds (the node under test is validator 0, or a follower), and a
funded client. Holding every key lets seeds carry what no outsider could forge: votes and proposals of
real validators, a decided block of height 1 with a quorum certificate, transactions with the right nonce.
Mutations start from there and reach the node's deeper paths (block validity, commit, sync answers).

An input is a msgpack array of steps `[kind, argument, tree]`; `STEP_KINDS` names the kinds.
"""

from __future__ import annotations

from typing import Any

from node.control import (
    AccountRequest,
    OrderbookRequest,
    StatusRequest,
    SubmitRequest,
    TxResultRequest,
)
from node.directory import PeerRecord
from node.fuzz.mutators import pack_tree, unpack_tree
from node.net.batching import pack_batch
from node.net.identity import peer_id_of_seed
from node.sync import SyncRequest
from protocols.chain import LedgerApplication
from protocols.chain_params import ChainParams
from protocols.consensus.blocks import make_certificate
from protocols.consensus.messages import (
    Block,
    DecidedBlock,
    Proposal,
    Step,
    Vote,
    block_id,
)
from protocols.consensus.validators import ValidatorSet
from protocols.crypto import ZERO_ADDRESS, Keypair, sign
from protocols.encoding import encode
from protocols.genesis import NRLC_PER_RLC, Allocation, Category, Genesis, Validator
from protocols.ledger.ledger import Ledger
from protocols.ledger.transactions import Transaction, Transfer
from protocols.orders import NO_TAG, AppOrder

CHAIN_ID = "pocnet-fuzz-node"
GENESIS_TIME_MS = 1_000_000
VALIDATOR_KEYS = tuple(Keypair.from_name(f"fuzz-node-validator-{i}") for i in range(4))
CLIENT = Keypair.from_name("fuzz-node-client")
START_BALANCE = 1_000_000 * NRLC_PER_RLC
# What one input may do: gossip on a topic (validator, then handler), a raw batch, a sync request, a
# control request, or a message the fuzzer re-signs with a real key (so mutations reach the rules).
STEP_KINDS = ("consensus", "txs", "orders", "blocks", "peers", "raw-txs-batch", "sync", "control", "signed-vote", "signed-tx")
# Steps per input beyond this are ignored (each step may make the node do real work: a block commit).
MAX_STEPS = 16


def make_genesis() -> Genesis:
    return Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=GENESIS_TIME_MS,
        validators=tuple(Validator(k.public_key, f"v{i}") for i, k in enumerate(VALIDATOR_KEYS)),
        allocations=tuple(Allocation(k.address, START_BALANCE) for k in (*VALIDATOR_KEYS, CLIENT)),
        categories=(Category(0, "XS", 5_000),),
        attestation_authorities=(),
        params=ChainParams(empty_block_interval_ms=1_000),
    )


def client_tx(nonce: int, amount: int = 1) -> Transaction:
    return sign(CLIENT, CHAIN_ID, Transaction(nonce, Transfer(VALIDATOR_KEYS[1].address, amount)))


def decided_block_one(genesis: Genesis) -> DecidedBlock:
    """A valid decided block of height 1 (one transfer), certified by three of the four validators."""
    app = LedgerApplication(Ledger.from_genesis(genesis))
    block = Block(1, GENESIS_TIME_MS + 1_000, genesis.genesis_hash, app.state_digest(), (encode(client_tx(0)),), None)
    precommits = [sign(k, CHAIN_ID, Vote(1, 0, int(Step.PRECOMMIT), block_id(block))) for k in VALIDATOR_KEYS[1:]]
    return DecidedBlock(block, make_certificate(precommits))


def _tree(value: Any) -> Any:
    return unpack_tree(encode(value))


def seed_inputs() -> list[bytes]:
    """One input per step kind, and a few sequences (a transaction then the block that commits it)."""
    genesis = make_genesis()
    decided = decided_block_one(genesis)
    validators = ValidatorSet([k.public_key for k in VALIDATOR_KEYS])
    proposer = next(k for k in VALIDATOR_KEYS if k.public_key == validators.proposer(1, 0))
    proposal = sign(proposer, CHAIN_ID, Proposal(1, 0, -1, decided.block))
    vote = sign(VALIDATOR_KEYS[2], CHAIN_ID, Vote(1, 0, int(Step.PREVOTE), block_id(decided.block)))
    order = sign(CLIENT, CHAIN_ID, AppOrder(bytes(range(20)), 5, 10, NO_TAG, ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, b"salt"))
    peer = peer_id_of_seed(VALIDATOR_KEYS[2].seed)
    record = sign(VALIDATOR_KEYS[2], CHAIN_ID, PeerRecord((f"/ip4/127.0.0.1/tcp/4001/p2p/{peer}",), 1))
    steps: list[list[Any]] = [
        ["consensus", 0, _tree(vote)],
        ["consensus", 0, _tree(proposal)],
        ["txs", 0, [_tree(client_tx(0))]],
        ["orders", 0, [_tree(order)]],
        ["blocks", 0, _tree(decided)],
        ["peers", 0, _tree(record)],
        ["raw-txs-batch", 0, pack_batch([encode(client_tx(0))])],
        ["sync", 0, _tree(SyncRequest(1, 10))],
        ["control", 0, _tree(StatusRequest())],
        ["control", 0, _tree(AccountRequest(CLIENT.address))],
        ["control", 0, _tree(OrderbookRequest(""))],
        ["control", 0, _tree(TxResultRequest(client_tx(0).tx_id))],
        ["control", 0, _tree(SubmitRequest(Transfer(CLIENT.address, 1)))],
        ["signed-vote", 1, _tree(vote)],
        ["signed-tx", 0, _tree(Transfer(VALIDATOR_KEYS[3].address, 7))],
    ]
    inputs = [[[STEP_KINDS.index(kind), arg, tree]] for kind, arg, tree in steps]
    inputs.append([[STEP_KINDS.index(k), a, t] for k, a, t in (steps[2], steps[4], steps[7], steps[11])])
    inputs.append([[STEP_KINDS.index(k), a, t] for k, a, t in (steps[0], steps[1], steps[13], steps[4], steps[8])])
    return [pack_tree(i) for i in inputs]
