"""Transactions of the market: transfers, asset registration, matching orders into deals, cancelling orders."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace

from protocols.crypto import ZERO_ADDRESS
from protocols.ledger.context import TxContext
from protocols.ledger.escrow import Reject, lock
from protocols.ledger.records import App, Dataset, Deal, Resource, Workerpool
from protocols.ledger.state import APP, CONSUMED, DATASET, DEAL, WORKERPOOL, StateView
from protocols.ledger.transactions import (
    CancelOrder,
    MatchOrders,
    RegisterApp,
    RegisterDataset,
    RegisterWorkerpool,
    Transfer,
)
from protocols.matching import MatchTerms, Violation, check_match, deal_id_for
from protocols.orders import AppOrder, DatasetOrder, WorkerpoolOrder, order_asset

# PoCo's WORKERPOOL_STAKE_RATIO: at match time the pool owner locks 30% of the pool price per task, which
# goes to the kitty if the task fails.
WORKERPOOL_STAKE_RATIO = 30


def asset_address(owner: bytes, kind: str, nonce: int) -> bytes:
    """Assets are named by (owner, kind, the registering transaction's nonce), like CREATE addresses."""
    return hashlib.sha256(b"pocnet/asset/" + owner + kind.encode() + nonce.to_bytes(8, "big")).digest()[:20]


class LedgerMarketView:
    """matching.MarketView over the ledger's state."""

    def __init__(self, view: StateView, categories: Mapping[int, object]) -> None:
        self.view = view
        self.categories = categories

    def asset_owner(self, kind: str, address: bytes) -> bytes | None:
        prefix = {"app": APP, "dataset": DATASET, "workerpool": WORKERPOOL}[kind]
        record = self.view.get(prefix + address)
        return record.owner if record is not None else None

    def category_exists(self, category: int) -> bool:
        return category in self.categories

    def consumed(self, order_hash: bytes) -> int:
        record = self.view.get(CONSUMED + order_hash)
        return record.volume if record is not None else 0


def transfer(ctx: TxContext, body: Transfer) -> bytes:
    if body.amount == 0:
        raise Reject("zero-amount", "a transfer must move at least 1 nRLC")
    view = ctx.view
    sender = view.account(ctx.sender)
    if sender.balance < body.amount:
        raise Reject("insufficient-balance", f"balance {sender.balance} < {body.amount}")
    view.put_account(ctx.sender, replace(sender, balance=sender.balance - body.amount))
    receiver = view.account(body.to)
    view.put_account(body.to, replace(receiver, balance=receiver.balance + body.amount))
    return b""


def register_app(ctx: TxContext, body: RegisterApp) -> bytes:
    address = asset_address(ctx.sender, "app", ctx.nonce)
    ctx.view.put(APP + address, App(ctx.sender, body.name, body.measurement))
    return address


def register_dataset(ctx: TxContext, body: RegisterDataset) -> bytes:
    address = asset_address(ctx.sender, "dataset", ctx.nonce)
    ctx.view.put(DATASET + address, Dataset(ctx.sender, body.name, body.blob_hash))
    return address


def register_workerpool(ctx: TxContext, body: RegisterWorkerpool) -> bytes:
    address = asset_address(ctx.sender, "workerpool", ctx.nonce)
    pool = Workerpool(ctx.sender, body.description, body.worker_stake_ratio, body.scheduler_reward_ratio)
    ctx.view.put(WORKERPOOL + address, pool)
    return address


def match_orders(ctx: TxContext, body: MatchOrders) -> bytes:
    """PoCo matchOrders: check every rule, consume volume, lock escrow and the pool's stake, write the deal."""
    view = ctx.view
    app, dataset, pool, request = body.app_order, body.dataset_order, body.workerpool_order, body.request_order
    terms = check_match(app, dataset, pool, request, LedgerMarketView(view, ctx.rules.categories), ctx.rules.signatures)
    if isinstance(terms, Violation):
        raise Reject(terms.code, terms.detail)
    request_hash = request.payload_digest
    consumed_before = view.consumed(request_hash)
    deal_id = deal_id_for(request_hash, consumed_before)
    if view.deal(deal_id) is not None:  # unreachable while consumed only grows; kept as a guard
        raise Reject("deal-exists", f"deal 0x{deal_id.hex()} already exists")
    for order in (app, dataset, pool, request):
        if order is not None:
            view.put_consumed(order.payload_digest, view.consumed(order.payload_digest) + terms.volume)
    deal = _deal_record(ctx, body, terms, consumed_before)
    lock(view, request.requester, deal.task_price * terms.volume, "requester-balance-too-low")
    lock(view, terms.workerpool_owner, deal.pool_stake_per_task * terms.volume, "workerpool-stake-too-low")
    view.put(DEAL + deal_id, deal)
    return deal_id


def _deal_record(ctx: TxContext, body: MatchOrders, terms: MatchTerms, consumed_before: int) -> Deal:
    request, pool_order = body.request_order, body.workerpool_order
    pool = ctx.view.workerpool(pool_order.workerpool)
    assert pool is not None  # check_match established that it is registered
    dataset = body.dataset_order
    price = pool_order.workerpool_price
    return Deal(
        app=Resource(body.app_order.app, terms.app_owner, body.app_order.app_price),
        dataset=Resource(dataset.dataset, terms.dataset_owner, dataset.dataset_price)
        if dataset
        else Resource(ZERO_ADDRESS, ZERO_ADDRESS, 0),
        workerpool=Resource(pool_order.workerpool, terms.workerpool_owner, price),
        trust=terms.trust,
        category=request.category,
        tag=terms.tag,
        requester=request.requester,
        requester_key=request.signature.public_key,
        beneficiary=request.beneficiary,
        callback=request.callback,
        params=request.params,
        start_time=ctx.block_time,
        bot_first=consumed_before,
        bot_size=terms.volume,
        worker_stake=price * pool.worker_stake_ratio // 100,
        scheduler_reward_ratio=pool.scheduler_reward_ratio,
        pool_stake_per_task=price * WORKERPOOL_STAKE_RATIO // 100,
        time_ref_ms=ctx.rules.categories[request.category].work_clock_time_ref_ms,
    )


def cancel_order(ctx: TxContext, body: CancelOrder) -> bytes:
    """PoCo manage*Order(CLOSE): only the order's owner may cancel; its whole volume becomes consumed."""
    order = body.order
    asset = order_asset(order)
    if isinstance(order, (AppOrder, DatasetOrder, WorkerpoolOrder)):
        kind = {AppOrder: "app", DatasetOrder: "dataset", WorkerpoolOrder: "workerpool"}[type(order)]
        owner = LedgerMarketView(ctx.view, ctx.rules.categories).asset_owner(kind, asset)
        if owner is None:
            raise Reject(f"{kind}-not-registered", f"{kind} 0x{asset.hex()} is not registered")
    else:
        owner = asset
    if owner != ctx.sender:
        raise Reject("not-order-owner", f"only 0x{owner.hex()} may cancel this order")
    ctx.view.put_consumed(order.payload_digest, order.volume)
    return order.payload_digest
