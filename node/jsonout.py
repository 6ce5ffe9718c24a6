"""One converter from wire values (control answers, ledger records, orders, blocks) to JSON documents.

The CLI's `--json` and the explorer's `/api/` both go through `to_json`, so a script sees the same field
names whichever it reads. The rules are by field name, so a new wire field gets the same treatment as the
old ones without a converter of its own (README, "JSON output"):

- every object carries `"type"`, its wire type's name (a field may hold one of several types: an order,
  a transaction body);
- bytes are `0x` + full hex (ids, addresses, hashes); empty bytes are `null`;
- an amount (a field named in `AMOUNT_FIELDS`) stays an integer of nRLC, with a sibling `<name>_rlc`
  holding the same amount as a string in RLC ("1.5 RLC");
- a block time (a field named in `TIME_FIELDS`) is an ISO 8601 UTC string, `null` when unset (0);
- a status with names (`STATUS_NAMES`) is its name ("COMPLETED");
- a signed object gains `"id"` and `"signer"` (an address): an order's id is its payload digest, a
  transaction's is its `tx_id` (which binds the signer too), the ids the CLI takes.
"""

from __future__ import annotations

import dataclasses
import datetime
from enum import IntEnum
from typing import Any

from protocols.genesis import rlc_text
from protocols.ledger.records import Contribution, ContributionStatus, Task, TaskStatus

# Integer fields that hold nRLC. An amount is never a float in JSON: JavaScript loses precision past 2^53,
# hence the `_rlc` string next to it.
AMOUNT_FIELDS = frozenset({
    "balance", "frozen", "amount", "price", "app_price", "dataset_price", "workerpool_price",
    "app_max_price", "dataset_max_price", "workerpool_max_price", "max_price", "task_price",
    "worker_stake", "pool_stake_per_task",
})
# Integer fields that hold a block time or a deadline in milliseconds since the epoch.
TIME_FIELDS = frozenset({
    "time", "tip_time", "start_time", "contribution_deadline", "reveal_deadline", "final_deadline",
})
STATUS_NAMES: dict[tuple[type, str], type[IntEnum]] = {
    (Task, "status"): TaskStatus,
    (Contribution, "status"): ContributionStatus,
}


def iso_time(ms: int) -> str | None:
    """A block time as ISO 8601 UTC with milliseconds ("2026-11-27T10:54:06.123Z"); None for unset (0)."""
    if not ms:
        return None
    stamp = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hex_or_null(data: bytes) -> str | None:
    return "0x" + data.hex() if data else None


def to_json(value: Any) -> Any:
    """A JSON-ready value (dicts, lists, str, int, bool, None) for any wire value or container of them."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _object(value)
    if isinstance(value, bytes):
        return hex_or_null(value)
    if isinstance(value, (tuple, list)):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    return value


def _object(value: Any) -> dict[str, Any]:
    cls = type(value)
    document: dict[str, Any] = {"type": cls.__name__}
    if getattr(cls, "__wire_signed__", False):
        document["id"] = hex_or_null(getattr(value, "tx_id", None) or value.payload_digest)
        document["signer"] = hex_or_null(value.signer)
    for field in dataclasses.fields(value):
        name, item = field.name, getattr(value, field.name)
        names = STATUS_NAMES.get((cls, name))
        if names is not None:
            document[name] = names(item).name
        elif name in TIME_FIELDS and isinstance(item, int):
            document[name] = iso_time(item)
        elif name in AMOUNT_FIELDS and isinstance(item, int):
            document[name] = item
            document[f"{name}_rlc"] = rlc_text(item)
        else:
            document[name] = to_json(item)
    return document


def amount(nrlc: int) -> dict[str, Any]:
    """An amount outside a wire object, in the same two forms: `{"nrlc": 1500000000, "rlc": "1.5 RLC"}`."""
    return {"nrlc": nrlc, "rlc": rlc_text(nrlc)}
