"""The pieces behind `--json`, the listings and the explorer, without a network: the JSON converter's
rules, the listings and order-book filters over a real ledger, the HTML pages' escaping and links, and the
explorer's limits on hostile requests."""

from __future__ import annotations

import pytest

from node.control import OrderbookRequest
from node.http import pages, views
from node.http.server import MAX_IN_FLIGHT, MAX_PATH_BYTES, Guard
from node.jsonout import iso_time, to_json
from node.queries import list_assets, list_deals, list_tasks, order_passes
from protocols.ledger.transactions import RegisterApp
from protocols.orders import tag_bytes
from tests.support import Market


def test_wire_values_become_json_by_the_documented_rules() -> None:
    market = Market.create()
    task_id = market.start_task()
    record = market.deal(market.task(task_id).deal_id)
    task, deal = to_json(market.task(task_id)), to_json(record)
    assert task["type"] == "Task" and task["status"] == "ACTIVE"
    assert task["final_deadline"] == iso_time(market.task(task_id).final_deadline)
    assert task["reveal_deadline"] is None and task["consensus_value"] is None  # unset: null
    assert deal["app"]["price"] == record.app.price and isinstance(deal["app"]["price"], int)
    assert deal["app"]["price_rlc"].endswith(" RLC") and deal["requester"] == "0x" + market.addr("requester").hex()
    order = to_json(market.app_order())
    assert order["type"] == "AppOrder" and len(order["id"]) == 66 and order["signer"] == "0x" + market.addr("appdev").hex()
    transaction = market.signed("requester", RegisterApp("x", b"\x01" * 32))
    assert to_json(transaction)["id"] == "0x" + transaction.tx_id.hex()
    assert iso_time(1_700_000_000_123) == "2023-11-14T22:13:20.123Z" and iso_time(0) is None


def test_listings_show_each_account_its_own_deals_tasks_and_assets() -> None:
    market = Market.create()
    task_id = market.start_task()
    state = market.ledger.state
    deal_id = market.task(task_id).deal_id
    assert [e.deal_id for e in list_deals(state, market.addr("requester")).deals] == [deal_id]
    assert [e.deal_id for e in list_deals(state, market.addr("appdev")).deals] == [deal_id]  # owns the app
    assert list_deals(state, market.addr("w1")).deals == ()
    assert [e.roles for e in list_tasks(state, market.addr("manager"), "").tasks] == [("manager",)]
    assert list_tasks(state, market.addr("manager"), "requester").tasks == ()
    assert [e.address for e in list_assets(state, "app", market.addr("appdev")).assets] == [market.app]
    assert list_assets(state, "app", market.addr("requester")).assets == ()
    assert len(list_assets(state, "workerpool", None).assets) == 1
    assert list_assets(state, "dataset", None, market.dataset).assets[0].address == market.dataset


def test_order_book_filters() -> None:
    market = Market.create()
    app, pool, request = market.app_order(), market.pool_order(trust=3), market.request_order(trust=2)
    everything = OrderbookRequest("")
    assert all(order_passes(o, everything) for o in (app, pool, request))
    assert [order_passes(o, OrderbookRequest("", app=market.app)) for o in (app, pool, request)] == [True, False, True]
    assert [order_passes(o, OrderbookRequest("", min_trust=3)) for o in (app, pool, request)] == [False, True, False]
    assert [order_passes(o, OrderbookRequest("workerpool")) for o in (app, pool, request)] == [False, True, False]
    assert not order_passes(pool, OrderbookRequest("", category=pool.category + 1))
    assert not order_passes(app, OrderbookRequest("", tag=tag_bytes(1)))  # no TEE bit
    assert order_passes(request, OrderbookRequest("", requester=market.addr("requester")))


def test_pages_escape_what_the_ledger_holds_and_link_ids() -> None:
    page = pages.render("app", {"name": "<script>alert(1)</script>", "owner": "0x" + "ab" * 20,
                                "dataset": "0x" + "00" * 20, "deal_id": "0x" + "cd" * 32, "status": "COMPLETED"},
                        "/api/app/x")
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert f'href="/search?q=0x{"ab" * 20}"' in page and f'href="/deal/0x{"cd" * 32}"' in page
    assert "<td>none</td>" in page and '<span class="status-COMPLETED">' in page
    book = pages.render("orders", {"orders": [{"type": "AppOrder", "id": "0x" + "ef" * 32, "remaining": 7, "volume": 9,
                                               "tag": "0x" + "00" * 32}]}, "/api/orders")
    assert "<th>remaining</th>" in book and "<td>7</td>" in book and "<th>tag</th>" not in book


def test_explorer_parameters_are_parsed_strictly() -> None:
    assert views.hex_id("0x" + "AB" * 32, 32, "an id") == b"\xab" * 32
    for bad in ("0x12", "0x" + "zz" * 32, "0x" + "ab" * 33, ""):
        with pytest.raises(views.BadRequest):
            views.hex_id(bad, 32, "an id")
    for bad in ("-1", "1e3", "9" * 30, "0x10"):
        with pytest.raises(views.BadRequest):
            views.number(bad, "count", 20, 100)
    assert views.number(None, "count", 20, 100) == 20


def test_the_guard_refuses_before_any_work() -> None:
    guard = Guard(app=None)  # type: ignore[arg-type]  # _refusal never calls the app
    ok = {"type": "http", "method": "GET", "path": "/", "raw_path": b"/", "query_string": b""}
    assert guard._refusal(ok) is None
    assert guard._refusal({**ok, "method": "POST"})[0] == 405  # type: ignore[index]
    assert guard._refusal({**ok, "raw_path": b"/" + b"a" * MAX_PATH_BYTES})[0] == 414  # type: ignore[index]
    assert guard._refusal({**ok, "query_string": b"q=" + b"a" * 5000})[0] == 414  # type: ignore[index]
    guard.in_flight = MAX_IN_FLIGHT
    assert guard._refusal(ok)[0] == 503  # type: ignore[index]
