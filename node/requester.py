"""Control-API services for requesters: requesting an execution like `iexec app run`, explaining why a
request does not match, asking a pool how a task's replicates went, and fetching a completed task's result.

They run inside the node (which holds the key), on behalf of the CLI, through the roles' `NodeAPI`.
"""

from __future__ import annotations

import itertools
import json
import logging
import os

from node.blobs import RESULT_PROTOCOL, BlobError, fetch_blob
from node.control import (
    CandidateExplained,
    ControlRejected,
    ExplainRequest,
    Explanation,
    ReplicateLogs,
    ReplicatesQuery,
    ResultArchive,
    RunRequest,
    RunStarted,
    TaskReport,
)
from node.directory import reach
from node.enclave.sealing import SealError, open_result
from node.net.streams import RequestError
from node.roles.base import NodeAPI, market_view
from node.work_messages import (
    POOL_PROTOCOL,
    PoolResponse,
    ReplicateInfo,
    ReplicateList,
    ReplicatesRequest,
    ResultLocation,
)
from protocols import orders
from protocols.crypto import ZERO_ADDRESS, hex_address, sign
from protocols.encoding import DecodeError, decode, encode
from protocols.genesis import rlc_text
from protocols.ledger.records import TaskStatus
from protocols.matching import deal_id_for, match_violations
from protocols.orderbook import explain
from protocols.orders import AppOrder, DatasetOrder, Order, RequestOrder, WorkerpoolOrder, tag_bytes, tag_int

log = logging.getLogger(__name__)

# A sealed result archive a requester accepts from a worker.
MAX_RESULT_BYTES = 64 * 1024 * 1024
# A replicate's sealed logs: two output tails of the worker's LOG_TAIL_BYTES and a few fields.
MAX_LOGS_BYTES = 256 * 1024
# `app run` considers at most this many combinations of offers (cheapest first); each costs a signature.
MAX_RUN_CANDIDATES = 256
# How long a requester's node waits for the pool manager's account of a task.
REPORT_TIMEOUT_S = 5.0


async def start_run(node: NodeAPI, request: RunRequest) -> RunStarted:
    """Like `iexec app run`: sign a request at the prices of the cheapest app, dataset and workerpool orders
    in the book that it would match under every PoCo rule (restrictions, trust, category, tag, volume...),
    within the ceiling, and publish it. Refused, with the broken rules of the cheapest candidate, when
    nothing in the book could match."""
    book = node.order_book
    apps = [e.order for e in book.app_entries(request.app)]
    if not apps:
        raise ControlRejected(f"no app order for {hex_address(request.app)} in the order book (is it published?)")
    datasets: list[DatasetOrder | None] = [e.order for e in book.dataset_entries(request.dataset)] if request.dataset else [None]
    if not datasets:
        raise ControlRejected(f"no dataset order for {hex_address(request.dataset)} in the order book")
    pools = [e.order for e in book.pool_entries(request.category)
             if not request.workerpool or e.order.workerpool == request.workerpool]
    if not pools:
        raise ControlRejected(
            f"no workerpool order in category {request.category}"
            + (f" from pool {hex_address(request.workerpool)}" if request.workerpool else "")
            + " (a pool offers tasks only while it has ready workers: see `pocnet orderbook workerpool`)"
        )
    view = market_view(node)
    salt = os.urandom(16)
    combinations = sorted(
        itertools.islice(itertools.product(apps, datasets, pools), MAX_RUN_CANDIDATES),
        key=lambda c: _price(*c),
    )
    cheapest_refusal = ""
    for app, dataset, pool in combinations:
        price = _price(app, dataset, pool)
        if price > request.max_price:
            cheapest_refusal = cheapest_refusal or (
                f"the cheapest offer costs {rlc_text(price)} per task, over your maximum of"
                f" {rlc_text(request.max_price)} (raise it with --max-price)"
            )
            break
        order = sign(node.keypair, node.genesis.chain_id, _request_order(node, request, app, dataset, pool, salt))
        violations = match_violations(app, dataset, pool, order, view, node.verifier)
        if not violations:
            try:
                signed = await node.publish_order(order)
            except ValueError as exc:
                raise ControlRejected(f"request order refused: {exc}") from None
            return RunStarted(signed.payload_digest, deal_id_for(signed.payload_digest, 0), price)
        cheapest_refusal = cheapest_refusal or "no offer in the book matches; the cheapest breaks: " + "; ".join(
            f"{v.code} ({v.detail})" for v in violations
        )
    raise ControlRejected(cheapest_refusal)


def _price(app: AppOrder, dataset: DatasetOrder | None, pool: WorkerpoolOrder) -> int:
    return app.app_price + (dataset.dataset_price if dataset else 0) + pool.workerpool_price


def _request_order(
    node: NodeAPI, request: RunRequest, app: AppOrder, dataset: DatasetOrder | None, pool: WorkerpoolOrder, salt: bytes
) -> RequestOrder:
    """The request order that would match these offers at their prices (volume 1, the node as requester)."""
    me = node.keypair.address
    tag = tag_int(app.tag) | (tag_int(dataset.tag) if dataset else 0)
    return orders.request_order(
        request.app, app.app_price, request.category, me, salt,
        dataset=request.dataset or ZERO_ADDRESS, dataset_max_price=dataset.dataset_price if dataset else 0,
        workerpool=request.workerpool or ZERO_ADDRESS, workerpool_max_price=pool.workerpool_price,
        tag=tag_bytes(tag & 1), trust=request.trust, params=json.dumps({"iexec_args": request.args}),
    )


def find_order(node: NodeAPI, prefix: bytes) -> Order:
    """The one order in the book whose id starts with `prefix`, or ControlRejected saying why not."""
    found = node.order_book.find(prefix)
    if len(found) == 1:
        return found[0]
    if not found:
        raise ControlRejected(
            f"no order 0x{prefix.hex()}... in this node's book (spent, cancelled, expired or not heard of yet)"
        )
    raise ControlRejected(f"0x{prefix.hex()}... names {len(found)} orders: give more of the id")


def explain_request(node: NodeAPI, request: ExplainRequest) -> Explanation:
    """Every rule each candidate combination of orders breaks with this request (protocols.orderbook.explain)."""
    order = find_order(node, request.order_id)
    if not isinstance(order, RequestOrder):
        raise ControlRejected(f"0x{order.payload_digest.hex()} is a {type(order).__name__}: explain takes a request order")
    view = market_view(node)
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


async def task_report(node: NodeAPI, query: ReplicatesQuery) -> TaskReport:
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


async def _replicate_logs(node: NodeAPI, info: ReplicateInfo) -> ReplicateLogs:
    peer = await reach(node.host, node.directory, info.worker)
    if peer is None:
        return ReplicateLogs(info.worker, b"", f"worker {hex_address(info.worker)} is not reachable")
    try:
        sealed = await fetch_blob(node.host, peer, info.logs_blob, MAX_LOGS_BYTES, RESULT_PROTOCOL)
        return ReplicateLogs(info.worker, open_result(sealed, node.keypair.seed)[:MAX_LOGS_BYTES], "")
    except (BlobError, SealError) as exc:
        return ReplicateLogs(info.worker, b"", f"cannot get the logs: {exc}")


async def fetch_result(node: NodeAPI, task_id: bytes) -> ResultArchive:
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
