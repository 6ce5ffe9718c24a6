"""Protocol-level fuzzing: untrusted bytes through the decoders, and what still decodes into the ledger.

Two contracts are checked on hostile input:
- the decoder answers `DecodeError`, or a value whose canonical encoding is exactly the input (so one value
  has one encoding and one hash); no other exception ever escapes (DESIGN.md section 3);
- the ledger answers an outcome for any decodable transaction, never an exception; a rejected
  transaction changes nothing, and no transaction changes the total supply (STYLE.md, hypothesis).

The examples per test default to a few dozen, which keeps the suite fast; set POCNET_FUZZ_EXAMPLES to fuzz longer.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import replace
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.fuzz.mutators import replaced, tree_nodes
from protocols.crypto import Keypair, sign
from protocols.encoding import UINT64_MAX, encode
from protocols.fuzz.market import ACTORS, CHAIN_ID, FUNDED, KEYS, SCENE_BODIES, scene, sign_next
from protocols.fuzz.oracles import check_apply, check_decode
from protocols.ledger.transactions import (
    CancelOrder,
    Claim,
    InitializeTask,
    MatchOrders,
    Transaction,
    Transfer,
    TxBody,
)
from protocols.orders import AppOrder, DatasetOrder, Order, RequestOrder, WorkerpoolOrder
from tests.test_encoding import EXAMPLES, TX_BODY_TYPES, WIRE_TYPES, fuzz_settings, tx_bodies, values_of, wire_values

# Tagged unions decode through a tag lookup; every other target decodes one class.
DECODE_TARGETS: list[tuple[str, Any]] = [(cls.__name__, cls) for cls in WIRE_TYPES] + [("Order", Order), ("TxBody", TxBody)]


# --- strategies for hostile input ------------------------------------------------------------------------

# msgpack scalars of every family, including those no wire type uses (floats, negative ints).
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(1 << 63), UINT64_MAX)
    | st.floats(allow_nan=False)
    | st.binary(max_size=40)
    | st.text(max_size=20)
)
trees = st.recursive(scalars, lambda kids: st.lists(kids, max_size=6), max_leaves=25)


@st.composite
def byte_mutations(draw: st.DrawFn, original: bytes, other: bytes) -> bytes:
    """One mutation of `original`: bit flip, byte overwrite (with msgpack type markers among the values),
    insertion, deletion, truncation, or splicing with `other`."""
    n = len(original)
    pos = draw(st.integers(0, n - 1))
    kind = draw(st.sampled_from(["flip", "overwrite", "insert", "delete", "truncate", "splice"]))
    if kind == "flip":
        return original[:pos] + bytes([original[pos] ^ (1 << draw(st.integers(0, 7)))]) + original[pos + 1 :]
    if kind == "overwrite":
        marker = st.sampled_from([0x00, 0x7F, 0x80, 0x90, 0x9F, 0xA0, 0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xCA, 0xCB, 0xCC, 0xCF, 0xD0, 0xD9, 0xDC, 0xFF])
        value = draw(marker | st.integers(0, 255))
        return original[:pos] + bytes([value]) + original[pos + 1 :]
    if kind == "insert":
        return original[:pos] + draw(st.binary(min_size=1, max_size=4)) + original[pos:]
    if kind == "delete":
        return original[:pos] + original[pos + draw(st.integers(1, 4)) :]
    if kind == "truncate":
        return original[:pos]
    cut = draw(st.integers(0, len(other)))
    return original[:pos] + other[cut:]


@st.composite
def tree_mutations(draw: st.DrawFn, original: bytes) -> bytes:
    """Replace one node of the value's msgpack tree by a random tree, and re-pack: every field at every
    depth gets values of every msgpack type, still in canonical framing."""
    tree = msgpack.unpackb(original)
    path = draw(st.sampled_from(tree_nodes(tree)))
    return msgpack.packb(replaced(tree, path, draw(trees)), use_bin_type=True)


def _signed(key: Keypair, value: Any) -> Any:
    return sign(key, CHAIN_ID, value)


ORDER_TYPES = (AppOrder, DatasetOrder, WorkerpoolOrder, RequestOrder)
# Valid values to mutate: every order kind, every body kind, and signed transactions around them.
MUTATION_SOURCES: list[tuple[str, Any, st.SearchStrategy[Any]]] = (
    [(cls.__name__, Order, wire_values(cls)) for cls in ORDER_TYPES]
    + [(cls.__name__, cls, wire_values(cls)) for cls in TX_BODY_TYPES]
    + [
        (f"Transaction[{cls.__name__}]", Transaction, wire_values(cls).map(lambda b: _signed(Keypair.from_name("w1"), Transaction(3, b))))
        for cls in TX_BODY_TYPES
    ]
)

# --- (a) random input into every decoder ------------------------------------------------------------------


@pytest.mark.parametrize("expected", [t for _, t in DECODE_TARGETS], ids=[n for n, _ in DECODE_TARGETS])
@fuzz_settings()
@given(data=st.binary(max_size=200))
def test_random_bytes_only_raise_decode_error(expected: Any, data: bytes) -> None:
    check_decode(expected, data)


@pytest.mark.parametrize("expected", [t for _, t in DECODE_TARGETS], ids=[n for n, _ in DECODE_TARGETS])
@fuzz_settings()
@given(tag=st.integers(0, 70), version=st.sampled_from([0, 1, 1, 1, 2]), fields=st.lists(trees, max_size=18))
def test_random_trees_with_plausible_tags_only_raise_decode_error(expected: Any, tag: int, version: int, fields: list[Any]) -> None:
    """Random bytes rarely get past msgpack framing; random arrays with a real tag reach the field checks."""
    check_decode(expected, msgpack.packb([tag, version, *fields], use_bin_type=True))


# --- (b) mutated valid encodings --------------------------------------------------------------------------


@pytest.mark.parametrize("expected, values", [(e, v) for _, e, v in MUTATION_SOURCES], ids=[n for n, _, _ in MUTATION_SOURCES])
@fuzz_settings()
@given(data=st.data())
def test_mutated_bytes_decode_canonically_or_raise_decode_error(expected: Any, values: st.SearchStrategy[Any], data: st.DataObject) -> None:
    original, other = encode(data.draw(values)), encode(data.draw(values))
    mutated = data.draw(byte_mutations(original, other))
    value = check_decode(expected, mutated)
    if mutated == original:
        assert value is not None


@pytest.mark.parametrize("expected, values", [(e, v) for _, e, v in MUTATION_SOURCES], ids=[n for n, _, _ in MUTATION_SOURCES])
@fuzz_settings()
@given(data=st.data())
def test_mutated_trees_decode_canonically_or_raise_decode_error(expected: Any, values: st.SearchStrategy[Any], data: st.DataObject) -> None:
    check_decode(expected, data.draw(tree_mutations(encode(data.draw(values)))))


# --- (c) into the ledger ----------------------------------------------------------------------------------


# Field names whose random values would never name a real record; the strategies below prefer real ones.
ID_FIELDS = {"deal_id": "deal_ids", "task_id": "task_ids"}


@st.composite
def order_overrides(draw: st.DrawFn, cls: type) -> dict[str, Any]:
    """A few fields of an order with random valid values (always a fixed salt: the wallets' random salts
    would make examples irreproducible)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    optional = {f.name: values_of(hints[f.name]) for f in dataclasses.fields(cls) if f.name not in ("signature", "salt")}
    return draw(st.fixed_dictionaries({"salt": st.binary(max_size=32)}, optional=optional))


@st.composite
def owner_signed_matches(draw: st.DrawFn) -> MatchOrders:
    """The market's usual four orders, each with some fields randomised and then signed by its owner, so
    matching gets past the signature checks and into the rules and the escrow."""
    market = scene().market
    app = market.app_order(**draw(order_overrides(AppOrder)))
    dataset = market.dataset_order(**draw(order_overrides(DatasetOrder))) if draw(st.booleans()) else None
    pool = market.pool_order(**draw(order_overrides(WorkerpoolOrder)))
    request = market.request_order(**draw(order_overrides(RequestOrder)))
    return MatchOrders(app, dataset, pool, request)


@st.composite
def meaningful_contributions(draw: st.DrawFn) -> Any:
    """A contribution the pool manager authorized and an enclave signed, then perhaps one field changed."""
    market, s = scene().market, scene()
    worker = draw(st.sampled_from(["w1", "w2", "w3", "w4"]))
    contribution = market.contribution(worker, draw(st.sampled_from(s.task_ids)), draw(st.binary(min_size=32, max_size=32)))
    hints = typing.get_type_hints(type(contribution), include_extras=True)
    optional = {f.name: values_of(hints[f.name]) for f in dataclasses.fields(contribution)}
    return replace(contribution, **draw(st.fixed_dictionaries({}, optional=optional)))


@st.composite
def nonsense_bodies(draw: st.DrawFn) -> Any:
    """Well-formed bodies of every kind with random fields, biased towards ids, addresses and orders that
    exist in the scene so that handlers run past their first lookup."""
    s = scene()
    body = draw(tx_bodies | owner_signed_matches() | meaningful_contributions())
    known = {f: draw(st.sampled_from(getattr(s, ids))) for f, ids in ID_FIELDS.items() if hasattr(body, f)}
    if known and draw(st.booleans()):
        body = replace(body, **known)
    if isinstance(body, (InitializeTask, Claim)) and draw(st.booleans()):
        body = replace(body, index=draw(st.integers(0, 2)))
    if isinstance(body, Transfer) and draw(st.booleans()):
        body = replace(body, to=KEYS[draw(st.sampled_from(ACTORS))].address, amount=draw(st.integers(0, 2 * 10**15)))
    if isinstance(body, CancelOrder) and draw(st.booleans()):
        order = draw(owner_signed_matches())
        body = CancelOrder(draw(st.sampled_from([order.app_order, order.workerpool_order, order.request_order])))
    return body


@fuzz_settings(4 * EXAMPLES)
@given(data=st.data())
def test_well_formed_nonsense_transactions_keep_the_ledger_invariants(data: st.DataObject) -> None:
    """Correctly signed, correctly nonced, random bodies: the handlers' rules, not the envelope, must hold."""
    ledger = scene().ledger()
    for _ in range(data.draw(st.integers(1, 3))):
        sender = data.draw(st.sampled_from(FUNDED))
        tx = sign_next(ledger, sender, data.draw(nonsense_bodies()))
        check_apply(ledger, tx, data.draw(st.sampled_from(scene().block_times)))


@pytest.mark.parametrize("sender, make_body", [(n, b) for n, _, b in SCENE_BODIES], ids=[k for _, k, _ in SCENE_BODIES])
@fuzz_settings()
@given(data=st.data())
def test_mutated_transactions_that_decode_keep_the_ledger_invariants(sender: str, make_body: Any, data: st.DataObject) -> None:
    """Mutate the bytes of a transaction of every kind; whatever still decodes is applied as received
    (almost always a bad signature) and again re-signed by the sender with the right nonce, which drives the
    mutated body through its handler."""
    s, ledger = scene(), scene().ledger()
    original = encode(sign_next(ledger, sender, make_body(s)))
    other = encode(sign_next(ledger, data.draw(st.sampled_from(ACTORS)), data.draw(tx_bodies)))
    mutated = data.draw(byte_mutations(original, other) | tree_mutations(original))
    tx = check_decode(Transaction, mutated)
    if tx is None:
        return
    block_time = data.draw(st.sampled_from(s.block_times))
    check_apply(ledger, tx, block_time)
    check_apply(ledger, sign_next(ledger, sender, tx.body), block_time)


@pytest.mark.parametrize("sender, make_body", [(n, b) for n, _, b in SCENE_BODIES], ids=[k for _, k, _ in SCENE_BODIES])
def test_scene_transactions_are_meaningful(sender: str, make_body: Any) -> None:
    """The unmutated transactions reach their handlers (no envelope rejection), so the mutations above
    start from transactions the ledger takes seriously."""
    s, ledger = scene(), scene().ledger()
    outcome = check_apply(ledger, sign_next(ledger, sender, make_body(s)), s.market.now)
    assert outcome.code not in ("bad-signature", "bad-nonce")
