"""The provider: serves its app bundles and encrypted datasets, and releases a dataset key only to an
attested enclave that runs an app of the deal, for an active task, authorized by the workerpool owner
(DESIGN.md section 7). Every decision is logged with its reason.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from node.enclave.sealing import seal_key_to_enclave
from node.net.identity import public_key_of
from node.net.streams import RequestRejected
from node.roles.base import NodeAPI
from node.work_messages import KeyGrant, KeyRequest
from protocols.attestation import verify_certificate, verify_quote
from protocols.chain import CommittedBlock
from protocols.crypto import address_of, hex_address
from protocols.encoding import DecodeError, decode, encode
from protocols.ledger.records import TaskStatus
from protocols.ledger.transactions import WorkerAuthorization

log = logging.getLogger(__name__)

KEY_DIR = "dataset-keys"
KEY_LEN = 32


class DatasetKeys:
    """Dataset keys by encrypted blob hash, one 0600 file each in the data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / KEY_DIR
        self.directory.mkdir(mode=0o700, exist_ok=True)

    def put(self, blob_hash: bytes, key: bytes) -> None:
        path = self.directory / blob_hash.hex()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(key)

    def get(self, blob_hash: bytes) -> bytes | None:
        path = self.directory / blob_hash.hex()
        key = path.read_bytes() if path.exists() else None
        return key if key is not None and len(key) == KEY_LEN else None


def decide_key_release(api: NodeAPI, keys: DatasetKeys, worker: bytes, request: KeyRequest) -> bytes:
    """The sealed dataset key, or RequestRejected with the first check that failed."""
    view = api.ledger_view()
    task = view.task(request.task_id)
    if task is None or task.status != TaskStatus.ACTIVE:
        raise RequestRejected("task-not-active")
    deal = view.deal(task.deal_id)
    assert deal is not None
    dataset = view.dataset(deal.dataset.pointer)
    if dataset is None or dataset.owner != api.keypair.address:
        raise RequestRejected("not-my-dataset")
    key = keys.get(dataset.blob_hash)
    if key is None:
        raise RequestRejected("dataset-key-unknown")
    authorities = api.genesis.attestation_authorities
    reason = verify_certificate(api.verifier, authorities, request.certificate, worker)
    if reason is not None:
        raise RequestRejected(reason)
    app = view.app(deal.app.pointer)
    assert app is not None
    reason = verify_quote(
        api.verifier, request.certificate, request.quote, measurement=app.measurement, task_id=request.task_id, worker=worker
    )
    if reason is not None:
        raise RequestRejected(reason)
    grant = WorkerAuthorization(worker, request.task_id, request.quote.enclave_public_key, request.authorization)
    if grant.signer != deal.workerpool.owner or not api.verifier.verify(grant):
        raise RequestRejected("worker-not-authorized")
    return seal_key_to_enclave(key, request.quote.enclave_public_key)


class ProviderRole:
    name = "provider"

    def __init__(self, data_dir: Path) -> None:
        self.keys = DatasetKeys(data_dir)
        self.released = 0
        self.refused = 0

    def notes(self, api: NodeAPI) -> list[str]:
        return [f"provider: {self.released} dataset key(s) released to attested enclaves, {self.refused} refused"]

    async def start(self, api: NodeAPI) -> None:
        log.info("event=role-started role=provider")

    async def run(self, api: NodeAPI) -> None:
        return None

    async def on_block(self, api: NodeAPI, height: int, committed: CommittedBlock) -> None:
        return None

    async def tick(self, api: NodeAPI, now: float) -> None:
        return None

    def request_handlers(self, api: NodeAPI) -> dict[str, object]:
        from node.work_messages import KEYS_PROTOCOL

        async def serve_keys(peer: str, data: bytes) -> bytes:
            try:
                request = decode(KeyRequest, data)
            except DecodeError as exc:
                raise RequestRejected(f"malformed key request: {exc.reason}") from None
            worker = address_of(public_key_of(peer))
            try:
                sealed = decide_key_release(api, self.keys, worker, request)
            except RequestRejected as refusal:
                log.warning(
                    "event=key-refused task=%s worker=%s reason=%s", request.task_id.hex()[:16], hex_address(worker), refusal
                )
                self.refused += 1
                api.metrics.key_releases.labels("refused").inc()
                raise
            self.released += 1
            api.metrics.key_releases.labels("granted").inc()
            log.info("event=key-released task=%s worker=%s", request.task_id.hex()[:16], hex_address(worker))
            return encode(KeyGrant(sealed))

        return {KEYS_PROTOCOL: serve_keys}
