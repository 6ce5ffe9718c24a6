"""The four PoCo orders (reference/poco.md section 1), signed by their owners.

Field names follow PoCo's `IexecLibOrders_v5` in snake case. An order's id is its payload digest, the
SHA-256 of its encoding without the signature; the ledger counts consumed volume against that id.
Restrictions use the zero address for "anyone"; PoCo's ERC-734 group restrictions have no equivalent here
because pocnet has no contracts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, TypeVar

from protocols.crypto import EMPTY_SIGNATURE, ZERO_ADDRESS, Address, Signature, SignedMixin
from protocols.encoding import U64, Bytes32, MaxLen, Range, wire

# params is PoCo's JSON string (iexec_args, input files...); iexec-sdk requests stay far below this.
MAX_PARAMS_LEN = 4096
# Volume is a task count; 2^32 keeps price * volume well inside the ledger's 64-bit amounts check.
MAX_VOLUME = (1 << 32) - 1
Volume = Annotated[int, Range(1, MAX_VOLUME)]
Trust = Annotated[int, Range(0, 1 << 16)]
Salt = Annotated[bytes, MaxLen(32)]

TAG_LEN = 32
NO_TAG = bytes(TAG_LEN)
TEE_BIT = 1  # bit 0 of the tag (reference/poco.md section 5)
# Bits 1-3 name the TEE framework; a dataset's framework bits do not constrain the deal (rule 06).
DATASET_IGNORED_BITS = 0x0E


def tag_int(tag: bytes) -> int:
    return int.from_bytes(tag, "big")


def tag_bytes(value: int) -> bytes:
    return value.to_bytes(TAG_LEN, "big")


@wire(tag=10)
@dataclass(frozen=True)
class AppOrder(SignedMixin):
    SIGNATURE_KIND = "app-order"

    app: Address
    app_price: U64
    volume: Volume
    tag: Bytes32
    dataset_restrict: Address
    workerpool_restrict: Address
    requester_restrict: Address
    salt: Salt
    signature: Signature = EMPTY_SIGNATURE


@wire(tag=11)
@dataclass(frozen=True)
class DatasetOrder(SignedMixin):
    SIGNATURE_KIND = "dataset-order"

    dataset: Address
    dataset_price: U64
    volume: Volume
    tag: Bytes32
    app_restrict: Address
    workerpool_restrict: Address
    requester_restrict: Address
    salt: Salt
    signature: Signature = EMPTY_SIGNATURE


@wire(tag=12)
@dataclass(frozen=True)
class WorkerpoolOrder(SignedMixin):
    SIGNATURE_KIND = "workerpool-order"

    workerpool: Address
    workerpool_price: U64
    volume: Volume
    tag: Bytes32
    category: U64
    trust: Trust
    app_restrict: Address
    dataset_restrict: Address
    requester_restrict: Address
    salt: Salt
    signature: Signature = EMPTY_SIGNATURE


@wire(tag=13)
@dataclass(frozen=True)
class RequestOrder(SignedMixin):
    SIGNATURE_KIND = "request-order"

    app: Address
    app_max_price: U64
    dataset: Address
    dataset_max_price: U64
    workerpool: Address
    workerpool_max_price: U64
    requester: Address
    volume: Volume
    tag: Bytes32
    category: U64
    trust: Trust
    beneficiary: Address
    callback: Address
    params: Annotated[str, MaxLen(MAX_PARAMS_LEN)]
    salt: Salt
    signature: Signature = EMPTY_SIGNATURE


Order = AppOrder | DatasetOrder | WorkerpoolOrder | RequestOrder
# One kind of order, for functions that give back the kind they were given (signing, publishing).
OrderT = TypeVar("OrderT", bound=Order)


def order_asset(order: Order) -> bytes:
    """The address whose owner must sign the order (the requester for a request order)."""
    if isinstance(order, AppOrder):
        return order.app
    if isinstance(order, DatasetOrder):
        return order.dataset
    if isinstance(order, WorkerpoolOrder):
        return order.workerpool
    return order.requester


def order_price(order: Order) -> int:
    if isinstance(order, AppOrder):
        return order.app_price
    if isinstance(order, DatasetOrder):
        return order.dataset_price
    if isinstance(order, WorkerpoolOrder):
        return order.workerpool_price
    return order.app_max_price + order.dataset_max_price + order.workerpool_max_price


# --- templates ------------------------------------------------------------------------------------
# Unsigned orders with iexec-sdk's defaults (reference/poco.md section 1): no tag, no restriction; app and
# dataset orders offer ASSET_ORDER_VOLUME tasks, workerpool and request orders one. Whoever signs (a wallet,
# a node for its operator) fills in only what differs. The salt makes otherwise equal orders distinct.

ASSET_ORDER_VOLUME = 1_000_000


def app_order(
    app: bytes, price: int, salt: bytes, *, volume: int = ASSET_ORDER_VOLUME, tag: bytes = NO_TAG,
    dataset_restrict: bytes = ZERO_ADDRESS, workerpool_restrict: bytes = ZERO_ADDRESS,
    requester_restrict: bytes = ZERO_ADDRESS,
) -> AppOrder:
    return AppOrder(app, price, volume, tag, dataset_restrict, workerpool_restrict, requester_restrict, salt)


def dataset_order(
    dataset: bytes, price: int, salt: bytes, *, volume: int = ASSET_ORDER_VOLUME, tag: bytes = NO_TAG,
    app_restrict: bytes = ZERO_ADDRESS, workerpool_restrict: bytes = ZERO_ADDRESS,
    requester_restrict: bytes = ZERO_ADDRESS,
) -> DatasetOrder:
    return DatasetOrder(dataset, price, volume, tag, app_restrict, workerpool_restrict, requester_restrict, salt)


def workerpool_order(
    workerpool: bytes, price: int, category: int, trust: int, salt: bytes, *, volume: int = 1, tag: bytes = NO_TAG,
    app_restrict: bytes = ZERO_ADDRESS, dataset_restrict: bytes = ZERO_ADDRESS,
    requester_restrict: bytes = ZERO_ADDRESS,
) -> WorkerpoolOrder:
    return WorkerpoolOrder(
        workerpool, price, volume, tag, category, trust, app_restrict, dataset_restrict, requester_restrict, salt
    )


def request_order(
    app: bytes, app_max_price: int, category: int, requester: bytes, salt: bytes, *,
    dataset: bytes = ZERO_ADDRESS, dataset_max_price: int = 0, workerpool: bytes = ZERO_ADDRESS,
    workerpool_max_price: int = 0, volume: int = 1, tag: bytes = NO_TAG, trust: int = 0,
    beneficiary: bytes | None = None, callback: bytes = ZERO_ADDRESS, params: str = "",
) -> RequestOrder:
    """The requester is its own beneficiary unless told otherwise."""
    return RequestOrder(
        app=app, app_max_price=app_max_price, dataset=dataset, dataset_max_price=dataset_max_price,
        workerpool=workerpool, workerpool_max_price=workerpool_max_price, requester=requester, volume=volume,
        tag=tag, category=category, trust=trust, beneficiary=requester if beneficiary is None else beneficiary,
        callback=callback, params=params, salt=salt,
    )
