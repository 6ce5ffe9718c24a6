"""The genesis file: a JSON round trip that keeps the genesis hash, and an error naming the field for
every way the file can be wrong (a node operator must be able to fix it from the message alone)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given

from protocols.chain_params import MAX_BLOCK_TXS, ChainParams
from protocols.genesis import MAX_TOTAL_SUPPLY, Genesis, GenesisError, genesis_to_json, parse_genesis
from tests.support import make_genesis
from tests.test_encoding import fuzz_settings, wire_values

Doc = dict[str, Any]
GENESIS = make_genesis()
DOC: Doc = json.loads(genesis_to_json(GENESIS))
KEY = "11" * 32
OTHER_KEY = "22" * 32


def parse_error(mutate: Callable[[Doc], Any]) -> str:
    """Apply `mutate` to a copy of a valid genesis document; parsing it must fail. Returns the message."""
    doc = copy.deepcopy(DOC)
    mutate(doc)
    with pytest.raises(GenesisError) as info:
        parse_genesis(json.dumps(doc))
    return str(info.value)


def setter(path: str, value: Any) -> Callable[[Doc], None]:
    """A mutation that sets `a.0.b` (dots, list indices as numbers) to `value`."""

    def mutate(doc: Doc) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = doc
        for p in parents:
            target = target[p]
        target[last] = value

    return mutate


def deleter(path: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
        target: Any = doc
        for p in parents:
            target = target[p]
        del target[last]

    return mutate


# --- round trip -------------------------------------------------------------------------------------------


def test_the_test_genesis_round_trips() -> None:
    back = parse_genesis(genesis_to_json(GENESIS))
    assert back == GENESIS and back.genesis_hash == GENESIS.genesis_hash


@fuzz_settings()
@given(genesis=wire_values(Genesis))
def test_any_genesis_round_trips_through_json(genesis: Genesis) -> None:
    back = parse_genesis(genesis_to_json(genesis))
    assert back == genesis
    assert back.genesis_hash == genesis.genesis_hash
    assert back.total_supply == genesis.total_supply


def test_formatting_does_not_change_the_hash() -> None:
    """The hash is over the canonical encoding: key order, indentation and hex case do not matter."""
    doc = copy.deepcopy(DOC)
    doc["validators"][0]["public_key"] = doc["validators"][0]["public_key"].upper()
    doc["allocations"][0]["address"] = "0x" + doc["allocations"][0]["address"][2:].upper()
    compact = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    assert parse_genesis(compact).genesis_hash == GENESIS.genesis_hash


def test_different_genesis_different_hash() -> None:
    doc = copy.deepcopy(DOC)
    doc["genesis_time_ms"] += 1
    assert parse_genesis(json.dumps(doc)).genesis_hash != GENESIS.genesis_hash


def test_genesis_error_is_a_value_error() -> None:
    """Callers that catch ValueError for bad configuration also catch this."""
    assert issubclass(GenesisError, ValueError)


# --- malformed documents ----------------------------------------------------------------------------------

# chain_params may be left out (its defaults are the rules of every older genesis file).
TOP_LEVEL_KEYS = sorted(set(DOC) - {"chain_params"})


@pytest.mark.parametrize("key", TOP_LEVEL_KEYS)
def test_missing_top_level_key(key: str) -> None:
    assert parse_error(deleter(key)) == f"genesis.{key} is missing"


@pytest.mark.parametrize(
    "path",
    [
        "validators.0.name",
        "validators.0.public_key",
        "allocations.0.address",
        "allocations.0.amount",
        "categories.0.id",
        "categories.1.name",
        "categories.0.work_clock_time_ref_ms",
    ],
)
def test_missing_nested_key(path: str) -> None:
    *where, key = path.split(".")
    listname, index = where
    assert f"genesis.{listname}[{index}].{key} is missing" in parse_error(deleter(path))


MALFORMED: list[tuple[str, Callable[[Doc], Any], str]] = [
    # wrong types
    ("chain-id-int", setter("chain_id", 5), "genesis.chain_id must be a string"),
    ("time-str", setter("genesis_time_ms", "0"), "genesis.genesis_time_ms must be an integer from 0 to 2^64-1, got '0'"),
    ("time-bool", setter("genesis_time_ms", True), "genesis.genesis_time_ms must be an integer from 0 to 2^64-1, got True"),
    ("time-float", setter("genesis_time_ms", 1.5), "genesis.genesis_time_ms must be an integer from 0 to 2^64-1, got 1.5"),
    ("interval-null", setter("chain_params.empty_block_interval_ms", None),
     "genesis.chain_params.empty_block_interval_ms must be an integer from 0 to 2^64-1"),
    ("validators-object", setter("validators", {}), "genesis.validators must be a list"),
    ("validator-string", setter("validators.0", KEY), "genesis.validators[0] must be an object"),
    ("allocations-null", setter("allocations", None), "genesis.allocations must be a list"),
    ("amount-str", setter("allocations.0.amount", "1"), "genesis.allocations[0].amount must be an integer from 0 to 2^64-1"),
    ("category-name-int", setter("categories.0.name", 3), "genesis.categories[0].name must be a string"),
    ("authorities-str", setter("attestation_authorities", KEY), "genesis.attestation_authorities must be a list"),
    ("authority-int", setter("attestation_authorities", [3]), "genesis.attestation_authorities[0] must be a hex string"),
    ("address-int", setter("allocations.0.address", 3), "genesis.allocations[0].address must be a string"),
    # bad hex and lengths
    ("key-not-hex", setter("validators.0.public_key", "zz" * 32), "genesis.validators[0].public_key is not hexadecimal"),
    ("key-odd-length", setter("validators.0.public_key", "1" * 63), "genesis.validators[0].public_key is not hexadecimal"),
    ("key-short", setter("validators.0.public_key", "11" * 31), "genesis.validators[0].public_key must be 32 bytes, got 31"),
    ("key-long", setter("validators.0.public_key", "11" * 33), "genesis.validators[0].public_key must be 32 bytes, got 33"),
    ("authority-not-hex", setter("attestation_authorities", ["0xqq"]), "genesis.attestation_authorities[0] is not hexadecimal"),
    ("authority-short", setter("attestation_authorities", ["00" * 20]), "genesis.attestation_authorities[0] must be 32 bytes, got 20"),
    ("address-not-hex", setter("allocations.0.address", "0x" + "gg" * 20), "genesis.allocations[0].address: address"),
    ("address-is-a-key", setter("allocations.0.address", "0x" + KEY), "genesis.allocations[0].address: address"),
    # duplicates and invariants
    ("duplicate-validator", setter("validators", [{"name": "a", "public_key": KEY}, {"name": "b", "public_key": KEY}]),
     "validators: a public key appears twice"),
    ("no-validators", setter("validators", []), "validators: at least one validator is needed"),
    ("duplicate-allocation", lambda d: d["allocations"].append(dict(d["allocations"][0], amount=1)),
     "allocations: an address appears twice"),
    ("duplicate-category", lambda d: d["categories"].append(dict(d["categories"][0], name="again")),
     "categories: an id appears twice"),
    ("supply-too-large", setter("allocations", [{"address": "0x" + "01" * 20, "amount": MAX_TOTAL_SUPPLY},
                                                {"address": "0x" + "02" * 20, "amount": 1}]),
     f"allocations: total supply exceeds {MAX_TOTAL_SUPPLY} nRLC"),
    # bad chain ids
    ("chain-id-empty", setter("chain_id", ""), "chain_id '' must be"),
    ("chain-id-upper", setter("chain_id", "Test-Chain"), "chain_id 'Test-Chain' must be"),
    ("chain-id-underscore", setter("chain_id", "test_chain"), "chain_id 'test_chain' must be"),
    ("chain-id-leading-dash", setter("chain_id", "-test"), "chain_id '-test' must be"),
    ("chain-id-slash", setter("chain_id", "a/b"), "chain_id 'a/b' must be"),  # '/' separates the signed message
    ("chain-id-too-long", setter("chain_id", "a" * 64), "chain_id 'aaaa"),
    # negative numbers
    ("negative-time", setter("genesis_time_ms", -1), "genesis.genesis_time_ms must be an integer from 0 to 2^64-1, got -1"),
    ("negative-interval", setter("chain_params.empty_block_interval_ms", -5),
     "genesis.chain_params.empty_block_interval_ms must be an integer from 0 to 2^64-1"),
    ("negative-amount", setter("allocations.0.amount", -1), "genesis.allocations[0].amount must be an integer from 0 to 2^64-1, got -1"),
    ("negative-category", setter("categories.0.id", -1), "genesis.categories[0].id must be an integer from 0 to 2^64-1"),
    ("negative-time-ref", setter("categories.0.work_clock_time_ref_ms", -1),
     "genesis.categories[0].work_clock_time_ref_ms must be an integer from 0 to 2^64-1"),
    # out of the wire ranges
    ("zero-interval", setter("chain_params.empty_block_interval_ms", 0),
     "chain_params.empty_block_interval_ms must be an integer from 1 to 86400000, got 0"),
    ("block-txs-above-the-wire-bound", setter("chain_params.max_block_txs", MAX_BLOCK_TXS + 1),
     f"chain_params.max_block_txs must be an integer from 1 to {MAX_BLOCK_TXS}, got {MAX_BLOCK_TXS + 1}"),
    ("tx-larger-than-block", lambda d: d["chain_params"].update(max_block_bytes=1_000, max_tx_bytes=2_000),
     "chain_params.max_tx_bytes 2000 exceeds max_block_bytes 1000"),
    ("unknown-param", setter("chain_params.max_gas", 1), "genesis.chain_params has unknown field(s) max_gas"),
    ("params-not-object", setter("chain_params", 5), "genesis.chain_params must be an object"),
    ("zero-time-ref", setter("categories.0.work_clock_time_ref_ms", 0), "Category.work_clock_time_ref_ms: int 0 outside"),
    ("validator-name-too-long", setter("validators.0.name", "v" * 65), "Validator.name: str of length 65 exceeds 64"),
    ("too-many-validators", setter("validators", [{"name": str(i), "public_key": f"{i:064x}"} for i in range(101)]),
     "Genesis.validators: array of length 101 exceeds 100"),
    # not an object at all
    ("top-level-list", lambda d: d.clear(), "genesis.chain_id is missing"),
]


@pytest.mark.parametrize("mutate, message", [pytest.param(m, msg, id=name) for name, m, msg in MALFORMED])
def test_malformed_field_is_named(mutate: Callable[[Doc], Any], message: str) -> None:
    assert message in parse_error(mutate)


@pytest.mark.parametrize("text", ["", "{", "not json", "{'chain_id': 'x'}", '{"chain_id": "a",}', "\x00"])
def test_invalid_json(text: str) -> None:
    with pytest.raises(GenesisError, match="genesis is not valid JSON"):
        parse_genesis(text)


@pytest.mark.parametrize("text", ["[]", "5", '"genesis"', "null"])
def test_top_level_must_be_an_object(text: str) -> None:
    with pytest.raises(GenesisError, match="^genesis must be an object$"):
        parse_genesis(text)


# --- bugs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["genesis_time_ms", "allocations.0.amount", "categories.0.id"])
def test_integers_too_large_for_the_wire_are_a_genesis_error(path: str) -> None:
    """2**64 passes the JSON reader's non-negative check; it must then fail as GenesisError, not TypeError."""
    assert path.split(".")[-1] in parse_error(setter(path, 1 << 64))


@pytest.mark.parametrize("mutate", [deleter("allocations.0.address"), setter("allocations.0.address", 3)], ids=["missing", "int"])
def test_address_errors_name_the_field_once(mutate: Callable[[Doc], Any]) -> None:
    """'genesis.allocations[0].address: genesis.allocations[0].address is missing' says it twice."""
    assert parse_error(mutate).count("genesis.allocations[0].address") == 1


def test_chain_id_with_trailing_newline_is_rejected() -> None:
    """'test-chain\\n' is accepted as a chain id, and a newline then enters every signed message."""
    assert "chain_id" in parse_error(setter("chain_id", "test-chain\n"))


def test_deeply_nested_json_is_a_genesis_error() -> None:
    with pytest.raises(GenesisError):
        parse_genesis("[" * 100_000)


@pytest.mark.parametrize("path", ["max_validators", "validators.0.power", "allocations.0.frozen"])
def test_unknown_keys_are_rejected(path: str) -> None:
    """A key the parser does not know is most likely a setting the operator thinks is in force."""
    assert path.split(".")[-1] in parse_error(setter(path, 1))


# --- chain parameters -------------------------------------------------------------------------------------


def test_a_genesis_without_chain_params_has_the_defaults() -> None:
    doc = copy.deepcopy(DOC)
    del doc["chain_params"]
    assert parse_genesis(json.dumps(doc)).params == ChainParams()


def test_a_genesis_from_before_chain_params_keeps_its_interval() -> None:
    """Files written before `chain_params` existed have the empty-block interval at the top level."""
    doc = copy.deepcopy(DOC)
    del doc["chain_params"]
    doc["empty_block_interval_ms"] = 5_000
    assert parse_genesis(json.dumps(doc)).params == ChainParams(empty_block_interval_ms=5_000)


def test_a_partial_chain_params_takes_the_defaults_for_the_rest() -> None:
    doc = copy.deepcopy(DOC)
    doc["chain_params"] = {"max_block_txs": 100}
    assert parse_genesis(json.dumps(doc)).params == ChainParams(max_block_txs=100)


def test_the_interval_given_in_both_places_is_refused() -> None:
    assert "given twice" in parse_error(setter("empty_block_interval_ms", 1_000))


def test_different_chain_params_are_different_chains() -> None:
    """The genesis hash covers the parameters: nodes that disagree on them refuse each other at the chain hello."""
    doc = copy.deepcopy(DOC)
    doc["chain_params"]["max_block_txs"] += 1
    assert parse_genesis(json.dumps(doc)).genesis_hash != GENESIS.genesis_hash
