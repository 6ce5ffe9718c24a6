"""What the ledger stores: accounts, assets, deals, tasks and contributions (DESIGN.md section 5).

All records are wire types, so the state digest and the node's storage use their canonical encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated

from protocols.crypto import Address, PublicKey
from protocols.encoding import U64, Bytes32, MaxLen, Range, wire

Ratio = Annotated[int, Range(0, 100)]
Name = Annotated[str, MaxLen(128)]
# Finalize records where the result lives (a worker's peer id and the archive hash, typically): small.
MAX_RESULTS_LEN = 4096


class TaskStatus(IntEnum):
    UNSET = 0
    ACTIVE = 1
    REVEALING = 2
    COMPLETED = 3
    FAILED = 4


class ContributionStatus(IntEnum):
    UNSET = 0
    CONTRIBUTED = 1
    PROVED = 2
    REJECTED = 3


@wire(tag=30)
@dataclass(frozen=True)
class Account:
    """`balance` is free nRLC; `frozen` is locked in escrow or stake. `score` is the PoCo worker score."""

    balance: U64 = 0
    frozen: U64 = 0
    nonce: U64 = 0
    score: U64 = 0


@wire(tag=31)
@dataclass(frozen=True)
class App:
    owner: Address
    name: Name
    measurement: Bytes32  # SHA-256 of the deterministic bundle: the MRENCLAVE analogue


@wire(tag=32)
@dataclass(frozen=True)
class Dataset:
    owner: Address
    name: Name
    blob_hash: Bytes32  # SHA-256 of the encrypted dataset blob


@wire(tag=33)
@dataclass(frozen=True)
class Workerpool:
    owner: Address
    description: Name
    worker_stake_ratio: Ratio  # PoCo m_workerStakeRatioPolicy: a worker stakes this % of the pool price
    scheduler_reward_ratio: Ratio  # PoCo m_schedulerRewardRatioPolicy: the pool keeps this % of the reward


@wire(tag=34)
@dataclass(frozen=True)
class Consumed:
    """Volume of one order already used by deals (or all of it, once cancelled)."""

    volume: U64


@wire(tag=35)
@dataclass(frozen=True)
class Resource:
    """One side of a deal: the asset, its owner at match time, and the price agreed per task."""

    pointer: Address
    owner: Address
    price: U64


@wire(tag=36)
@dataclass(frozen=True)
class Deal:
    app: Resource
    dataset: Resource
    workerpool: Resource
    trust: U64
    category: U64
    tag: Bytes32
    requester: Address
    # The requester's Ed25519 key (it signed the request order): results are sealed to it, since an
    # address alone cannot be encrypted to.
    requester_key: PublicKey
    beneficiary: Address
    callback: Address
    params: Annotated[str, MaxLen(4096)]
    start_time: U64
    bot_first: U64
    bot_size: U64
    worker_stake: U64
    scheduler_reward_ratio: Ratio
    pool_stake_per_task: U64
    time_ref_ms: U64  # the category's T at match time: the deal's deadlines never move
    settled: U64 = 0  # tasks finalized or claimed: their escrow is released

    @property
    def task_price(self) -> int:
        return self.app.price + self.dataset.price + self.workerpool.price

    @property
    def final_deadline(self) -> int:
        return self.start_time + FINAL_DEADLINE_RATIO * self.time_ref_ms


@wire(tag=37)
@dataclass(frozen=True)
class Task:
    status: Annotated[int, Range(0, 4)]
    deal_id: Bytes32
    index: U64
    contribution_deadline: U64
    reveal_deadline: U64
    final_deadline: U64
    consensus_value: Annotated[bytes, MaxLen(32)]
    reveal_counter: U64
    winner_counter: U64
    contributors: tuple[Address, ...]
    result_digest: Annotated[bytes, MaxLen(32)]
    results: Annotated[bytes, MaxLen(MAX_RESULTS_LEN)]


@wire(tag=38)
@dataclass(frozen=True)
class Contribution:
    status: Annotated[int, Range(0, 3)]
    result_hash: Bytes32
    result_seal: Bytes32
    enclave_challenge: Annotated[bytes, MaxLen(32)]
    weight: U64  # the consensus weight w; PoCo stores log2(w), which the reward split uses


# PoCo deadline ratios (reference/poco.md section 3), in units of the category's T.
CONTRIBUTION_DEADLINE_RATIO = 7
REVEAL_DEADLINE_RATIO = 2
FINAL_DEADLINE_RATIO = 10


# Any value the ledger state holds: what the node's storage decodes when it loads the state.
@wire(tag=182)
@dataclass(frozen=True)
class Equivocation:
    """A validator proven to have signed two different votes for one (height, round, step), and who
    reported it when (block time, ms). Recorded once per offence; punishment (slashing the pool stake)
    is for later."""

    validator: PublicKey
    height: U64
    round: U64
    step: U64
    reporter: Address
    recorded_at: U64


Record = Account | App | Dataset | Workerpool | Consumed | Deal | Task | Contribution | Equivocation
