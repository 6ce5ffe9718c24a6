"""What each explorer page shows, as the JSON document `/api/...` serves and the HTML page renders.

Every document comes from read-only control requests answered by the node (the same answers the CLI
gets), through `node.documents` and `node.jsonout`, so a page, its `/api/` twin and `pocnet ... --json`
agree. Path parameters are parsed strictly here; a bad one is a `BadRequest` (400) saying what was
expected, something absent a `NotFound` (404).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from node.control import (
    READ_ONLY_REQUESTS,
    AccountInfo,
    AccountRequest,
    AssetList,
    AssetListRequest,
    BlockList,
    BlocksRequest,
    ControlRejected,
    DealInfo,
    DealList,
    DealListRequest,
    DealRequest,
    OrderbookRequest,
    OrderList,
    OrderRequest,
    ReplicatesQuery,
    StatusRequest,
    TaskInfo,
    TaskList,
    TaskListRequest,
    TaskReport,
    TaskRequest,
    TxDetail,
    TxLookupRequest,
    ValidatorsRequest,
)
from node.documents import account_document, asset_list_document, deal_document, order_documents, task_document
from node.jsonout import to_json
from node.metrics import NodeMetrics
from protocols.matching import task_id_for
from protocols.orders import tag_bytes

ASSET_KINDS = ("app", "dataset", "workerpool")
ORDER_KINDS = ("app", "dataset", "workerpool", "request")
# The chain page's default and largest page of blocks.
BLOCKS_PAGE = 20
MAX_BLOCKS_PAGE = 100
MAX_HEIGHT = 2**63 - 1
_HEX = re.compile(r"0x[0-9a-fA-F]*")


class BadRequest(Exception):
    """A malformed parameter: 400 with this reason."""


class NotFound(Exception):
    """Nothing by that id or address on this node: 404 with this reason."""


class Explorer(Protocol):
    """What the explorer needs of a node: its control answers and its metrics."""

    metrics: NodeMetrics

    async def handle_control(self, request: object) -> object: ...


async def ask(explorer: Explorer, request: object) -> Any:
    """A read-only control request (anything else is a bug here, never a client's doing)."""
    assert isinstance(request, READ_ONLY_REQUESTS), f"{type(request).__name__} is not read-only"
    try:
        return await explorer.handle_control(request)
    except ControlRejected as exc:
        raise BadRequest(str(exc)) from None


# --- parameters ---------------------------------------------------------------------------------------


def hex_id(text: str, size: int, what: str) -> bytes:
    """`0x` + exactly 2*size hex digits (the prefix is optional)."""
    digits = text[2:] if text.lower().startswith("0x") else text
    if len(digits) != 2 * size or not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise BadRequest(f"{what} must be 0x + {2 * size} hex digits, got {text[:80]!r}")
    return bytes.fromhex(digits)


def number(text: str | None, what: str, default: int, high: int) -> int:
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 19 or int(text) > high:
        raise BadRequest(f"{what} must be a whole number from 0 to {high}, got {text[:40]!r}")
    return int(text)


def address(text: str | None, what: str) -> bytes:
    return hex_id(text, 20, what) if text else b""


# --- documents ----------------------------------------------------------------------------------------


async def status(explorer: Explorer) -> dict[str, Any]:
    return to_json(await ask(explorer, StatusRequest()))


async def blocks(explorer: Explorer, top: str | None, count: str | None) -> dict[str, Any]:
    answer: BlockList = await ask(explorer, BlocksRequest(
        number(top, "top", 0, MAX_HEIGHT), max(1, number(count, "count", BLOCKS_PAGE, MAX_BLOCKS_PAGE))))
    return to_json(answer)


async def block(explorer: Explorer, height: str) -> dict[str, Any]:
    wanted = number(height, "height", 0, MAX_HEIGHT)
    answer: BlockList = await ask(explorer, BlocksRequest(wanted, 1, with_txs=True))
    if wanted == 0 or not answer.blocks or answer.blocks[0].height != wanted:
        raise NotFound(f"no block {wanted} on this node (its height is {answer.height})")
    return to_json(answer.blocks[0])


async def transaction(explorer: Explorer, tx_id: str) -> dict[str, Any]:
    answer: TxDetail = await ask(explorer, TxLookupRequest(hex_id(tx_id, 32, "a transaction id")))
    if answer.tx is None:
        raise NotFound(f"no committed transaction {tx_id} on this node")
    return to_json(answer)


async def account(explorer: Explorer, text: str) -> dict[str, Any]:
    who = hex_id(text, 20, "an address")
    info: AccountInfo = await ask(explorer, AccountRequest(who))
    deals: DealList = await ask(explorer, DealListRequest(who))
    tasks: TaskList = await ask(explorer, TaskListRequest(who, ""))
    return account_document(info, deals, tasks)


async def asset(explorer: Explorer, kind: str, text: str) -> dict[str, Any]:
    where = hex_id(text, 20, f"a {kind} address")
    answer: AssetList = await ask(explorer, AssetListRequest(kind, b"", True, where))
    if not answer.assets:
        raise NotFound(f"no {kind} {text} is registered")
    pick = {name: where if name == kind else b"" for name in ASSET_KINDS}
    orders: OrderList = await ask(
        explorer, OrderbookRequest("", app=pick["app"], dataset=pick["dataset"], workerpool=pick["workerpool"])
    )
    return {**asset_list_document(kind, answer)[f"{kind}s"][0], "orders": order_documents(orders)}


async def deal(explorer: Explorer, text: str) -> dict[str, Any]:
    deal_id = hex_id(text, 32, "a deal id")
    info: DealInfo = await ask(explorer, DealRequest(deal_id))
    if info.deal is None:
        raise NotFound(f"no deal {text} on this node")
    first, size = info.deal.bot_first, info.deal.bot_size
    tasks = [await ask(explorer, TaskRequest(task_id_for(deal_id, i))) for i in range(first, first + size)]
    return deal_document(info, tasks)


async def task(explorer: Explorer, text: str) -> dict[str, Any]:
    task_id = hex_id(text, 32, "a task id")
    info: TaskInfo = await ask(explorer, TaskRequest(task_id))
    if info.task is None:
        raise NotFound(f"no initialized task {text} on this node")
    report: TaskReport = await ask(explorer, ReplicatesQuery(task_id, False))
    return task_document(info, report)


async def orders(explorer: Explorer, query: dict[str, str]) -> dict[str, Any]:
    kind = query.get("kind", "")
    if kind and kind not in ORDER_KINDS:
        raise BadRequest(f"kind must be one of {', '.join(ORDER_KINDS)}, got {kind[:40]!r}")
    category = query.get("category", "")
    tag = number(query.get("tag"), "tag", 0, 2**32)
    answer: OrderList = await ask(explorer, OrderbookRequest(
        kind, app=address(query.get("app"), "app"), dataset=address(query.get("dataset"), "dataset"),
        workerpool=address(query.get("workerpool"), "workerpool"), requester=address(query.get("requester"), "requester"),
        category=number(category, "category", 0, 2**32) if category else -1,
        min_trust=number(query.get("min_trust"), "min_trust", 0, 2**32), tag=tag_bytes(tag) if tag else b"",
    ))
    return {"orders": order_documents(answer)}


async def order(explorer: Explorer, text: str) -> dict[str, Any]:
    try:
        answer: OrderList = await ask(explorer, OrderRequest(hex_id(text, 32, "an order id")))
    except BadRequest as exc:
        if "no order" in str(exc):
            raise NotFound(str(exc)) from None
        raise
    return order_documents(answer)[0]


async def validators(explorer: Explorer) -> dict[str, Any]:
    return to_json(await ask(explorer, ValidatorsRequest()))


async def search(explorer: Explorer, text: str) -> str:
    """The page a search term names: a block height, an address (an asset, else an account) or a 32-byte
    id (a transaction, deal, task or order, in that order)."""
    term = text.strip()
    if term.isdigit():
        return f"/block/{number(term, 'a height', 0, MAX_HEIGHT)}"
    if not _HEX.fullmatch(term if term.lower().startswith("0x") else "0x" + term):
        raise BadRequest(f"search for a block height, an address (0x + 40 hex) or an id (0x + 64 hex), got {term[:80]!r}")
    digits = term[2:] if term.lower().startswith("0x") else term
    if len(digits) == 40:
        where = bytes.fromhex(digits)
        for kind in ASSET_KINDS:
            found: AssetList = await ask(explorer, AssetListRequest(kind, b"", True, where))
            if found.assets:
                return f"/{kind}/0x{digits.lower()}"
        return f"/account/0x{digits.lower()}"
    if len(digits) == 64:
        key = bytes.fromhex(digits)
        pages: list[tuple[str, Any]] = [
            ("tx", lambda: ask(explorer, TxLookupRequest(key))), ("deal", lambda: ask(explorer, DealRequest(key))),
            ("task", lambda: ask(explorer, TaskRequest(key))),
        ]
        for page, lookup in pages:
            answer = await lookup()
            if getattr(answer, "tx", None) or getattr(answer, "deal", None) or getattr(answer, "task", None):
                return f"/{page}/0x{digits.lower()}"
        try:
            await ask(explorer, OrderRequest(key))
            return f"/order/0x{digits.lower()}"
        except BadRequest:
            pass
    raise NotFound(f"nothing on this node is named {term[:80]!r}")
