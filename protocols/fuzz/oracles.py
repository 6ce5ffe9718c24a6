"""The contracts the fuzzer checks on every input, as functions that raise `OracleViolation`.

They are the protocol's promises about hostile input (DESIGN.md sections 3 and 5, STYLE.md "hypothesis"):
- a decoder answers `DecodeError` with a reason, or a value whose canonical encoding is exactly the input;
  msgspec's fast path and the field-by-field slow path agree on accept/reject, value and payload digest;
- the ledger answers an outcome, never an exception; `apply` does not modify the state it is given; a
  rejected transaction writes nothing; no transaction changes the total supply; no order is consumed
  beyond its volume.
The tests call them too (tests/test_fuzz_decoders.py), so a property and a fuzz target cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from protocols.encoding import (
    MAX_MESSAGE_BYTES,
    DecodeError,
    _decode_slowly,
    _fast_decoder,
    decode,
    encode,
)
from protocols.fuzz.market import total_supply
from protocols.ledger.ledger import Ledger, TxOutcome, apply
from protocols.ledger.transactions import MatchOrders, Transaction


class OracleViolation(AssertionError):
    """An input broke one of the protocol's contracts: a bug, whatever the input was.

    A subclass of AssertionError so that tests using these checks fail as they always did; raised
    explicitly (never by `assert`), so the checks also hold under `python -O`."""


def require(condition: bool, what: str) -> None:
    """Raise OracleViolation(`what`) unless `condition` holds."""
    if not condition:
        raise OracleViolation(what)


def check_decode(expected: Any, data: bytes) -> Any | None:
    """`checked_decode`, with None standing for a rejection."""
    value = checked_decode(expected, data)
    return None if isinstance(value, DecodeError) else value


def checked_decode(expected: Any, data: bytes) -> Any:
    """The decoder's whole contract on untrusted bytes; returns the value, or the DecodeError of a rejection.

    Rejected: the slow path (the authority) must reject too and give a reason. Accepted: the value must
    re-encode to the input; the slow path must give an equal value of the same type with the same payload
    digest; and msgspec's fast decoder for the tag, where the class has one, must accept it as well (else
    valid traffic silently takes the slow path, and the two paths disagree about what is valid).
    """
    try:
        value = decode(expected, data)
    except DecodeError as exc:
        require(bool(exc.reason), "a DecodeError must say what was wrong")
        return exc
    require(encode(value) == data, f"{type(value).__name__}: decoded bytes are not the canonical encoding of the value")
    try:
        slow = _decode_slowly(expected, data, MAX_MESSAGE_BYTES)
    except DecodeError as exc:
        raise OracleViolation(f"{type(value).__name__}: the fast path accepted what the slow path rejects: {exc.reason}") from None
    require(slow == value and type(slow) is type(value), f"{type(value).__name__}: the fast and slow paths decode different values")
    require(
        getattr(slow, "payload_digest", None) == getattr(value, "payload_digest", None),
        f"{type(value).__name__}: the fast and slow paths disagree on the payload digest",
    )
    fast = _fast_decoder(type(value))
    if fast is not None:
        try:
            fast(data)
        except Exception as exc:
            raise OracleViolation(f"{type(value).__name__}: valid input refused by the fast path: {type(exc).__name__}: {exc}") from None
    return value


def _consumed_within_volume(ledger: Ledger, tx: Transaction) -> None:
    """No order the transaction names is consumed beyond its volume."""
    body = tx.body
    if not isinstance(body, MatchOrders):
        return
    view = ledger.state.view()
    for order in (body.app_order, body.dataset_order, body.workerpool_order, body.request_order):
        if order is not None:
            consumed = view.consumed(order.payload_digest)
            require(consumed <= order.volume, f"order consumed {consumed} beyond its volume {order.volume}")


def check_apply(ledger: Ledger, tx: Transaction, block_time: int) -> TxOutcome:
    """Apply `tx` to `ledger` both ways (the pure function, then the ledger) and check the ledger's contract."""
    digest, supply = ledger.state.digest(), total_supply(ledger)
    pure = apply(ledger.rules, ledger.state, tx, block_time)
    require(isinstance(pure, TxOutcome), f"apply returned {type(pure).__name__}, not an outcome")
    require(ledger.state.digest() == digest, "apply() modified the state it was given")
    outcome = ledger.apply(tx, block_time)
    require((outcome.code, outcome.created) == (pure.code, pure.created), "the same input gave two outcomes")
    if not outcome.ok:
        require(not outcome.writes, f"rejected ({outcome.code}) with writes")
        require(ledger.state.digest() == digest, f"rejected ({outcome.code}) but the state changed")
    require(total_supply(ledger) == supply, f"{type(tx.body).__name__} ({outcome.code}) changed the total supply")
    _consumed_within_volume(ledger, tx)
    return outcome

