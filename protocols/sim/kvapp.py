"""A small deterministic application for the simulator and the tests: counters and timers.

It implements `protocols.consensus.application.Application` with transactions that can be invalid
(a compare-and-set on a stale value, a malformed one) and with "pending deadlines" (timers), so that
the mempool's eviction and the empty-block rule are exercised without the real ledger.

Transactions are ASCII:
- `set <key> <int>`: always valid.
- `cas <key> <expected> <new>`: valid only if the key holds `expected` (absent keys hold 0).
- `timer <name> <deadline_ms>`: valid if no timer has that name; it fires in the first block whose time
  reaches the deadline, which counts it in `fired`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import msgpack

MAX_KEY_LEN = 32


@dataclass
class KVState:
    values: dict[str, int] = field(default_factory=dict)
    timers: dict[str, int] = field(default_factory=dict)
    fired: int = 0


class _Scratch:
    """Writes on top of a committed state without copying it (validation runs for every proposal)."""

    def __init__(self, base: KVState) -> None:
        self.base = base
        self.values: dict[str, int] = {}
        self.timers: dict[str, int | None] = {}  # None: removed
        self.fired = 0

    def value(self, key: str) -> int:
        return self.values[key] if key in self.values else self.base.values.get(key, 0)

    def has_timer(self, name: str) -> bool:
        if name in self.timers:
            return self.timers[name] is not None
        return name in self.base.timers


def _parse(tx: bytes) -> list[str] | None:
    try:
        parts = tx.decode("ascii").split(" ")
    except UnicodeDecodeError:
        return None
    shapes = {"set": 3, "cas": 4, "timer": 3}
    if not parts or shapes.get(parts[0]) != len(parts) or not 0 < len(parts[1]) <= MAX_KEY_LEN:
        return None
    if not all(p.isdigit() and len(p) < 19 for p in parts[2:]):
        return None
    return parts


def _apply(scratch: _Scratch, tx: bytes) -> str | None:
    parts = _parse(tx)
    if parts is None:
        return "malformed"
    op, key, *nums = parts
    if op == "set":
        scratch.values[key] = int(nums[0])
    elif op == "cas":
        if scratch.value(key) != int(nums[0]):
            return "stale-cas"
        scratch.values[key] = int(nums[1])
    else:
        if scratch.has_timer(key):
            return "timer-exists"
        scratch.timers[key] = int(nums[0])
    return None


def _fire_timers(scratch: _Scratch, block_time: int) -> None:
    for name, t in scratch.base.timers.items():
        if t <= block_time:
            scratch.timers[name] = None
            scratch.fired += 1


class KVApp:
    """The committed state plus the hooks consensus calls. Deterministic in its inputs.

    The state digest is a hash chain over the committed blocks (previous digest, time, transactions):
    it identifies the state as well as a hash of the state would, at a cost independent of its size.
    """

    def __init__(self) -> None:
        self.state = KVState()
        self.height = 0
        self._digest = hashlib.sha256(b"kvapp-genesis").digest()

    def state_digest(self) -> bytes:
        return self._digest

    def check_tx(self, tx: bytes) -> str | None:
        return _apply(_Scratch(self.state), tx)

    def validate_block_txs(self, txs: tuple[bytes, ...], block_time: int) -> str | None:
        scratch = _Scratch(self.state)
        _fire_timers(scratch, block_time)
        for i, tx in enumerate(txs):
            reason = _apply(scratch, tx)
            if reason is not None:
                return f"tx {i}: {reason}"
        return None

    def commit_block(self, txs: tuple[bytes, ...], block_time: int) -> None:
        scratch = _Scratch(self.state)
        _fire_timers(scratch, block_time)
        for tx in txs:
            reason = _apply(scratch, tx)
            if reason is not None:  # consensus validated the block first; this is a bug, not input
                raise AssertionError(f"committed an invalid transaction: {reason}")
        self.state.values.update(scratch.values)
        for name, t in scratch.timers.items():
            if t is None:
                del self.state.timers[name]
            else:
                self.state.timers[name] = t
        self.state.fired += scratch.fired
        self.height += 1
        self._digest = hashlib.sha256(
            msgpack.packb([self._digest, block_time, list(txs)], use_bin_type=True)
        ).digest()

    def next_deadline(self) -> int | None:
        return min(self.state.timers.values(), default=None)
