"""The JSON documents that combine several control answers (a deal with its tasks, a task with the pool's
replicate report, listings): built here once, printed by the CLI's `--json` and served under the
explorer's `/api/`, so both say the same thing with the same field names (README, "JSON output")."""

from __future__ import annotations

from typing import Any

from node.control import AccountInfo, AssetList, DealInfo, DealList, OrderList, TaskInfo, TaskList, TaskReport
from node.jsonout import iso_time, to_json
from protocols.genesis import rlc_text
from protocols.ledger.records import TaskStatus


def order_documents(answer: OrderList) -> list[dict[str, Any]]:
    """Each order's JSON with `remaining`, its volume not yet consumed on the ledger."""
    return [{**to_json(order), "remaining": left} for order, left in zip(answer.orders, answer.remaining, strict=True)]


def task_summary(info: TaskInfo) -> dict[str, Any]:
    """A task in a listing: its id and ledger record (`status` "UNSET" until it is initialized)."""
    return {"task_id": to_json(info.task_id), **(to_json(info.task) if info.task else {"status": "UNSET"})}


def deal_document(info: DealInfo, tasks: list[TaskInfo]) -> dict[str, Any]:
    """`deal show`: the deal, its total price per task, its final deadline and its tasks."""
    assert info.deal is not None
    deal = info.deal
    return {**to_json(info), "final_deadline": iso_time(deal.final_deadline), "task_price": deal.task_price,
            "task_price_rlc": rlc_text(deal.task_price), "tasks": [task_summary(task) for task in tasks]}


def task_document(info: TaskInfo, report: TaskReport) -> dict[str, Any]:
    """`task show`: the ledger's task, deal and contributions, the pool's replicates and verdict, and from
    when the requester can claim it (null once it is completed or failed). Each contribution names its worker."""
    task = info.task
    claimable = task.final_deadline if task is not None and task.status in (TaskStatus.ACTIVE, TaskStatus.REVEALING) else 0
    contributors = task.contributors if task is not None else ()
    contributions = [{"worker": to_json(worker), **to_json(contribution)}  # the ledger keys them by worker
                     for worker, contribution in zip(contributors, info.contributions, strict=False)]
    return {**to_json(info), "contributions": contributions, "report": to_json(report),
            "claimable_from": iso_time(claimable)}


def deal_list_document(answer: DealList) -> dict[str, Any]:
    return {"deals": [{"deal_id": to_json(e.deal_id), **to_json(e.deal)} for e in answer.deals]}


def task_list_document(answer: TaskList) -> dict[str, Any]:
    return {"tasks": [{"task_id": to_json(e.task_id), "roles": list(e.roles), **to_json(e.task)} for e in answer.tasks]}


def asset_list_document(kind: str, answer: AssetList) -> dict[str, Any]:
    return {f"{kind}s": [{"address": to_json(e.address), **to_json(e.asset)} for e in answer.assets]}


def account_document(info: AccountInfo, deals: DealList, tasks: TaskList) -> dict[str, Any]:
    """The explorer's account: balance, frozen, nonce, score, its deals and its tasks."""
    return {**to_json(info), **deal_list_document(deals), **task_list_document(tasks)}
