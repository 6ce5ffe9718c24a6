"""Control-API services for requesters and providers: deploying apps and datasets, requesting an
execution like `iexec app run`, and fetching a completed task's result.

They run inside the node (which holds the key), on behalf of the CLI.
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING

from node.blobs import RESULT_PROTOCOL, BlobError, fetch_blob
from node.control import (
    ControlRejected,
    Deployed,
    DeployAppRequest,
    DeployDatasetRequest,
    ResultArchive,
    RunRequest,
    RunStarted,
)
from node.directory import reach
from node.enclave.bundle import measurement
from node.enclave.sealing import SealError, encrypt_dataset, open_result
from node.work_messages import ResultLocation
from protocols.crypto import ZERO_ADDRESS, hex_address
from protocols.encoding import DecodeError, decode
from protocols.ledger.records import TaskStatus
from protocols.ledger.transactions import RegisterApp, RegisterDataset
from protocols.matching import deal_id_for
from protocols.orders import RequestOrder, tag_bytes, tag_int

if TYPE_CHECKING:
    from node.node import Node
    from node.roles.provider import ProviderRole

log = logging.getLogger(__name__)

# A sealed result archive a requester accepts from a worker.
MAX_RESULT_BYTES = 64 * 1024 * 1024


async def deploy_app(node: Node, request: DeployAppRequest) -> Deployed:
    digest = measurement(request.bundle)
    node.blobs.put(request.bundle)
    tx = await _submit(node, RegisterApp(request.name, digest))
    log.info("event=app-deployed name=%s measurement=%s", request.name, digest.hex()[:16])
    return Deployed(tx.tx_id, digest)


async def deploy_dataset(node: Node, request: DeployDatasetRequest, provider: ProviderRole) -> Deployed:
    key, blob = encrypt_dataset(request.plaintext)
    blob_hash = node.blobs.put(blob)
    provider.keys.put(blob_hash, key)
    tx = await _submit(node, RegisterDataset(request.name, blob_hash))
    log.info("event=dataset-deployed name=%s blob=%s", request.name, blob_hash.hex()[:16])
    return Deployed(tx.tx_id, blob_hash)


async def _submit(node: Node, body: object):  # type: ignore[no-untyped-def]
    try:
        return await node.submit(body)  # type: ignore[arg-type]
    except ValueError as exc:
        raise ControlRejected(f"transaction refused: {exc}") from None


async def start_run(node: Node, request: RunRequest) -> RunStarted:
    """Pick the cheapest compatible orders in the book, sign a request at their prices, publish it."""
    book = node.order_book
    apps = [e.order for e in book.app_entries(request.app)]
    if not apps:
        raise ControlRejected(f"no app order for {hex_address(request.app)} in the order book (is it published?)")
    datasets = [e.order for e in book.dataset_entries(request.dataset)] if request.dataset else [None]
    if not datasets:
        raise ControlRejected(f"no dataset order for {hex_address(request.dataset)} in the order book")
    pools = [
        e.order
        for e in book.pool_entries(request.category)
        if e.order.trust >= request.trust and (not request.workerpool or e.order.workerpool == request.workerpool)
    ]
    if not pools:
        raise ControlRejected(f"no workerpool order in category {request.category} offering trust {request.trust}")
    app, dataset, pool = apps[0], datasets[0], pools[0]
    price = app.app_price + (dataset.dataset_price if dataset else 0) + pool.workerpool_price
    if price > request.max_price:
        raise ControlRejected(f"the cheapest offer costs {price} nRLC per task, over your maximum {request.max_price}")
    me = node.keypair.address
    tag = tag_int(app.tag) | (tag_int(dataset.tag) if dataset else 0)
    order = RequestOrder(
        app=request.app, app_max_price=app.app_price,
        dataset=request.dataset or ZERO_ADDRESS, dataset_max_price=dataset.dataset_price if dataset else 0,
        workerpool=request.workerpool or ZERO_ADDRESS, workerpool_max_price=pool.workerpool_price,
        requester=me, volume=1, tag=tag_bytes(tag & 1), category=request.category, trust=request.trust,
        beneficiary=me, callback=ZERO_ADDRESS, params=json.dumps({"iexec_args": request.args}), salt=os.urandom(16),
    )
    try:
        signed = await node.publish_order(order)
    except ValueError as exc:
        raise ControlRejected(f"request order refused: {exc}") from None
    return RunStarted(signed.payload_digest, deal_id_for(signed.payload_digest, 0), price)


async def fetch_result(node: Node, task_id: bytes) -> ResultArchive:
    view = node.ledger_view()
    task = view.task(task_id)
    if task is None or task.status != TaskStatus.COMPLETED:
        raise ControlRejected("the task is not completed")
    deal = view.deal(task.deal_id)
    assert deal is not None
    if deal.requester != node.keypair.address:
        raise ControlRejected("results are sealed to the requester: ask the requester's node")
    try:
        location = decode(ResultLocation, task.results)
    except DecodeError:
        raise ControlRejected("the task was finalized without a result location") from None
    peer = await reach(node.host, node.directory, location.worker)
    if peer is None:
        raise ControlRejected(f"worker {hex_address(location.worker)} is not reachable")
    try:
        sealed = await fetch_blob(node.host, peer, location.result_blob, MAX_RESULT_BYTES, RESULT_PROTOCOL)
        return ResultArchive(open_result(sealed, node.keypair.seed))
    except (BlobError, SealError) as exc:
        raise ControlRejected(f"cannot get the result: {exc}") from None
