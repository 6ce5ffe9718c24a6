"""PoCo's matchOrders rules (reference/poco.md section 2), each failure a reason code a user can read.

`match_violations` yields every rule a set of orders breaks, in PoCo's order of checks; `check_match`
returns the first (what the ledger reports), `explain` in the order book uses them all. The functions read
the market through `MarketView`, so the ledger, the order book and tests can all supply it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from protocols.crypto import ZERO_ADDRESS, SignatureVerifier
from protocols.orders import (
    DATASET_IGNORED_BITS,
    TEE_BIT,
    AppOrder,
    DatasetOrder,
    Order,
    RequestOrder,
    WorkerpoolOrder,
    tag_bytes,
    tag_int,
)

FULL_MASK = (1 << 256) - 1


class MarketView(Protocol):
    """What matching needs to know of the ledger."""

    def asset_owner(self, kind: str, address: bytes) -> bytes | None:
        """Owner of a registered 'app', 'dataset' or 'workerpool'; None if not registered."""

    def category_exists(self, category: int) -> bool: ...

    def consumed(self, order_hash: bytes) -> int: ...


@dataclass(frozen=True)
class Violation:
    code: str
    detail: str


@dataclass(frozen=True)
class MatchTerms:
    """What a valid match agrees on, before the ledger locks funds and writes the deal."""

    volume: int
    tag: bytes
    trust: int
    app_owner: bytes
    dataset_owner: bytes
    workerpool_owner: bytes


def deal_tag(app: AppOrder, dataset: DatasetOrder | None, request: RequestOrder) -> int:
    """PoCo rule 06: the deal's tag is A.tag | (D.tag & ~0x0E) | R.tag."""
    dataset_tag = tag_int(dataset.tag) & ~DATASET_IGNORED_BITS & FULL_MASK if dataset else 0
    return tag_int(app.tag) | dataset_tag | tag_int(request.tag)


def _restriction(code: str, restrict: bytes, actual: bytes, what: str) -> Iterator[Violation]:
    """Zero means anyone; otherwise only the named address (PoCo _checkIdentity without ERC-734 groups)."""
    if restrict != ZERO_ADDRESS and restrict != actual:
        yield Violation(code, f"{what} is restricted to 0x{restrict.hex()}, got 0x{actual.hex()}")


def match_violations(
    app: AppOrder,
    dataset: DatasetOrder | None,
    workerpool: WorkerpoolOrder,
    request: RequestOrder,
    view: MarketView,
    verifier: SignatureVerifier,
) -> Iterator[Violation]:
    """Every rule broken, in PoCo's order of checks (codes 00 to 60)."""
    # 00, 01: same category, and it exists.
    if request.category != workerpool.category:
        yield Violation("category-mismatch", f"request category {request.category} != pool {workerpool.category}")
    elif not view.category_exists(request.category):
        yield Violation("category-unknown", f"category {request.category} is not in the genesis")
    # 02: the pool offers at least the trust the request needs.
    if request.trust > workerpool.trust:
        yield Violation("trust-too-low", f"request needs trust {request.trust}, pool offers {workerpool.trust}")
    # 03-05: prices within the request's ceilings.
    if app.app_price > request.app_max_price:
        yield Violation("app-price-too-high", f"app costs {app.app_price} > max {request.app_max_price}")
    dataset_price = dataset.dataset_price if dataset else 0
    if dataset_price > request.dataset_max_price:
        yield Violation("dataset-price-too-high", f"dataset costs {dataset_price} > max {request.dataset_max_price}")
    if workerpool.workerpool_price > request.workerpool_max_price:
        yield Violation(
            "workerpool-price-too-high",
            f"workerpool costs {workerpool.workerpool_price} > max {request.workerpool_max_price}",
        )
    # 06: the pool covers every feature bit the deal needs.
    tag = deal_tag(app, dataset, request)
    missing = tag & ~tag_int(workerpool.tag) & FULL_MASK
    if missing:
        yield Violation("tag-not-covered", f"workerpool tag lacks bits 0x{missing:x}")
    # 07: a TEE dataset or request needs a TEE app.
    if (tag & TEE_BIT) != (tag_int(app.tag) & TEE_BIT):
        yield Violation("tee-bit-mismatch", "the dataset or request needs TEE but the app order is not TEE")
    # 10, 11: the request names exactly these assets.
    if request.app != app.app:
        yield Violation("app-mismatch", f"request wants app 0x{request.app.hex()}, order is for 0x{app.app.hex()}")
    dataset_address = dataset.dataset if dataset else ZERO_ADDRESS
    if request.dataset != dataset_address:
        code = "dataset-missing" if dataset is None else "dataset-mismatch"
        yield Violation(code, f"request wants dataset 0x{request.dataset.hex()}, got 0x{dataset_address.hex()}")
    # 12-1b: the ten restriction pairs.
    pool = workerpool.workerpool
    yield from _restriction("app-dataset-restricted", app.dataset_restrict, dataset_address, "app order's dataset")
    yield from _restriction("app-workerpool-restricted", app.workerpool_restrict, pool, "app order's workerpool")
    yield from _restriction("app-requester-restricted", app.requester_restrict, request.requester, "app order's requester")
    if dataset is not None:
        yield from _restriction("dataset-app-restricted", dataset.app_restrict, app.app, "dataset order's app")
        yield from _restriction("dataset-workerpool-restricted", dataset.workerpool_restrict, pool, "dataset order's workerpool")
        yield from _restriction(
            "dataset-requester-restricted", dataset.requester_restrict, request.requester, "dataset order's requester"
        )
    yield from _restriction("workerpool-app-restricted", workerpool.app_restrict, app.app, "workerpool order's app")
    yield from _restriction(
        "workerpool-dataset-restricted", workerpool.dataset_restrict, dataset_address, "workerpool order's dataset"
    )
    yield from _restriction(
        "workerpool-requester-restricted", workerpool.requester_restrict, request.requester, "workerpool order's requester"
    )
    yield from _restriction("workerpool-restricted", request.workerpool, pool, "request's workerpool")
    # 20/30/40 registered, 21/31/41/50 signed by the owner.
    yield from _signed_by_owner(app, "app", app.app, view, verifier)
    if dataset is not None:
        yield from _signed_by_owner(dataset, "dataset", dataset.dataset, view, verifier)
    yield from _signed_by_owner(workerpool, "workerpool", pool, view, verifier)
    if not verifier.verify(request) or request.signer != request.requester:
        yield Violation("request-bad-signature", "request order is not signed by its requester")
    # 60: volume left on every order.
    if remaining_volume(app, dataset, workerpool, request, view) <= 0:
        yield Violation("volume-exhausted", "an order has no volume left (consumed or cancelled)")


def _signed_by_owner(
    order: Order, kind: str, address: bytes, view: MarketView, verifier: SignatureVerifier
) -> Iterator[Violation]:
    owner = view.asset_owner(kind, address)
    if owner is None:
        yield Violation(f"{kind}-not-registered", f"{kind} 0x{address.hex()} is not registered")
    elif not verifier.verify(order) or order.signer != owner:
        yield Violation(f"{kind}-bad-signature", f"{kind} order is not signed by the {kind}'s owner")


def remaining_volume(
    app: AppOrder,
    dataset: DatasetOrder | None,
    workerpool: WorkerpoolOrder,
    request: RequestOrder,
    view: MarketView,
) -> int:
    orders: list[Order] = [app, workerpool, request] + ([dataset] if dataset else [])
    return min(o.volume - view.consumed(o.payload_digest) for o in orders)


def check_match(
    app: AppOrder,
    dataset: DatasetOrder | None,
    workerpool: WorkerpoolOrder,
    request: RequestOrder,
    view: MarketView,
    verifier: SignatureVerifier,
) -> MatchTerms | Violation:
    """The terms of the deal these orders make, or the first rule they break."""
    for violation in match_violations(app, dataset, workerpool, request, view, verifier):
        return violation
    dataset_owner = view.asset_owner("dataset", dataset.dataset) if dataset else ZERO_ADDRESS
    return MatchTerms(
        volume=remaining_volume(app, dataset, workerpool, request, view),
        tag=tag_bytes(deal_tag(app, dataset, request)),
        trust=max(request.trust, 1),
        app_owner=view.asset_owner("app", app.app) or ZERO_ADDRESS,
        dataset_owner=dataset_owner or ZERO_ADDRESS,
        workerpool_owner=view.asset_owner("workerpool", workerpool.workerpool) or ZERO_ADDRESS,
    )


def deal_id_for(request_hash: bytes, consumed_before: int) -> bytes:
    """PoCo: dealid = H(requestHash || consumed[requestHash] before the match)."""
    return hashlib.sha256(request_hash + consumed_before.to_bytes(8, "big")).digest()


def task_id_for(deal_id: bytes, index: int) -> bytes:
    """PoCo: taskid = H(dealid || idx)."""
    return hashlib.sha256(deal_id + index.to_bytes(8, "big")).digest()

