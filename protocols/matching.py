"""PoCo's matchOrders rules (reference/poco.md section 2), each failure a reason code a user can read.

`match_violations` yields every rule a set of orders breaks, in PoCo's order of checks; `check_match`
returns the first (what the ledger reports), `explain` in the order book uses them all. The functions read
the market through `MarketView`, so the ledger, the order book and tests can all supply it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from protocols.crypto import ZERO_ADDRESS, SignatureVerifier
from protocols.orders import (
    DATASET_IGNORED_BITS,
    NO_TAG,
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


class MatchTerms(NamedTuple):
    """What a valid match agrees on, before the ledger locks funds and writes the deal.

    A NamedTuple, not a frozen dataclass: the engine builds one per proposed match, and a frozen dataclass
    pays an object.__setattr__ per field."""

    volume: int
    tag: bytes
    trust: int
    app_owner: bytes
    dataset_owner: bytes
    workerpool_owner: bytes


def deal_tag(app: AppOrder, dataset: DatasetOrder | None, request: RequestOrder) -> int:
    """PoCo rule 06: the deal's tag is A.tag | (D.tag & ~0x0E) | R.tag."""
    if app.tag == NO_TAG and request.tag == NO_TAG and (dataset is None or dataset.tag == NO_TAG):
        return 0  # the common case, without five big-int conversions
    dataset_tag = tag_int(dataset.tag) & ~DATASET_IGNORED_BITS & FULL_MASK if dataset else 0
    return tag_int(app.tag) | dataset_tag | tag_int(request.tag)


def _has_restrictions(
    app: AppOrder, dataset: DatasetOrder | None, workerpool: WorkerpoolOrder, request: RequestOrder
) -> bool:
    """Most orders restrict nothing; this cheap test spares them building the ten pairs."""
    return not (
        app.dataset_restrict == app.workerpool_restrict == app.requester_restrict == ZERO_ADDRESS
        and workerpool.app_restrict == workerpool.dataset_restrict == workerpool.requester_restrict == ZERO_ADDRESS
        and request.workerpool == ZERO_ADDRESS
        and (
            dataset is None
            or dataset.app_restrict == dataset.workerpool_restrict == dataset.requester_restrict == ZERO_ADDRESS
        )
    )


def _restriction_pairs(
    app: AppOrder, dataset: DatasetOrder | None, workerpool: WorkerpoolOrder, request: RequestOrder
) -> tuple[tuple[str, bytes, bytes], ...]:
    """PoCo's ten restriction pairs as (code, restriction, actual address), in PoCo's order: 0x12 is the
    request's workerpool, then 0x13-0x15 the app order's, 0x16-0x18 the dataset order's and 0x19-0x1b the
    workerpool order's restrictions (IexecPoco1 `matchOrders`)."""
    dataset_address = dataset.dataset if dataset else ZERO_ADDRESS
    pool, requester = workerpool.workerpool, request.requester
    pairs: tuple[tuple[str, bytes, bytes], ...] = (
        ("workerpool-restricted", request.workerpool, pool),
        ("app-dataset-restricted", app.dataset_restrict, dataset_address),
        ("app-workerpool-restricted", app.workerpool_restrict, pool),
        ("app-requester-restricted", app.requester_restrict, requester),
    )
    if dataset is not None:
        pairs += (
            ("dataset-app-restricted", dataset.app_restrict, app.app),
            ("dataset-workerpool-restricted", dataset.workerpool_restrict, pool),
            ("dataset-requester-restricted", dataset.requester_restrict, requester),
        )
    return pairs + (
        ("workerpool-app-restricted", workerpool.app_restrict, app.app),
        ("workerpool-dataset-restricted", workerpool.dataset_restrict, dataset_address),
        ("workerpool-requester-restricted", workerpool.requester_restrict, requester),
    )


def _evaluate(
    app: AppOrder,
    dataset: DatasetOrder | None,
    workerpool: WorkerpoolOrder,
    request: RequestOrder,
    view: MarketView,
    verifier: SignatureVerifier,
) -> tuple[list[Violation], MatchTerms | None]:
    """Every rule, in PoCo's order of checks (codes 00 to 60); the terms if none is broken.

    One pass that looks each owner and consumed volume up once: the matching engine runs this for every
    candidate, so it is on the hot path of order handling.
    """
    found: list[Violation] = []
    add = found.append
    # 00, 01: same category, and it exists.
    if request.category != workerpool.category:
        add(Violation("category-mismatch", f"request category {request.category} != pool {workerpool.category}"))
    else:
        _category_known(found, request.category, view)
    # 02: the pool offers at least the trust the request needs.
    if request.trust > workerpool.trust:
        add(Violation("trust-too-low", f"request needs trust {request.trust}, pool offers {workerpool.trust}"))
    # 03-05: prices within the request's ceilings.
    if app.app_price > request.app_max_price:
        add(Violation("app-price-too-high", f"app costs {app.app_price} > max {request.app_max_price}"))
    dataset_price = dataset.dataset_price if dataset else 0
    if dataset_price > request.dataset_max_price:
        add(Violation("dataset-price-too-high", f"dataset costs {dataset_price} > max {request.dataset_max_price}"))
    if workerpool.workerpool_price > request.workerpool_max_price:
        add(Violation(
            "workerpool-price-too-high",
            f"workerpool costs {workerpool.workerpool_price} > max {request.workerpool_max_price}",
        ))
    # 06: the pool covers every feature bit the deal needs. 07: a TEE dataset or request needs a TEE app.
    # Neither can fail when no order has a tag, the common case.
    tag = deal_tag(app, dataset, request)
    if tag or app.tag != NO_TAG:
        missing = tag & ~tag_int(workerpool.tag) & FULL_MASK
        if missing:
            add(Violation("tag-not-covered", f"workerpool tag lacks bits 0x{missing:x}"))
        if (tag & TEE_BIT) != (tag_int(app.tag) & TEE_BIT):
            add(Violation("tee-bit-mismatch", "the dataset or request needs TEE but the app order is not TEE"))
    # 10, 11: the request names exactly these assets.
    if request.app != app.app:
        add(Violation("app-mismatch", f"request wants app 0x{request.app.hex()}, order is for 0x{app.app.hex()}"))
    dataset_address = dataset.dataset if dataset else ZERO_ADDRESS
    if request.dataset != dataset_address:
        code = "dataset-missing" if dataset is None else "dataset-mismatch"
        add(Violation(code, f"request wants dataset 0x{request.dataset.hex()}, got 0x{dataset_address.hex()}"))
    # 12-1b: the ten restriction pairs. Zero means anyone, else only that address (no ERC-734 groups here).
    if _has_restrictions(app, dataset, workerpool, request):
        for code, restrict, actual in _restriction_pairs(app, dataset, workerpool, request):
            if restrict != ZERO_ADDRESS and restrict != actual:
                add(Violation(code, f"restricted to 0x{restrict.hex()}, got 0x{actual.hex()}"))
    # 20/30/40 registered, 21/31/41/50 signed by the owner.
    app_owner = _owner_signed(found, app, "app", app.app, view, verifier)
    dataset_owner = _owner_signed(found, dataset, "dataset", dataset.dataset, view, verifier) if dataset else ZERO_ADDRESS
    pool_owner = _owner_signed(found, workerpool, "workerpool", workerpool.workerpool, view, verifier)
    if not verifier.verify(request) or request.signer != request.requester:
        add(Violation("request-bad-signature", "request order is not signed by its requester"))
    # 60: volume left on every order.
    consumed = view.consumed
    volume = min(
        app.volume - consumed(app.payload_digest),
        workerpool.volume - consumed(workerpool.payload_digest),
        request.volume - consumed(request.payload_digest),
    )
    if dataset is not None:
        volume = min(volume, dataset.volume - consumed(dataset.payload_digest))
    if volume <= 0:
        add(Violation("volume-exhausted", "an order has no volume left (consumed or cancelled)"))
    if found:
        return found, None
    return found, MatchTerms(volume, tag_bytes(tag) if tag else NO_TAG, request.trust or 1, app_owner, dataset_owner, pool_owner)


def _owner_signed(
    found: list[Violation], order: Order, kind: str, address: bytes, view: MarketView, verifier: SignatureVerifier
) -> bytes:
    """The asset's owner; records a violation if it is unregistered or did not sign the order."""
    owner = view.asset_owner(kind, address)
    if owner is None:
        found.append(Violation(f"{kind}-not-registered", f"{kind} 0x{address.hex()} is not registered"))
        return ZERO_ADDRESS
    if not verifier.verify(order) or order.signer != owner:
        found.append(Violation(f"{kind}-bad-signature", f"{kind} order is not signed by the {kind}'s owner"))
    return owner


def order_violations(order: Order, view: MarketView, verifier: SignatureVerifier) -> list[Violation]:
    """What the ledger already says against one order, before any match: the checks of `_evaluate` that
    need no other order. A node runs this before admitting a gossiped order to its book and relaying it,
    so that a correctly signed order for an asset nobody registered (or somebody else's), or in a category
    the genesis lacks, costs the network nothing (DESIGN.md section 4). Spent volume is not checked here:
    a relay one block behind forwards an order that was just consumed in good faith, and a rejection
    would count against it; the book ignores such an order instead."""
    found: list[Violation] = []
    if isinstance(order, AppOrder):
        _owner_signed(found, order, "app", order.app, view, verifier)
    elif isinstance(order, DatasetOrder):
        _owner_signed(found, order, "dataset", order.dataset, view, verifier)
    elif isinstance(order, WorkerpoolOrder):
        _owner_signed(found, order, "workerpool", order.workerpool, view, verifier)
        _category_known(found, order.category, view)
    else:
        if not verifier.verify(order) or order.signer != order.requester:
            found.append(Violation("request-bad-signature", "request order is not signed by its requester"))
        _category_known(found, order.category, view)
        if view.asset_owner("app", order.app) is None:
            found.append(Violation("app-not-registered", f"app 0x{order.app.hex()} is not registered"))
        if order.dataset != ZERO_ADDRESS and view.asset_owner("dataset", order.dataset) is None:
            found.append(Violation("dataset-not-registered", f"dataset 0x{order.dataset.hex()} is not registered"))
    return found


def _category_known(found: list[Violation], category: int, view: MarketView) -> None:
    if not view.category_exists(category):
        found.append(Violation("category-unknown", f"category {category} is not in the genesis"))


def match_violations(
    app: AppOrder,
    dataset: DatasetOrder | None,
    workerpool: WorkerpoolOrder,
    request: RequestOrder,
    view: MarketView,
    verifier: SignatureVerifier,
) -> list[Violation]:
    """Every rule the orders break, in PoCo's order of checks; empty if they match."""
    return _evaluate(app, dataset, workerpool, request, view, verifier)[0]


def check_match(
    app: AppOrder,
    dataset: DatasetOrder | None,
    workerpool: WorkerpoolOrder,
    request: RequestOrder,
    view: MarketView,
    verifier: SignatureVerifier,
) -> MatchTerms | Violation:
    """The terms of the deal these orders make, or the first rule they break (what PoCo would revert with)."""
    found, terms = _evaluate(app, dataset, workerpool, request, view, verifier)
    return terms if terms is not None else found[0]


def deal_id_for(request_hash: bytes, consumed_before: int) -> bytes:
    """PoCo: dealid = H(requestHash || consumed[requestHash] before the match)."""
    return hashlib.sha256(request_hash + consumed_before.to_bytes(8, "big")).digest()


def task_id_for(deal_id: bytes, index: int) -> bytes:
    """PoCo: taskid = H(dealid || idx)."""
    return hashlib.sha256(deal_id + index.to_bytes(8, "big")).digest()

