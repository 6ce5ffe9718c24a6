"""Plain HTML for the explorer's pages, rendered from the same JSON documents `/api/` serves.

One generic renderer shows any document: an object as a two-column table, a list of objects as a table
with a column per field, ids and addresses as links (a deal id to its deal page, anything else through
`/search`). Every string from the ledger is escaped. The chain page refreshes itself every few seconds;
nothing needs JavaScript or a build step.
"""

from __future__ import annotations

import html
import re
from typing import Any

# The chain page reloads this often: a block every second or so on a devnet.
REFRESH_S = 3
# Fields shown in a list's table; the rest of each entry is on its own page.
MAX_COLUMNS = 9
TITLES = {
    "blocks": "Chain", "status": "Node", "block": "Block", "tx": "Transaction", "account": "Account",
    "app": "App", "dataset": "Dataset", "workerpool": "Workerpool", "deal": "Deal", "task": "Task",
    "orders": "Order book", "order": "Order", "validators": "Validators", "search": "Search",
}
# What a page shows first (what people come for); the other fields follow in the document's order.
FIRST = {
    "task": ("task_id", "task", "contributions", "report", "claimable_from"),
    "deal": ("deal_id", "tasks", "deal", "task_price", "task_price_rlc", "final_deadline"),
    "account": ("address", "balance_rlc", "frozen_rlc", "nonce", "deals", "tasks"),
    "blocks": ("height", "blocks"),
}
# The columns of a list, by the list's field name; other lists show their first MAX_COLUMNS plain fields.
COLUMNS = {
    "orders": ("id", "type", "remaining", "volume", "app", "dataset", "workerpool", "app_price_rlc", "dataset_price_rlc",
               "workerpool_price_rlc", "category", "trust", "requester"),
    "deals": ("deal_id", "requester", "trust", "category", "start_time", "bot_size", "settled"),
    "tasks": ("task_id", "status", "roles", "index", "final_deadline", "reveal_counter", "winner_counter"),
    "blocks": ("height", "time", "round", "signers", "tx_count", "block_id"),
    "validators": ("name", "address", "last_signed"),
    "contributions": ("worker", "status", "weight", "result_hash"),
    "replicates": ("worker", "status", "detail"),
}
# Fields whose value names a page directly; other 32-byte values (hashes, keys) are not pages. Every
# address is one (an asset's page, else an account's), found through /search.
LINKS = {"deal_id": "/deal/", "task_id": "/task/", "tx_id": "/tx/", "id": "/search?q=", "request_hash": "/search?q=",
         "app_order": "/order/", "dataset_order": "/order/", "workerpool_order": "/order/"}
_ID = re.compile(r"0x[0-9a-f]{64}")
_ADDRESS = re.compile(r"0x[0-9a-f]{40}")
STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #1d2330; }
header { background: #1d2330; color: #fff; padding: .6em 1em; display: flex; gap: 1.2em; align-items: center; }
header a { color: #ffd75e; text-decoration: none; font-weight: 600; }
header form { margin-left: auto; } header input { width: 34em; padding: .3em; }
main { padding: 1em; } h1 { font-size: 1.4em; margin: .2em 0 .6em; }
table { border-collapse: collapse; margin: .3em 0 1em; font-size: .9em; }
th, td { border: 1px solid #d0d4dc; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f1f3f7; } td { max-width: 70em; overflow-wrap: anywhere; } td.mono, .mono { font-family: ui-monospace, monospace; word-break: break-all; }
.status-COMPLETED { color: #0a7d2c; font-weight: 700; } .status-FAILED { color: #b3261e; font-weight: 700; }
.status-ACTIVE, .status-REVEALING { color: #9a6700; font-weight: 700; }
.error { color: #b3261e; } footer { padding: 1em; color: #667; font-size: .8em; }
"""


def render(name: str, document: Any, api_path: str) -> str:
    """A page for one document; `api_path` is its JSON twin, linked at the bottom."""
    title = TITLES.get(name, name)
    subject = _subject(name, document)
    if isinstance(document, dict) and name in FIRST:
        first = {key: document[key] for key in FIRST[name] if key in document}
        document = {**first, **document}
    body = f"<h1>{html.escape(title)}{subject}</h1>\n{_value(document)}"
    footer = f'the same as JSON: <a href="{html.escape(api_path)}">{html.escape(api_path)}</a>'
    return _page(title, body, footer, refresh=name == "blocks")


def error_page(name: str, reason: str, status: int) -> str:
    title = TITLES.get(name, name)
    return _page(title, f"<h1>{html.escape(title)}</h1><p class=error>{status}: {html.escape(reason)}</p>", "", False)


def _subject(name: str, document: Any) -> str:
    if not isinstance(document, dict):
        return ""
    for key in ("task_id", "deal_id", "tx_id", "address", "id", "height"):
        if key in document and name not in ("blocks", "status", "validators", "orders"):
            return f' <span class="mono">{html.escape(str(document[key]))}</span>'
    return ""


def _page(title: str, body: str, footer: str, refresh: bool) -> str:
    meta = f'<meta http-equiv="refresh" content="{REFRESH_S}">' if refresh else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">{meta}<title>pocnet · {html.escape(title)}</title>
<style>{STYLE}</style></head>
<body><header><a href="/">Chain</a><a href="/orders">Order book</a><a href="/validators">Validators</a>
<a href="/status">Node</a><a href="/metrics">Metrics</a>
<form action="/search" method="get"><input name="q" placeholder="block height, address, deal / task / tx / order id"
 aria-label="search"> <button>Search</button></form></header>
<main>{body}</main><footer>{footer}</footer></body></html>"""


def _value(value: Any, key: str = "") -> str:
    if isinstance(value, dict):
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_value(v, k)}</td></tr>" for k, v in value.items() if k != "type")
        return f"<table>{rows}</table>"
    if isinstance(value, list):
        if not value:
            return "<em>none</em>"
        if all(isinstance(item, dict) for item in value):
            return _table(value, COLUMNS.get(key))
        return "<br>".join(_value(item, key) for item in value)
    if value is None:
        return "—"
    if key == "height" and isinstance(value, int) and value:
        return f'<a href="/block/{value}">{value}</a>'
    if key == "status" and isinstance(value, str):
        return f'<span class="status-{html.escape(value)}">{html.escape(value)}</span>'
    text = str(value)
    if not isinstance(value, str):
        return html.escape(text)
    if _ADDRESS.fullmatch(text) and not text.strip("0x"):
        return "none"  # the zero address: no dataset, no restriction
    target = "/search?q=" if _ADDRESS.fullmatch(text) else LINKS.get(key) if _ID.fullmatch(text) else None
    if target is not None:
        return f'<a class="mono" href="{html.escape(target + text)}">{html.escape(text)}</a>'
    if _ID.fullmatch(text):
        return f'<span class="mono">{html.escape(text)}</span>'
    return html.escape(text)


def _table(items: list[dict[str, Any]], wanted: tuple[str, ...] | None) -> str:
    columns: list[str] = []
    for item in items:
        for key in item:
            if key != "type" and key not in columns and not isinstance(item[key], (dict, list)):
                columns.append(key)
    columns = [c for c in wanted if any(c in item for item in items)] if wanted else columns[:MAX_COLUMNS]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join("<tr>" + "".join(f"<td>{_value(item.get(c), c)}</td>" for c in columns) + "</tr>" for item in items)
    return f"<table><tr>{head}</tr>{rows}</table>"
