"""Wire types of the execution protocols (DESIGN.md sections 7-8).

- `/pocnet/pool/1`: a worker asks its manager for work, for the authorization of its enclave key, and
  reports how each replicate ended; anyone may ask how a task's replicates went.
- `/pocnet/attest/1`: a worker asks an attestation authority to certify its platform key.
- `/pocnet/keys/1`: an enclave asks a dataset owner for the dataset key, presenting its quote
  (`protocols.key_release.KeyRequest`; the rule is `decide_key_release` there).
- The location a manager writes into `Finalize.results`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from protocols.attestation import PlatformCertificate
from protocols.crypto import Address, PublicKey, Signature
from protocols.encoding import U64, Bytes32, MaxLen, wire

POOL_PROTOCOL = "/pocnet/pool/1"
# A failure's detail in words (the logs themselves travel sealed, as a blob).
MAX_DETAIL = 512
OK = "ok"
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
class ReplicateReport:
    """How one replicate ended. `outcome` is "ok" (the worker contributed; its sealed result archive is the
    blob `result_blob` on its node) or a failure reason code (the enclave's, such as exit-code or timeout, or
    the worker's own, such as fetch-failed) with `detail` in words. `logs_blob` is the app's stdout and
    stderr sealed to the requester, like the result (empty when the app never ran)."""

    task_id: Bytes32
    outcome: Annotated[str, MaxLen(64)]
    detail: Annotated[str, MaxLen(MAX_DETAIL)]
    result_blob: Annotated[bytes, MaxLen(32)]
    logs_blob: Annotated[bytes, MaxLen(32)]


@wire(tag=149)
@dataclass(frozen=True)
class Ack:
    pass


@wire(tag=155)
@dataclass(frozen=True)
class ReplicatesRequest:
    """Anyone may ask a pool's manager how the replicates of one of its tasks went (like iexec-core's
    replicate API behind `iexec task debug`); the logs stay sealed to the requester."""

    task_id: Bytes32


@wire(tag=156)
@dataclass(frozen=True)
class ReplicateInfo:
    """One worker's replicate as the manager saw it: `status` is running, ok, lost (no word within the
    replicate timeout) or a failure reason code."""

    worker: Address
    status: Annotated[str, MaxLen(64)]
    detail: Annotated[str, MaxLen(MAX_DETAIL)]
    logs_blob: Annotated[bytes, MaxLen(32)]


@wire(tag=157)
@dataclass(frozen=True)
class ReplicateList:
    """The replicates, and the scheduler's verdict on the task in words ("" while it is running normally)."""

    replicates: Annotated[tuple[ReplicateInfo, ...], MaxLen(64)]
    verdict: Annotated[str, MaxLen(MAX_DETAIL)]


PoolRequest = WorkRequest | AuthorizeRequest | ReplicateReport | ReplicatesRequest
PoolResponse = Assignment | NoWork | AuthorizationGrant | Ack | ReplicateList


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


# --- `/pocnet/attest/1`: a worker asks an attestation authority to certify its platform key ------------

ATTEST_PROTOCOL = "/pocnet/attest/1"


@wire(tag=153)
@dataclass(frozen=True)
class CertifyRequest:
    """Certify this platform key for the stream's authenticated peer (its account is the worker)."""

    platform_public_key: PublicKey


@wire(tag=154)
@dataclass(frozen=True)
class CertificateGrant:
    certificate: PlatformCertificate
    policy: Annotated[str, MaxLen(512)]  # the authority's policy, in words, for the worker's operator
