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

    def copy(self) -> KVState:
        return KVState(dict(self.values), dict(self.timers), self.fired)


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


def _apply(state: KVState, tx: bytes) -> str | None:
    parts = _parse(tx)
    if parts is None:
        return "malformed"
    op, key, *nums = parts
    if op == "set":
        state.values[key] = int(nums[0])
    elif op == "cas":
        if state.values.get(key, 0) != int(nums[0]):
            return "stale-cas"
        state.values[key] = int(nums[1])
    else:
        if key in state.timers:
            return "timer-exists"
        state.timers[key] = int(nums[0])
    return None


def _fire_timers(state: KVState, block_time: int) -> None:
    due = [name for name, t in state.timers.items() if t <= block_time]
    for name in due:
        del state.timers[name]
    state.fired += len(due)


class KVApp:
    """The committed state plus the hooks consensus calls. Deterministic in its inputs."""

    def __init__(self) -> None:
        self.state = KVState()
        self.height = 0
        self._digest = self._compute_digest()

    def _compute_digest(self) -> bytes:
        s = self.state
        body = [self.height, sorted(s.values.items()), sorted(s.timers.items()), s.fired]
        return hashlib.sha256(msgpack.packb(body, use_bin_type=True)).digest()

    def state_digest(self) -> bytes:
        return self._digest

    def check_tx(self, tx: bytes) -> str | None:
        return _apply(self.state.copy(), tx)

    def validate_block_txs(self, txs: tuple[bytes, ...], block_time: int) -> str | None:
        scratch = self.state.copy()
        _fire_timers(scratch, block_time)
        for i, tx in enumerate(txs):
            reason = _apply(scratch, tx)
            if reason is not None:
                return f"tx {i}: {reason}"
        return None

    def commit_block(self, txs: tuple[bytes, ...], block_time: int) -> None:
        _fire_timers(self.state, block_time)
        for tx in txs:
            reason = _apply(self.state, tx)
            if reason is not None:  # consensus validated the block first; this is a bug, not input
                raise AssertionError(f"committed an invalid transaction: {reason}")
        self.height += 1
        self._digest = self._compute_digest()

    def next_deadline(self) -> int | None:
        return min(self.state.timers.values(), default=None)
