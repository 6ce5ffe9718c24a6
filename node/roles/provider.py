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
from node.net.streams import RequestHandler, RequestRejected
from node.roles.base import BaseRole, NodeAPI
from node.work_messages import KEYS_PROTOCOL, KeyGrant
from protocols.crypto import address_of, hex_address
from protocols.encoding import DecodeError, decode, encode
from protocols.key_release import KeyRequest, decide_key_release

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


def release_key(api: NodeAPI, keys: DatasetKeys, worker: bytes, request: KeyRequest) -> bytes:
    """The dataset key sealed to the requesting enclave, or RequestRejected with the first check that failed
    (the rule is `protocols.key_release.decide_key_release`; this adds the key store and the sealing)."""
    decision = decide_key_release(
        api.ledger_view(), api.verifier, api.genesis.attestation_authorities, api.keypair.address, worker, request
    )
    if decision.refusal is not None:
        raise RequestRejected(decision.refusal)
    key = keys.get(decision.blob_hash)
    if key is None:
        raise RequestRejected("dataset-key-unknown")
    return seal_key_to_enclave(key, request.quote.enclave_public_key)


class ProviderRole(BaseRole):
    name = "provider"

    def __init__(self, data_dir: Path) -> None:
        self.keys = DatasetKeys(data_dir)
        self.released = 0
        self.refused = 0

    def notes(self, api: NodeAPI) -> list[str]:
        return [f"provider: {self.released} dataset key(s) released to attested enclaves, {self.refused} refused"]

    def request_handlers(self, api: NodeAPI) -> dict[str, RequestHandler]:
        async def serve_keys(peer: str, data: bytes) -> bytes:
            try:
                request = decode(KeyRequest, data)
            except DecodeError as exc:
                raise RequestRejected(f"malformed key request: {exc.reason}") from None
            worker = address_of(public_key_of(peer))
            try:
                sealed = release_key(api, self.keys, worker, request)
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
