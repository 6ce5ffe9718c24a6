"""The ledger's key-value state, a write overlay for transactions, and the state digest.

Keys are a one-byte table prefix plus the record id, so the same bytes serve as SQLite keys in the node and
sort deterministically for the digest. A transaction reads and writes through a `StateView`; its writes
reach the state only if the whole transaction succeeds, which is how a rejected transaction changes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from typing import Any

from protocols.encoding import encode
from protocols.ledger.records import (
    Account,
    App,
    Consumed,
    Contribution,
    Dataset,
    Deal,
    Task,
    Workerpool,
)

ACCOUNT = b"a"
APP = b"p"
DATASET = b"d"
WORKERPOOL = b"w"
CONSUMED = b"c"
DEAL = b"D"
TASK = b"T"
CONTRIBUTION = b"C"
EQUIVOCATION = b"E"

Writes = dict[bytes, Any]
EMPTY_ACCOUNT = Account()


class LedgerState:
    """The committed state: a map from key to record, with the digest of its content.

    The digest is SHA-256 over the sorted (key, SHA-256 of the record's encoding) pairs. Entry hashes are
    remembered, so a block only re-encodes the records it changed.
    """

    def __init__(self, entries: Mapping[bytes, Any] | None = None) -> None:
        self._entries: dict[bytes, Any] = dict(entries or {})
        self._entry_hashes: dict[bytes, bytes] = {}
        self._digest: bytes | None = None

    def get(self, key: bytes) -> Any:
        return self._entries.get(key)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> Iterator[tuple[bytes, Any]]:
        return iter(self._entries.items())

    def items_with_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, Any]]:
        return ((k, v) for k, v in self._entries.items() if k.startswith(prefix))

    def apply_writes(self, writes: Writes) -> None:
        for key, value in writes.items():
            self._entry_hashes.pop(key, None)
            if value is None:
                self._entries.pop(key, None)
            else:
                self._entries[key] = value
        if writes:
            self._digest = None

    def copy(self) -> LedgerState:
        clone = LedgerState(self._entries)
        clone._entry_hashes = dict(self._entry_hashes)
        clone._digest = self._digest
        return clone

    def digest(self) -> bytes:
        if self._digest is None:
            h = hashlib.sha256()
            for key in sorted(self._entries):
                entry = self._entry_hashes.get(key)
                if entry is None:
                    entry = self._entry_hashes[key] = hashlib.sha256(encode(self._entries[key])).digest()
                h.update(len(key).to_bytes(2, "big"))
                h.update(key)
                h.update(entry)
            self._digest = h.digest()
        return self._digest

    def view(self) -> StateView:
        return StateView(self)


class StateView:
    """Typed reads through pending writes to a base state; writes are collected, never applied here."""

    def __init__(self, base: LedgerState) -> None:
        self.base = base
        self.writes: Writes = {}
        self._base_entries = base._entries

    def get(self, key: bytes) -> Any:
        # Reads are the ledger's and the matching engine's hot path: two dict lookups, no further calls.
        writes = self.writes
        if key in writes:
            return writes[key]
        return self._base_entries.get(key)

    def put(self, key: bytes, value: Any) -> None:
        self.writes[key] = value

    # Typed tables ------------------------------------------------------------------------------

    def account(self, address: bytes) -> Account:
        return self.get(ACCOUNT + address) or EMPTY_ACCOUNT

    def put_account(self, address: bytes, account: Account) -> None:
        self.put(ACCOUNT + address, account)

    def app(self, address: bytes) -> App | None:
        app: App | None = self.get(APP + address)  # entries are typed by their key's prefix
        return app

    def dataset(self, address: bytes) -> Dataset | None:
        dataset: Dataset | None = self.get(DATASET + address)  # entries are typed by their key's prefix
        return dataset

    def workerpool(self, address: bytes) -> Workerpool | None:
        workerpool: Workerpool | None = self.get(WORKERPOOL + address)  # entries are typed by their key's prefix
        return workerpool

    def consumed(self, order_hash: bytes) -> int:
        record = self.get(CONSUMED + order_hash)
        return record.volume if record is not None else 0

    def put_consumed(self, order_hash: bytes, volume: int) -> None:
        self.put(CONSUMED + order_hash, Consumed(volume))

    def deal(self, deal_id: bytes) -> Deal | None:
        deal: Deal | None = self.get(DEAL + deal_id)  # entries are typed by their key's prefix
        return deal

    def task(self, task_id: bytes) -> Task | None:
        task: Task | None = self.get(TASK + task_id)  # entries are typed by their key's prefix
        return task

    def contribution(self, task_id: bytes, worker: bytes) -> Contribution | None:
        contribution: Contribution | None = self.get(CONTRIBUTION + task_id + worker)  # entries are typed by their key's prefix
        return contribution

    def put_contribution(self, task_id: bytes, worker: bytes, contribution: Contribution) -> None:
        self.put(CONTRIBUTION + task_id + worker, contribution)
