"""When a dataset owner releases its dataset's key to an enclave (DESIGN.md section 7), as a pure rule.

The enclave asks with a `KeyRequest`: its platform's certificate, the quote of (measurement, enclave key,
worker, task) and the pool owner's authorization of (worker, task, enclave key). The owner releases the key,
sealed to the enclave key, only if its own ledger view shows the task active in a deal for its dataset, the
platform is certified for the asking worker by an authority of the genesis, the quote names the deal's app
and the task, and the pool owner authorized that worker and enclave. The node's provider role does the I/O
around `decide_key_release`: loading the key, sealing it, logging each decision.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from protocols.attestation import PlatformCertificate, Quote, verify_certificate, verify_quote
from protocols.crypto import Signature, SignatureVerifier
from protocols.encoding import Bytes32, wire
from protocols.ledger.poco import worker_authorized
from protocols.ledger.records import TaskStatus
from protocols.ledger.state import StateView

TASK_NOT_ACTIVE = "task-not-active"
NOT_MY_DATASET = "not-my-dataset"
WORKER_NOT_AUTHORIZED = "worker-not-authorized"


@wire(tag=150)
@dataclass(frozen=True)
class KeyRequest:
    """An enclave asks for a dataset key: its quote, the certificate of its platform, and the workerpool
    owner's authorization of (worker, task, enclave key)."""

    task_id: Bytes32
    certificate: PlatformCertificate
    quote: Quote
    authorization: Signature


@dataclass(frozen=True)
class KeyDecision:
    """`refusal` is None to release the key of the dataset whose encrypted blob is `blob_hash`."""

    refusal: str | None
    blob_hash: bytes = b""


def decide_key_release(
    view: StateView, verifier: SignatureVerifier, authorities: Collection[bytes], owner: bytes, worker: bytes,
    request: KeyRequest,
) -> KeyDecision:
    """The first check the request fails, in the order above, or the dataset to release (see module doc)."""
    task = view.task(request.task_id)
    if task is None or task.status != TaskStatus.ACTIVE:
        return KeyDecision(TASK_NOT_ACTIVE)
    deal = view.deal(task.deal_id)
    assert deal is not None  # a task exists only for a deal
    dataset = view.dataset(deal.dataset.pointer)
    if dataset is None or dataset.owner != owner:
        return KeyDecision(NOT_MY_DATASET)
    reason = verify_certificate(verifier, authorities, request.certificate, worker)
    if reason is not None:
        return KeyDecision(reason)
    app = view.app(deal.app.pointer)
    assert app is not None  # a deal is only made for a registered app
    reason = verify_quote(
        verifier, request.certificate, request.quote, measurement=app.measurement, task_id=request.task_id, worker=worker
    )
    if reason is not None:
        return KeyDecision(reason)
    if not worker_authorized(verifier, deal, worker, request.task_id, request.quote.enclave_public_key, request.authorization):
        return KeyDecision(WORKER_NOT_AUTHORIZED)
    return KeyDecision(None, dataset.blob_hash)
