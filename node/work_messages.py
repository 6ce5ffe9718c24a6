"""Wire types of the execution protocols (DESIGN.md sections 7-8).

- `/pocnet/pool/1`: a worker asks its manager for work, for the authorization of its enclave key, and
  reports where its sealed result is.
- `/pocnet/keys/1`: an enclave asks a dataset owner for the dataset key, presenting its quote.
- The location a manager writes into `Finalize.results`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from protocols.attestation import PlatformCertificate, Quote
from protocols.crypto import Address, PublicKey, Signature
from protocols.encoding import U64, Bytes32, MaxLen, wire

POOL_PROTOCOL = "/pocnet/pool/1"
KEYS_PROTOCOL = "/pocnet/keys/1"


@wire(tag=143)
@dataclass(frozen=True)
class WorkRequest:
    """A worker (the stream's authenticated peer) asks for a task, showing its platform certificate."""

    certificate: PlatformCertificate


@wire(tag=144)
@dataclass(frozen=True)
class Assignment:
    task_id: Bytes32


@wire(tag=145)
@dataclass(frozen=True)
class NoWork:
    retry_after_ms: U64


@wire(tag=146)
@dataclass(frozen=True)
class AuthorizeRequest:
    """Authorize this enclave key for this task (PoCo's authSign over worker, task, challenge)."""

    task_id: Bytes32
    enclave_public_key: PublicKey


@wire(tag=147)
@dataclass(frozen=True)
class AuthorizationGrant:
    authorization: Signature


@wire(tag=148)
@dataclass(frozen=True)
class ResultReport:
    """The worker contributed; its sealed result archive is the blob `result_blob` on its node."""

    task_id: Bytes32
    result_blob: Bytes32


@wire(tag=149)
@dataclass(frozen=True)
class Ack:
    pass


PoolRequest = WorkRequest | AuthorizeRequest | ResultReport
PoolResponse = Assignment | NoWork | AuthorizationGrant | Ack


@wire(tag=150)
@dataclass(frozen=True)
class KeyRequest:
    """An enclave asks for a dataset key: its quote, the certificate of its platform, and the workerpool
    owner's authorization of (worker, task, enclave key)."""

    task_id: Bytes32
    certificate: PlatformCertificate
    quote: Quote
    authorization: Signature


@wire(tag=151)
@dataclass(frozen=True)
class KeyGrant:
    """The dataset key sealed to the enclave's key: only that enclave can open it."""

    sealed_key: Annotated[bytes, MaxLen(256)]


@wire(tag=152)
@dataclass(frozen=True)
class ResultLocation:
    """What `Finalize.results` holds: which worker serves the sealed result archive, and its hash."""

    worker: Address
    result_blob: Bytes32
