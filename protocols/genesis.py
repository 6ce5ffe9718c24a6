"""The genesis: what every node of one network agrees on before the first block.

On disk it is JSON (hex for bytes), because people write and read it; its identity is the SHA-256 of its
canonical msgpack encoding, so two nodes with differently formatted but equal files agree. Parsing is
strict and each error says which field is wrong and what was expected.

The chain's rules (block limits, transaction size, clock drift, empty-block interval) are its `chain_params`
object (protocols/chain_params.py), every key optional with the defaults every network used before. A file
from before `chain_params` existed keeps loading, its top-level `empty_block_interval_ms` read as
`chain_params.empty_block_interval_ms`; its genesis hash differs from the one earlier versions computed
(the genesis now encodes its parameters), so a data directory made by those is refused and must be reset.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from protocols.chain_params import CHAIN_PARAM_KEYS, ChainParams
from protocols.consensus.messages import MAX_VALIDATORS
from protocols.crypto import Address, PublicKey, address_of, hex_address, parse_address
from protocols.encoding import U64, UINT64_MAX, MaxLen, Range, digest, validated, wire

CHAIN_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# Amounts are nRLC (1 RLC = 10^9 nRLC). Keeping the whole supply below 2^62 means no sum of balances,
# stakes and escrow can leave the 64-bit range the wire encoding carries.
MAX_TOTAL_SUPPLY = 1 << 62
NRLC_PER_RLC = 10**9


def rlc_text(nrlc: int) -> str:
    """An amount for people: RLC with as many decimals as it needs ("1.5 RLC"), never nRLC."""
    text = f"{Decimal(nrlc) / NRLC_PER_RLC:f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + " RLC"


# Where genesis files written before `chain_params` keep the empty-block interval.
LEGACY_INTERVAL_KEY = "empty_block_interval_ms"
GENESIS_KEYS = (
    "chain_id",
    "genesis_time_ms",
    "chain_params",
    "validators",
    "allocations",
    "categories",
    "attestation_authorities",
    LEGACY_INTERVAL_KEY,
)


class GenesisError(ValueError):
    """A genesis file that cannot start a network; the message names the field."""


@wire(tag=50)
@dataclass(frozen=True)
class Category:
    """A task size class; `work_clock_time_ref_ms` is PoCo's T, from which all task deadlines derive."""

    id: U64
    name: Annotated[str, MaxLen(64)]
    work_clock_time_ref_ms: Annotated[int, Range(1, 1 << 40)]


@wire(tag=51)
@dataclass(frozen=True)
class Allocation:
    address: Address
    amount: U64


@wire(tag=52)
@dataclass(frozen=True)
class Validator:
    public_key: PublicKey
    name: Annotated[str, MaxLen(64)]

    @property
    def address(self) -> bytes:
        return address_of(self.public_key)


@wire(tag=53, version=2)
@dataclass(frozen=True)
class Genesis:
    chain_id: Annotated[str, MaxLen(63)]
    genesis_time_ms: U64
    validators: Annotated[tuple[Validator, ...], MaxLen(MAX_VALIDATORS)]
    allocations: tuple[Allocation, ...]
    categories: tuple[Category, ...]
    attestation_authorities: tuple[PublicKey, ...]
    params: ChainParams = ChainParams()

    def __post_init__(self) -> None:
        if not CHAIN_ID_PATTERN.fullmatch(self.chain_id):
            raise ValueError(f"chain_id {self.chain_id!r} must be lowercase letters, digits and '-', 1-63 chars")
        if not self.validators:
            raise ValueError("validators: at least one validator is needed")
        keys = [v.public_key for v in self.validators]
        if len(set(keys)) != len(keys):
            raise ValueError("validators: a public key appears twice")
        addresses = [a.address for a in self.allocations]
        if len(set(addresses)) != len(addresses):
            raise ValueError("allocations: an address appears twice")
        if sum(a.amount for a in self.allocations) > MAX_TOTAL_SUPPLY:
            raise ValueError(f"allocations: total supply exceeds {MAX_TOTAL_SUPPLY} nRLC")
        ids = [c.id for c in self.categories]
        if len(set(ids)) != len(ids):
            raise ValueError("categories: an id appears twice")

    @property
    def genesis_hash(self) -> bytes:
        return digest(self)

    @property
    def total_supply(self) -> int:
        return sum(a.amount for a in self.allocations)


def genesis_to_json(genesis: Genesis) -> str:
    return json.dumps(
        {
            "chain_id": genesis.chain_id,
            "genesis_time_ms": genesis.genesis_time_ms,
            "chain_params": {name: getattr(genesis.params, name) for name in CHAIN_PARAM_KEYS},
            "validators": [{"name": v.name, "public_key": v.public_key.hex()} for v in genesis.validators],
            "allocations": [{"address": hex_address(a.address), "amount": a.amount} for a in genesis.allocations],
            "categories": [
                {"id": c.id, "name": c.name, "work_clock_time_ref_ms": c.work_clock_time_ref_ms}
                for c in genesis.categories
            ],
            "attestation_authorities": [k.hex() for k in genesis.attestation_authorities],
        },
        indent=2,
    )


def parse_genesis(text: str) -> Genesis:
    """Parse a genesis JSON document; raise GenesisError naming the first wrong field."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GenesisError(f"genesis is not valid JSON: {exc}") from None
    except RecursionError:
        raise GenesisError("genesis is nested too deeply to be a genesis") from None
    reader = _Reader(doc, "genesis", GENESIS_KEYS)
    try:
        genesis = Genesis(
            chain_id=reader.text("chain_id"),
            genesis_time_ms=reader.integer("genesis_time_ms"),
            validators=tuple(
                Validator(public_key=v.hex("public_key", 32), name=v.text("name")) for v in reader.list("validators", ("name", "public_key"))
            ),
            allocations=tuple(
                Allocation(address=a.address("address"), amount=a.integer("amount")) for a in reader.list("allocations", ("address", "amount"))
            ),
            categories=tuple(
                Category(id=c.integer("id"), name=c.text("name"), work_clock_time_ref_ms=c.integer("work_clock_time_ref_ms"))
                for c in reader.list("categories", ("id", "name", "work_clock_time_ref_ms"))
            ),
            attestation_authorities=tuple(
                _hex_value(k, f"genesis.attestation_authorities[{i}]", 32)
                for i, k in enumerate(reader.raw_list("attestation_authorities"))
            ),
            params=_chain_params(reader),
        )
    except ValueError as exc:
        raise GenesisError(str(exc)) from None
    try:
        return validated(genesis)
    except ValueError as exc:
        raise GenesisError(f"genesis out of range: {exc}") from None


def _chain_params(reader: _Reader) -> ChainParams:
    """`chain_params`, each key optional (ChainParams has the defaults); the legacy top-level interval counts."""
    values: dict[str, int] = {}
    if "chain_params" in reader.doc:
        params = _Reader(reader.doc["chain_params"], "genesis.chain_params", CHAIN_PARAM_KEYS)
        values = {key: params.integer(key) for key in CHAIN_PARAM_KEYS if key in params.doc}
    if LEGACY_INTERVAL_KEY in reader.doc:
        if LEGACY_INTERVAL_KEY in values:
            raise GenesisError(f"genesis.{LEGACY_INTERVAL_KEY} is given twice: keep only chain_params.{LEGACY_INTERVAL_KEY}")
        values[LEGACY_INTERVAL_KEY] = reader.integer(LEGACY_INTERVAL_KEY)
    return ChainParams(**values)


def _hex_value(value: Any, where: str, length: int) -> bytes:
    if not isinstance(value, str):
        raise GenesisError(f"{where} must be a hex string")
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError:
        raise GenesisError(f"{where} is not hexadecimal: {value!r}") from None
    if len(raw) != length:
        raise GenesisError(f"{where} must be {length} bytes, got {len(raw)}")
    return raw


class _Reader:
    """Typed access to one JSON object, with errors that carry the path of the field."""

    def __init__(self, doc: Any, where: str, keys: tuple[str, ...]) -> None:
        if not isinstance(doc, dict):
            raise GenesisError(f"{where} must be an object")
        unknown = sorted(set(doc) - set(keys))
        if unknown:
            raise GenesisError(f"{where} has unknown field(s) {', '.join(unknown)}; expected {', '.join(keys)}")
        self.doc = doc
        self.where = where

    def _get(self, key: str) -> Any:
        if key not in self.doc:
            raise GenesisError(f"{self.where}.{key} is missing")
        return self.doc[key]

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise GenesisError(f"{self.where}.{key} must be a string")
        return value

    def integer(self, key: str) -> int:
        value = self._get(key)
        if type(value) is not int or not 0 <= value <= UINT64_MAX:
            raise GenesisError(f"{self.where}.{key} must be an integer from 0 to 2^64-1, got {value!r}")
        return value

    def hex(self, key: str, length: int) -> bytes:
        return _hex_value(self._get(key), f"{self.where}.{key}", length)

    def address(self, key: str) -> bytes:
        text = self.text(key)
        try:
            return parse_address(text)
        except ValueError as exc:
            raise GenesisError(f"{self.where}.{key}: {exc}") from None

    def raw_list(self, key: str) -> list[Any]:
        value = self._get(key)
        if not isinstance(value, list):
            raise GenesisError(f"{self.where}.{key} must be a list")
        return value

    def list(self, key: str, keys: tuple[str, ...]) -> list[_Reader]:
        return [_Reader(item, f"{self.where}.{key}[{i}]", keys) for i, item in enumerate(self.raw_list(key))]
