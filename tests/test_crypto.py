"""Addresses and domain-separated signatures (DESIGN.md section 3).

A signature must be worthless outside the (chain id, kind, payload) it was made for, and the verifier's
cache must never change an answer, only save work.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.crypto import (
    ADDRESS_LEN,
    Keypair,
    Signature,
    SignatureVerifier,
    address_of,
    hex_address,
    parse_address,
    sign,
    signing_message,
    verify_raw,
)
from protocols.encoding import UINT64_MAX, decode, encode, encode_unsigned
from protocols.ledger.transactions import CancelOrder, MatchOrders, Transaction, Transfer
from protocols.orders import NO_TAG, AppOrder, DatasetOrder, Order, RequestOrder, WorkerpoolOrder
from tests.test_encoding import fuzz_settings, orders, transactions

CHAIN = "test-chain"
ALICE = Keypair.from_name("alice")
BOB = Keypair.from_name("bob")
ZERO = bytes(ADDRESS_LEN)


def app_order(**fields: Any) -> AppOrder:
    """An app order signed by ALICE; `fields` override the defaults before signing."""
    order = AppOrder(ALICE.address, 5, 10, NO_TAG, ZERO, ZERO, ZERO, b"salt")
    return sign(ALICE, CHAIN, dataclasses.replace(order, **fields))


def with_digest(obj: Any, payload_digest: bytes) -> Any:
    """Force the memoised payload digest, to model two objects of different kinds with one digest.

    Sets both places the digest has been memoised in (`_unsigned_digest`, or the cached `payload_digest`)."""
    obj.__dict__["_unsigned_digest"] = payload_digest
    obj.__dict__["payload_digest"] = payload_digest
    return obj


# --- addresses --------------------------------------------------------------------------------------------


@fuzz_settings()
@given(seed=st.binary(min_size=32, max_size=32))
def test_address_is_the_first_20_bytes_of_sha256_of_the_key(seed: bytes) -> None:
    key = Keypair(seed)
    assert key.address == hashlib.sha256(key.public_key).digest()[:20] == address_of(key.public_key)
    assert len(key.public_key) == 32
    assert parse_address(hex_address(key.address)) == key.address


def test_keys_from_names_are_deterministic_and_distinct() -> None:
    assert Keypair.from_name("alice").public_key == ALICE.public_key
    assert ALICE.address != BOB.address


def test_parse_address_accepts_both_prefixes_and_none() -> None:
    text = "ab" * ADDRESS_LEN
    assert parse_address("0x" + text) == parse_address("0X" + text) == parse_address(text) == bytes([0xAB]) * 20
    assert hex_address(bytes([0xAB]) * 20) == "0x" + text


@pytest.mark.parametrize(
    "text, message",
    [
        ("0x" + "zz" * 20, "is not hexadecimal"),
        ("0x" + "0" * 39, "is not hexadecimal"),  # odd number of digits
        ("0x" + "00" * 19, "has 19 bytes, expected 20"),
        ("0x" + "00" * 21, "has 21 bytes, expected 20"),
        ("0x" + "00" * 32, "has 32 bytes, expected 20"),  # a public key is not an address
        ("0x", "has 0 bytes, expected 20"),
        ("", "has 0 bytes, expected 20"),
        ("0x0x" + "00" * 20, "is not hexadecimal"),
        (" 0x" + "00" * 20, "is not hexadecimal"),
    ],
)
def test_parse_address_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_address(text)
    assert repr(text) in str(info.value)  # the error quotes the input


@pytest.mark.parametrize("text", ["0x" + "00 " * 20, "0x" + "00" * 19 + "\n00", "0x" + "00" * 20 + " "], ids=["spaces", "newline", "trailing"])
def test_parse_address_rejects_whitespace(text: str) -> None:
    """The documented form is `0x` + 40 hex digits; other strings must not alias a real address."""
    with pytest.raises(ValueError):
        parse_address(text)


# --- signatures -------------------------------------------------------------------------------------------


def test_signature_covers_chain_kind_and_digest() -> None:
    """The signed message is exactly the one of DESIGN.md section 3."""
    order = app_order()
    message = b"pocnet/v1/" + CHAIN.encode() + b"/app-order/" + hashlib.sha256(encode_unsigned(order)).digest()
    assert signing_message(CHAIN, "app-order", order.payload_digest) == message
    assert verify_raw(order.signature, message)
    assert order.signer == ALICE.address


def test_verifier_accepts_a_good_signature() -> None:
    assert SignatureVerifier(CHAIN).verify(app_order())


def test_signature_is_bound_to_the_chain() -> None:
    """Nothing signed on one network replays on another, even one whose id extends this one's."""
    order = app_order()
    for other in ("other-chain", "test-chain-2", "test", ""):
        assert not SignatureVerifier(other).verify(order)


def test_app_order_signature_does_not_verify_as_a_request_order() -> None:
    """Kind binding: the same key, signature and digest, presented as another kind, fails."""
    order = app_order()
    request = RequestOrder(ZERO, 0, ZERO, 0, ZERO, 0, ALICE.address, 1, NO_TAG, 0, 0, ZERO, ZERO, "", b"", order.signature)
    request = with_digest(request, order.payload_digest)
    assert request.payload_digest == order.payload_digest
    assert not SignatureVerifier(CHAIN).verify(request)
    assert not verify_raw(order.signature, signing_message(CHAIN, "request-order", order.payload_digest))


def test_verifier_cache_keeps_kinds_apart() -> None:
    """After a good app-order signature is cached, the same (digest, key, signature) presented as another
    kind must not be served from the cache: the cache must not weaken the domain separation."""
    verifier = SignatureVerifier(CHAIN)
    order = app_order()
    assert verifier.verify(order)
    request = RequestOrder(ZERO, 0, ZERO, 0, ZERO, 0, ALICE.address, 1, NO_TAG, 0, 0, ZERO, ZERO, "", b"", order.signature)
    assert not verifier.verify(with_digest(request, order.payload_digest))
    assert verifier.verifications == 2


@pytest.mark.parametrize(
    "field, value",
    [
        ("app", b"\x01" * 20),
        ("app_price", 6),
        ("volume", 11),
        ("tag", b"\x00" * 31 + b"\x01"),
        ("dataset_restrict", b"\x02" * 20),
        ("workerpool_restrict", b"\x03" * 20),
        ("requester_restrict", b"\x04" * 20),
        ("salt", b"salt2"),
    ],
)
def test_tampering_with_any_field_breaks_the_signature(field: str, value: Any) -> None:
    tampered = dataclasses.replace(app_order(), **{field: value})
    assert not SignatureVerifier(CHAIN).verify(tampered)


def test_tampered_signature_or_swapped_key_fails() -> None:
    order = app_order()
    flipped = bytes([order.signature.signature[0] ^ 1]) + order.signature.signature[1:]
    for signature in (
        Signature(order.signature.public_key, flipped),
        Signature(BOB.public_key, order.signature.signature),
        Signature(bytes(32), bytes(64)),
        Signature(b"\xff" * 32, order.signature.signature),  # not a curve point
    ):
        assert not SignatureVerifier(CHAIN).verify(dataclasses.replace(order, signature=signature))


def test_someone_else_signing_is_valid_but_names_them() -> None:
    """A valid signature by BOB verifies; that BOB does not own the app is the ledger's check (signer)."""
    order = sign(BOB, CHAIN, app_order())
    assert SignatureVerifier(CHAIN).verify(order)
    assert order.signer == BOB.address != order.app


# --- the verification cache -------------------------------------------------------------------------------


def test_each_signature_is_verified_once() -> None:
    verifier = SignatureVerifier(CHAIN)
    order = app_order()
    assert verifier.verify(order) and verifier.verify(order)
    assert verifier.verifications == 1
    copy = decode(AppOrder, encode(order))  # another object with the same content
    assert copy is not order and verifier.verify(copy)
    assert verifier.verifications == 1
    assert verifier.verify(app_order(salt=b"other"))
    assert verifier.verifications == 2


def test_bad_signatures_are_cached_as_bad() -> None:
    verifier = SignatureVerifier(CHAIN)
    forged = dataclasses.replace(app_order(), app_price=0)
    assert not verifier.verify(forged) and not verifier.verify(forged)
    assert verifier.verifications == 1


def test_cache_eviction_only_costs_a_reverification() -> None:
    verifier = SignatureVerifier(CHAIN, capacity=1)
    first, second = app_order(salt=b"1"), app_order(salt=b"2")
    assert verifier.verify(first) and verifier.verify(second)
    assert verifier.verify(first)  # the object remembers its own result
    assert verifier.verifications == 2
    assert verifier.verify(decode(AppOrder, encode(first)))  # a new copy of an evicted order: checked again
    assert verifier.verifications == 3


def test_an_object_verified_on_one_chain_is_not_valid_on_another() -> None:
    """The result an object remembers is bound to the chain it was verified for."""
    order = app_order()
    assert SignatureVerifier(CHAIN).verify(order)
    assert not SignatureVerifier("other-chain").verify(order)
    assert SignatureVerifier(CHAIN).verify(order)


def test_orders_inside_a_transaction_share_the_cache() -> None:
    """An order decoded inside MatchOrders is the same signature as the gossiped order: verified once."""
    verifier = SignatureVerifier(CHAIN)
    order = app_order()
    assert verifier.verify(order)
    tx = sign(ALICE, CHAIN, Transaction(0, CancelOrder(order)))
    decoded = decode(Transaction, encode(tx))
    assert verifier.verify(decoded) and verifier.verify(decoded.body.order)
    assert verifier.verifications == 2  # the order once, the transaction once


# --- payload digests --------------------------------------------------------------------------------------


def _signed_objects(value: Any) -> list[Any]:
    """The value and every signed object nested in it (orders inside bodies)."""
    found = [value] if hasattr(value, "SIGNATURE_KIND") else []
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            inner = getattr(value, f.name)
            if dataclasses.is_dataclass(inner):
                found += _signed_objects(inner)
    return found


@fuzz_settings()
@given(value=orders | transactions)
def test_payload_digest_is_the_same_for_decoded_and_built_objects(value: Order | Transaction) -> None:
    """Decoding memoises the digest from the raw bytes; it must equal the one computed from the object."""
    decoded = decode(type(value), encode(value))
    for built, back in zip(_signed_objects(value), _signed_objects(decoded), strict=True):
        expected = hashlib.sha256(encode_unsigned(built)).digest()
        assert back.payload_digest == built.payload_digest == expected


@fuzz_settings()
@given(nonce=st.integers(0, UINT64_MAX), amount=st.integers(1, UINT64_MAX))
def test_signed_transaction_verifies_after_a_round_trip(nonce: int, amount: int) -> None:
    """What a wallet signs, a peer that decodes the bytes can verify."""
    tx = sign(ALICE, CHAIN, Transaction(nonce, Transfer(BOB.address, amount)))
    decoded = decode(Transaction, encode(tx))
    assert SignatureVerifier(CHAIN).verify(decoded)
    assert decoded.tx_id == tx.tx_id and decoded.signer == ALICE.address


def test_match_orders_digest_covers_the_optional_dataset() -> None:
    """A None dataset order and a present one give different transaction ids."""
    order = app_order()
    request = RequestOrder(ZERO, 0, ZERO, 0, ZERO, 0, ALICE.address, 1, NO_TAG, 0, 0, ZERO, ZERO, "", b"")
    pool = WorkerpoolOrder(ZERO, 0, 1, NO_TAG, 0, 0, ZERO, ZERO, ZERO, b"")
    dataset = DatasetOrder(ZERO, 0, 1, NO_TAG, ZERO, ZERO, ZERO, b"")
    without = Transaction(0, MatchOrders(order, None, pool, request))
    with_dataset = Transaction(0, MatchOrders(order, dataset, pool, request))
    assert without.payload_digest != with_dataset.payload_digest
