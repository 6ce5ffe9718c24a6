"""Ledger transactions: a signed envelope (sender key, nonce) around one of the body types below.

The sender is the signer; its account nonce must equal the transaction's, which makes every signed
transaction apply at most once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

from protocols.consensus.messages import DuplicateVoteEvidence
from protocols.crypto import EMPTY_SIGNATURE, Address, Signature, SignedMixin
from protocols.encoding import U64, Bytes32, MaxLen, wire
from protocols.ledger.records import MAX_RESULTS_LEN, Name, Ratio
from protocols.orders import AppOrder, DatasetOrder, Order, RequestOrder, WorkerpoolOrder

# An attestation (quote, certificates, enclave signature) is opaque to the ledger core and checked by the
# configured ContributionVerifier; a few kilobytes hold a certificate chain with room to spare.
MAX_ATTESTATION_LEN = 8192


@wire(tag=20)
@dataclass(frozen=True)
class Transfer:
    to: Address
    amount: U64


@wire(tag=21)
@dataclass(frozen=True)
class RegisterApp:
    name: Name
    measurement: Bytes32


@wire(tag=22)
@dataclass(frozen=True)
class RegisterDataset:
    name: Name
    blob_hash: Bytes32


@wire(tag=23)
@dataclass(frozen=True)
class RegisterWorkerpool:
    description: Name
    worker_stake_ratio: Ratio = 30
    scheduler_reward_ratio: Ratio = 1


@wire(tag=24)
@dataclass(frozen=True)
class MatchOrders:
    app_order: AppOrder
    dataset_order: DatasetOrder | None
    workerpool_order: WorkerpoolOrder
    request_order: RequestOrder


@wire(tag=25)
@dataclass(frozen=True)
class CancelOrder:
    order: Order


@wire(tag=26)
@dataclass(frozen=True)
class InitializeTask:
    deal_id: Bytes32
    index: U64


@wire(tag=27)
@dataclass(frozen=True)
class Contribute:
    """A worker's sealed result. `authorization` is the pool owner's signature (kind "worker-authorization")
    over (worker, task id, enclave challenge): the scheduler chose this worker. `attestation` binds the
    enclave to the result and is checked by the ledger's ContributionVerifier."""

    task_id: Bytes32
    result_hash: Bytes32
    result_seal: Bytes32
    enclave_challenge: Annotated[bytes, MaxLen(32)]
    attestation: Annotated[bytes, MaxLen(MAX_ATTESTATION_LEN)]
    authorization: Signature


@wire(tag=44)
@dataclass(frozen=True)
class ContributeAndFinalize:
    """PoCo contributeAndFinalize, for trust 1: the worker's result digest itself (no commit-reveal: nobody
    else will contribute), where the result is (`results`, as a Finalize carries), and the same enclave
    attestation and pool owner's authorization as a Contribute."""

    task_id: Bytes32
    result_digest: Bytes32
    results: Annotated[bytes, MaxLen(MAX_RESULTS_LEN)]
    enclave_challenge: Annotated[bytes, MaxLen(32)]
    attestation: Annotated[bytes, MaxLen(MAX_ATTESTATION_LEN)]
    authorization: Signature


@wire(tag=28)
@dataclass(frozen=True)
class Reveal:
    task_id: Bytes32
    result_digest: Bytes32


@wire(tag=29)
@dataclass(frozen=True)
class Finalize:
    task_id: Bytes32
    results: Annotated[bytes, MaxLen(MAX_RESULTS_LEN)]


@wire(tag=40)
@dataclass(frozen=True)
class Reopen:
    task_id: Bytes32


@wire(tag=41)
@dataclass(frozen=True)
class Claim:
    """Refund a task past its final deadline; works on an uninitialized task too (PoCo initializeAndClaim)."""

    deal_id: Bytes32
    index: U64


@wire(tag=183)
@dataclass(frozen=True)
class RecordEquivocation:
    """Two conflicting votes of one validator, as proof: anyone may submit it, the ledger checks it."""

    evidence: DuplicateVoteEvidence


TxBody = (
    Transfer
    | RegisterApp
    | RegisterDataset
    | RegisterWorkerpool
    | MatchOrders
    | CancelOrder
    | InitializeTask
    | Contribute
    | ContributeAndFinalize
    | Reveal
    | Finalize
    | Reopen
    | Claim
    | RecordEquivocation
)


@wire(tag=42)
@dataclass(frozen=True)
class Transaction(SignedMixin):
    SIGNATURE_KIND = "tx"

    nonce: U64
    body: TxBody
    signature: Signature = EMPTY_SIGNATURE

    @property
    def tx_id(self) -> bytes:
        """The payload digest leaves the signer out (two accounts may sign the same nonce and body): the id
        binds both."""
        return hashlib.sha256(self.signature.public_key + self.payload_digest).digest()


@wire(tag=43)
@dataclass(frozen=True)
class WorkerAuthorization(SignedMixin):
    """What the pool owner signs to let one worker contribute to one task (PoCo's authSign)."""

    SIGNATURE_KIND = "worker-authorization"

    worker: Address
    task_id: Bytes32
    enclave_challenge: Annotated[bytes, MaxLen(32)]
    signature: Signature = EMPTY_SIGNATURE
