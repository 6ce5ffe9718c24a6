"""Control-API services for providers: deploying an app (its bundle served as a blob, its measurement
registered) and a dataset (encrypted in the node, which keeps the key for the provider role to release).

They run inside the node (which holds the key), on behalf of the CLI, through the roles' `NodeAPI`.
"""

from __future__ import annotations

import logging

from node.control import ControlRejected, DeployAppRequest, DeployDatasetRequest, Deployed
from node.enclave.bundle import measurement
from node.enclave.sealing import encrypt_dataset
from node.roles.base import NodeAPI
from node.roles.provider import DatasetKeys
from protocols.ledger.transactions import RegisterApp, RegisterDataset, Transaction, TxBody

log = logging.getLogger(__name__)


async def deploy_app(api: NodeAPI, request: DeployAppRequest) -> Deployed:
    digest = measurement(request.bundle)
    api.blobs.put(request.bundle)
    tx = await _submit(api, RegisterApp(request.name, digest))
    log.info("event=app-deployed name=%s measurement=%s", request.name, digest.hex()[:16])
    return Deployed(tx.tx_id, digest)


async def deploy_dataset(api: NodeAPI, request: DeployDatasetRequest, keys: DatasetKeys) -> Deployed:
    key, blob = encrypt_dataset(request.plaintext)
    blob_hash = api.blobs.put(blob)
    keys.put(blob_hash, key)
    tx = await _submit(api, RegisterDataset(request.name, blob_hash))
    log.info("event=dataset-deployed name=%s blob=%s", request.name, blob_hash.hex()[:16])
    return Deployed(tx.tx_id, blob_hash)


async def _submit(api: NodeAPI, body: TxBody) -> Transaction:
    try:
        return await api.submit(body)
    except ValueError as exc:
        raise ControlRejected(f"transaction refused: {exc}") from None
