"""Read-only queries over a node's ledger state, order book and block store: the listings behind
`pocnet deal list`, `task list`, `app list`, the order-book filters, and the explorer's blocks,
transactions and validators.

Each function takes the few things it reads (a state, a book, a store), never the node, and answers with
the control API's wire types, so the CLI's `--json` and the explorer's `/api/` show the same documents.
Listings walk the state's table (the state is in memory) and keep the newest `MAX_LIST` entries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from node.control import (
    MAX_LIST,
    AssetEntry,
    AssetList,
    BlockList,
    BlockSummary,
    ControlRejected,
    DealEntry,
    DealList,
    OrderbookRequest,
    OrderList,
    TaskEntry,
    TaskList,
    TxDetail,
    TxSummary,
    ValidatorInfo,
    ValidatorList,
)
from node.storage import Store
from protocols.genesis import Genesis
from protocols.ledger.records import Deal
from protocols.ledger.state import APP, DATASET, DEAL, TASK, WORKERPOOL, LedgerState, StateView
from protocols.ledger.transactions import Transaction
from protocols.orderbook import OrderBook
from protocols.orders import AppOrder, DatasetOrder, Order, RequestOrder, WorkerpoolOrder, tag_int

ORDER_KINDS: dict[str, type] = {
    "app": AppOrder, "dataset": DatasetOrder, "workerpool": WorkerpoolOrder, "request": RequestOrder,
}
ASSET_TABLES = {"app": APP, "dataset": DATASET, "workerpool": WORKERPOOL}
TASK_ROLES = ("requester", "worker", "manager")
# How many recent certificates `validators` reads to say when each validator last signed.
VALIDATOR_LOOKBACK = 20


# --- order book ----------------------------------------------------------------------------------------


def _order_field(order: Order, name: str) -> bytes | None:
    """The order's asset or requester named `name`, None when this kind of order has no such field (a
    filter on it then lets the order through only if the filter is unset)."""
    value = getattr(order, name, None)
    return value if isinstance(value, bytes) else None


def order_passes(order: Order, query: OrderbookRequest) -> bool:
    """Whether an order passes every filter of the query (unset filters pass everything)."""
    kind = ORDER_KINDS.get(query.kind)
    if kind is not None and not isinstance(order, kind):
        return False
    for name in ("app", "dataset", "workerpool", "requester"):
        wanted = getattr(query, name)
        if wanted and _order_field(order, name) != wanted:
            return False
    category = getattr(order, "category", None)
    if query.category >= 0 and category != query.category:
        return False
    if query.min_trust and getattr(order, "trust", 0) < query.min_trust:
        return False
    wanted_tag = tag_int(query.tag) if query.tag else 0
    return tag_int(order.tag) & wanted_tag == wanted_tag


def filter_orders(book: OrderBook, view: StateView, query: OrderbookRequest) -> OrderList:
    if query.kind and query.kind not in ORDER_KINDS:
        raise ControlRejected(f"unknown order kind {query.kind!r}: use one of {', '.join(ORDER_KINDS)}")
    orders = tuple(o for o in book.orders() if order_passes(o, query))[:1000]
    return orders_with_remaining(orders, view)


def orders_with_remaining(orders: Iterable[Order], view: StateView) -> OrderList:
    listed = tuple(orders)
    return OrderList(listed, tuple(o.volume - view.consumed(o.payload_digest) for o in listed))


# --- deals, tasks, assets ---------------------------------------------------------------------------------


def _involves(deal: Deal, account: bytes) -> bool:
    return account in (deal.requester, deal.app.owner, deal.dataset.owner, deal.workerpool.owner)


def list_deals(state: LedgerState, account: bytes) -> DealList:
    """Deals in which `account` is the requester or owns one of the assets, newest first."""
    found = [
        DealEntry(key[len(DEAL):], deal) for key, deal in state.items_with_prefix(DEAL) if _involves(deal, account)
    ]
    found.sort(key=lambda entry: entry.deal.start_time, reverse=True)
    return DealList(tuple(found[:MAX_LIST]))


def task_roles(deal: Deal | None, contributors: tuple[bytes, ...], account: bytes) -> tuple[str, ...]:
    roles = []
    if deal is not None and deal.requester == account:
        roles.append("requester")
    if account in contributors:
        roles.append("worker")
    if deal is not None and deal.workerpool.owner == account:
        roles.append("manager")
    return tuple(roles)


def list_tasks(state: LedgerState, account: bytes, role: str) -> TaskList:
    """Tasks of `account` as requester, worker (it contributed) or manager (its pool), newest first."""
    if role and role not in TASK_ROLES:
        raise ControlRejected(f"unknown role {role!r}: use one of {', '.join(TASK_ROLES)}")
    view = state.view()
    found = []
    for key, task in state.items_with_prefix(TASK):
        roles = task_roles(view.deal(task.deal_id), task.contributors, account)
        if roles and (not role or role in roles):
            found.append(TaskEntry(key[len(TASK):], task, roles))
    found.sort(key=lambda entry: entry.task.final_deadline, reverse=True)
    return TaskList(tuple(found[:MAX_LIST]))


def list_assets(state: LedgerState, kind: str, owner: bytes | None, address: bytes = b"") -> AssetList:
    """Registered assets of one kind, of one owner (None: everyone's), or the one at `address`."""
    table = ASSET_TABLES.get(kind)
    if table is None:
        raise ControlRejected(f"unknown asset kind {kind!r}: use one of {', '.join(ASSET_TABLES)}")
    if address:
        asset = state.get(table + address)
        return AssetList((AssetEntry(address, asset),) if asset is not None else ())
    found = [
        AssetEntry(key[len(table):], asset)
        for key, asset in state.items_with_prefix(table)
        if owner is None or asset.owner == owner
    ]
    found.sort(key=lambda entry: entry.address)
    return AssetList(tuple(found[:MAX_LIST]))


# --- blocks, transactions, validators -----------------------------------------------------------------------


def block_summaries(
    store: Store, decode_tx: Callable[[bytes], Transaction], tip: int, top: int, count: int, with_txs: bool
) -> BlockList:
    """Blocks from `top` (0: the tip) down, at most `count`; with their transactions' outcomes if asked."""
    start = min(top or tip, tip)
    blocks = []
    for height in range(start, max(start - count, 0), -1):
        decided = store.decided_block(height)
        if decided is None:
            continue
        block, certificate = decided
        txs: list[TxSummary] = []
        for data in block.txs if with_txs else ():
            tx = decode_tx(data)
            result = store.tx_result(tx.tx_id)
            txs.append(TxSummary(tx.tx_id, tx.signer, tx.nonce, type(tx.body).__name__, result.code if result else "?"))
        blocks.append(BlockSummary(
            height, certificate.block_id, block.time, certificate.round, len(certificate.signatures), len(block.txs),
            tuple(txs),
        ))
    return BlockList(tuple(blocks), tip)


def tx_detail(store: Store, decode_tx: Callable[[bytes], Transaction], tx_id: bytes) -> TxDetail:
    result = store.tx_result(tx_id)
    if result is None:
        return TxDetail(tx_id, None, 0, "unknown transaction", b"")
    decided = store.decided_block(result.height)
    tx = decode_tx(decided[0].txs[result.position]) if decided else None
    return TxDetail(tx_id, tx, result.height, result.code, result.created)


def validators(genesis: Genesis, store: Store, tip: int, evidence: Iterable[str]) -> ValidatorList:
    """The validator set with the last height each one's precommit is in a certificate (recent ones only)."""
    last_signed: dict[bytes, int] = {}
    for height in range(tip, max(tip - VALIDATOR_LOOKBACK, 0), -1):
        decided = store.decided_block(height)
        if decided is None:
            continue
        for signature in decided[1].signatures:
            last_signed.setdefault(signature.public_key, height)
    return ValidatorList(
        tuple(
            ValidatorInfo(v.name, v.address, v.public_key, last_signed.get(v.public_key, 0))
            for v in genesis.validators
        ),
        tuple(evidence)[-100:],
    )


def owner_or_everyone(owner: bytes, everyone: bool, me: bytes) -> bytes | None:
    """Listing filters: an explicit owner, everyone's (None), or else the node's own account."""
    if everyone:
        return None
    return owner or me

