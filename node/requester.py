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
    CandidateExplained,
    ControlRejected,
    ExplainRequest,
    Explanation,
    ReplicateLogs,
    ReplicatesQuery,
    TaskReport,
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
from node.net.streams import RequestError
from node.work_messages import POOL_PROTOCOL, PoolResponse, ReplicateInfo, ReplicateList, ReplicatesRequest, ResultLocation
from protocols.crypto import ZERO_ADDRESS, hex_address
from protocols.encoding import DecodeError, decode, encode
from protocols.genesis import rlc_text
from protocols.ledger.market import LedgerMarketView
from protocols.orderbook import explain
from protocols.ledger.records import TaskStatus
from protocols.ledger.transactions import RegisterApp, RegisterDataset
from protocols.matching import deal_id_for
from protocols.orders import Order, RequestOrder, tag_bytes, tag_int

if TYPE_CHECKING:
    from node.node import Node
    from node.roles.provider import ProviderRole

log = logging.getLogger(__name__)

# A sealed result archive a requester accepts from a worker.
MAX_RESULT_BYTES = 64 * 1024 * 1024
# A replicate's sealed logs: two output tails of the worker's LOG_TAIL_BYTES and a few fields.
MAX_LOGS_BYTES = 256 * 1024
# How long a requester's node waits for the pool manager's account of a task.
REPORT_TIMEOUT_S = 5.0


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
        raise ControlRejected(
            f"the cheapest offer costs {rlc_text(price)} per task, over your maximum of {rlc_text(request.max_price)}"
            " (raise it with --max-price)"
        )
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


def find_order(node: Node, prefix: bytes) -> Order:
    """The one order in the book whose id starts with `prefix`, or ControlRejected saying why not."""
    found = node.order_book.find(prefix)
    if len(found) == 1:
        return found[0]
    if not found:
        raise ControlRejected(
            f"no order 0x{prefix.hex()}... in this node's book (spent, cancelled, expired or not heard of yet)"
        )
    raise ControlRejected(f"0x{prefix.hex()}... names {len(found)} orders: give more of the id")


def explain_request(node: Node, request: ExplainRequest) -> Explanation:
    """Every rule each candidate combination of orders breaks with this request (protocols.orderbook.explain)."""
    order = find_order(node, request.order_id)
    if not isinstance(order, RequestOrder):
        raise ControlRejected(f"0x{order.payload_digest.hex()} is a {type(order).__name__}: explain takes a request order")
    view = LedgerMarketView(node.ledger_view(), node.app.ledger.rules.categories)
    candidates = tuple(
        CandidateExplained(
            report.app_order.payload_digest,
            report.dataset_order.payload_digest if report.dataset_order else b"",
            report.workerpool_order.payload_digest,
            tuple(f"{v.code}: {v.detail}"[:1024] for v in report.violations[:64]),
        )
        for report in explain(order, node.order_book, view, node.verifier)
    )
    return Explanation(order, candidates)


async def task_report(node: Node, query: ReplicatesQuery) -> TaskReport:
    """Ask the deal's pool manager how the task's replicates went; with `logs`, fetch and open each
    replicate's sealed output (only the requester's key opens it)."""
    view = node.ledger_view()
    task = view.task(query.task_id)
    deal = view.deal(task.deal_id) if task else None
    if task is None or deal is None:
        raise ControlRejected(f"task 0x{query.task_id.hex()} is not known to this node (not initialized yet?)")
    if query.logs and deal.requester != node.keypair.address:
        raise ControlRejected("logs are sealed to the requester: ask the requester's node")
    peer = await reach(node.host, node.directory, deal.workerpool.owner)
    if peer is None:
        return TaskReport("", (), (), False)
    try:
        answer = decode(
            PoolResponse,
            await node.host.request(peer, POOL_PROTOCOL, encode(ReplicatesRequest(query.task_id)), REPORT_TIMEOUT_S),
        )
    except (RequestError, DecodeError) as exc:
        log.info("event=replicates-unavailable task=%s reason=%r", query.task_id.hex()[:16], str(exc))
        return TaskReport("", (), (), False)
    if not isinstance(answer, ReplicateList):
        return TaskReport("", (), (), False)
    logs = [await _replicate_logs(node, info) for info in answer.replicates if query.logs and info.logs_blob]
    return TaskReport(answer.verdict, answer.replicates, tuple(logs), True)


async def _replicate_logs(node: Node, info: ReplicateInfo) -> ReplicateLogs:
    peer = await reach(node.host, node.directory, info.worker)
    if peer is None:
        return ReplicateLogs(info.worker, b"", f"worker {hex_address(info.worker)} is not reachable")
    try:
        sealed = await fetch_blob(node.host, peer, info.logs_blob, MAX_LOGS_BYTES, RESULT_PROTOCOL)
        return ReplicateLogs(info.worker, open_result(sealed, node.keypair.seed)[:MAX_LOGS_BYTES], "")
    except (BlobError, SealError) as exc:
        return ReplicateLogs(info.worker, b"", f"cannot get the logs: {exc}")


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
