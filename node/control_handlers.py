"""The control API's answers (node/control.py), as a table: request type -> handler.

Each handler takes the node's parts it reads through `ControlNode` (the roles' `NodeAPI` plus the store,
the consensus driver, the outbox...) and the request; adding a request type is one function and one entry
in `HANDLERS`. The longer services live with what they serve: requesters' in node/requester.py, providers'
in node/deploy.py, a worker's certification in its role.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from node import queries
from node.config import NodeConfig
from node.consensus_driver import ConsensusDriver
from node.consensus_link import ConsensusLinks
from node.control import (
    AccountInfo,
    AccountRequest,
    AssetList,
    AssetListRequest,
    BlockList,
    BlocksRequest,
    CertifyPlatformRequest,
    ControlRejected,
    DealInfo,
    DealList,
    DealListRequest,
    DealRequest,
    DeployAppRequest,
    DeployDatasetRequest,
    ExplainRequest,
    FetchResultRequest,
    NodeStatus,
    OrderbookRequest,
    OrderList,
    OrderPublished,
    OrderRequest,
    PlatformCertified,
    PublishOrderRequest,
    ReplicatesQuery,
    RunRequest,
    StatusRequest,
    SubmitRequest,
    TaskInfo,
    TaskList,
    TaskListRequest,
    TaskRequest,
    TxDetail,
    TxLookupRequest,
    TxResultInfo,
    TxResultRequest,
    TxSubmitted,
    ValidatorList,
    ValidatorsRequest,
)
from node.deploy import deploy_app, deploy_dataset
from node.outbox import Outbox
from node.requester import explain_request, fetch_result, find_order, start_run, task_report
from node.roles.base import NodeAPI, Role
from node.roles.provider import ProviderRole
from node.roles.worker import CertifyError, WorkerRole
from node.storage import Store
from protocols.chain import LedgerApplication
from protocols.consensus.mempool import Mempool
from protocols.crypto import address_of
from protocols.ledger.state import EQUIVOCATION

RoleT = TypeVar("RoleT", bound=Role)


class ControlNode(NodeAPI, Protocol):
    """What the control answers read of a node besides the roles' API."""

    config: NodeConfig
    store: Store
    app: LedgerApplication
    driver: ConsensusDriver
    mempool: Mempool
    outbox: Outbox
    roles: list[Role]
    is_validator: bool
    http_url: str
    links: ConsensusLinks | None


async def status(node: ControlNode, request: StatusRequest) -> NodeStatus:
    tip = node.driver.machine.tip
    return NodeStatus(
        peer_id=node.host.peer_id,
        address=node.keypair.address,
        roles=tuple(node.config.roles),
        listen_addrs=tuple(node.host.addrs),
        height=tip.height,
        tip_hash=tip.block_id,
        tip_time=tip.time,
        peers=len(node.host.connected_peers()),
        mempool=len(node.mempool),
        orders=len(node.order_book),
        validator=node.is_validator,
        notes=tuple(note[:1024] for role in node.roles for note in role.notes(node)),
        equivocations=sum(1 for _ in node.app.ledger.state.items_with_prefix(EQUIVOCATION)),
        http=node.http_url,
        link_addrs=tuple(node.links.addrs) if node.links is not None else (),
    )


async def account(node: ControlNode, request: AccountRequest) -> AccountInfo:
    address = request.address or node.keypair.address
    if len(address) != 20:
        raise ControlRejected("an address is 20 bytes")
    found = node.ledger_view().account(address)
    return AccountInfo(address, found.balance, found.frozen, found.nonce, found.score)


async def submit(node: ControlNode, request: SubmitRequest) -> TxSubmitted:
    try:
        tx = await node.submit(request.body)
    except ValueError as exc:
        raise ControlRejected(f"transaction refused: {exc}") from None
    return TxSubmitted(tx.tx_id, tx.nonce)


async def tx_result(node: ControlNode, request: TxResultRequest) -> TxResultInfo:
    result = node.store.tx_result(request.tx_id)
    if result is not None:
        return TxResultInfo(result.height, result.code, result.created)
    return TxResultInfo(0, node.outbox.status(request.tx_id), b"")


async def orderbook(node: ControlNode, request: OrderbookRequest) -> OrderList:
    return queries.filter_orders(node.order_book, node.ledger_view(), request)


async def order(node: ControlNode, request: OrderRequest) -> OrderList:
    return queries.orders_with_remaining([find_order(node, request.order_id)], node.ledger_view())


async def publish_order(node: ControlNode, request: PublishOrderRequest) -> OrderPublished:
    try:
        signed = await node.publish_order(request.order)
    except ValueError as exc:
        raise ControlRejected(f"order refused: {exc}") from None
    return OrderPublished(signed.payload_digest)


async def deal_list(node: ControlNode, request: DealListRequest) -> DealList:
    return queries.list_deals(node.app.ledger.state, request.account or node.keypair.address)


async def task_list(node: ControlNode, request: TaskListRequest) -> TaskList:
    return queries.list_tasks(node.app.ledger.state, request.account or node.keypair.address, request.role)


async def asset_list(node: ControlNode, request: AssetListRequest) -> AssetList:
    owner = queries.owner_or_everyone(request.owner, request.everyone, node.keypair.address)
    return queries.list_assets(node.app.ledger.state, request.kind, owner, request.address)


async def blocks(node: ControlNode, request: BlocksRequest) -> BlockList:
    return queries.block_summaries(node.store, node.app.decode, node.height, request.top, request.count, request.with_txs)


async def tx_lookup(node: ControlNode, request: TxLookupRequest) -> TxDetail:
    return queries.tx_detail(node.store, node.app.decode, request.tx_id)


async def validators(node: ControlNode, request: ValidatorsRequest) -> ValidatorList:
    evidence = (
        f"validator 0x{e.first.signature.public_key.hex()} signed two different votes at height "
        f"{e.first.height} round {e.first.round} step {e.first.step}" for e in node.driver.evidence
    )
    return queries.validators(node.genesis, node.store, node.height, evidence)


async def deal(node: ControlNode, request: DealRequest) -> DealInfo:
    return DealInfo(request.deal_id, node.ledger_view().deal(request.deal_id), node.height)


async def task(node: ControlNode, request: TaskRequest) -> TaskInfo:
    view = node.ledger_view()
    found = view.task(request.task_id)
    if found is None:
        return TaskInfo(request.task_id, None, node.height)
    contributions = tuple(c for w in found.contributors if (c := view.contribution(request.task_id, w)) is not None)
    return TaskInfo(request.task_id, found, node.height, view.deal(found.deal_id), contributions)


async def deploy_dataset_with_keys(node: ControlNode, request: DeployDatasetRequest) -> object:
    return await deploy_dataset(node, request, role_of(node, ProviderRole).keys)


async def fetch(node: ControlNode, request: FetchResultRequest) -> object:
    return await fetch_result(node, request.task_id)


async def explain(node: ControlNode, request: ExplainRequest) -> object:
    return explain_request(node, request)


async def certify_platform(node: ControlNode, request: CertifyPlatformRequest) -> PlatformCertified:
    try:
        grant = await role_of(node, WorkerRole).certify(node, request.authority or None)
    except CertifyError as exc:
        raise ControlRejected(f"not certified: {exc}") from None
    return PlatformCertified(
        grant.certificate.platform_public_key, address_of(grant.certificate.signature.public_key), grant.policy
    )


def role_of(node: ControlNode, kind: type[RoleT]) -> RoleT:
    for role in node.roles:
        if isinstance(role, kind):
            return role
    raise ControlRejected(f"this node does not have the {kind.name} role (start it with --role {kind.name})")


HANDLERS: dict[type, Callable[[Any, Any], Awaitable[object]]] = {
    StatusRequest: status,
    AccountRequest: account,
    SubmitRequest: submit,
    TxResultRequest: tx_result,
    OrderbookRequest: orderbook,
    OrderRequest: order,
    DealListRequest: deal_list,
    TaskListRequest: task_list,
    AssetListRequest: asset_list,
    BlocksRequest: blocks,
    TxLookupRequest: tx_lookup,
    ValidatorsRequest: validators,
    PublishOrderRequest: publish_order,
    DealRequest: deal,
    TaskRequest: task,
    DeployAppRequest: deploy_app,
    DeployDatasetRequest: deploy_dataset_with_keys,
    RunRequest: start_run,
    FetchResultRequest: fetch,
    ReplicatesQuery: task_report,
    ExplainRequest: explain,
    CertifyPlatformRequest: certify_platform,
}


async def handle_control(node: ControlNode, request: object) -> object:
    """The answer to one decoded control request; ControlRejected (answered as a ControlError) for a
    request this node cannot serve."""
    handler = HANDLERS.get(type(request))
    if handler is None:
        raise ControlRejected(f"unsupported request {type(request).__name__}")
    return await handler(node, request)
