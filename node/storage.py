"""The node's durable store: SQLite in WAL mode (DESIGN.md section 9).

One SQLite transaction per committed block holds the block, its certificate, the ledger state writes and
the transaction outcomes, so a crash leaves either all of a block or none of it and a restart resumes at
the last committed height. Consensus messages this node signed are stored before they are sent, so a
restarted validator never signs a conflicting vote for a height it already voted in. Every value is the
canonical msgpack encoding of a wire type.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from node.operator_errors import OperatorError, database_problem
from protocols.chain import CommittedBlock
from protocols.consensus.blocks import ChainTip
from protocols.consensus.messages import Block, Certificate, Proposal, Vote, block_id
from protocols.encoding import decode, encode
from protocols.ledger.records import Record
from protocols.orders import Order

log = logging.getLogger(__name__)

# Dropped transactions of ours whose reason the outbox keeps for the submitter: a few days of a busy
# workload, a few hundred kilobytes.
MAX_REJECTED_KEPT = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, block_id BLOB NOT NULL, time INTEGER NOT NULL,
    block BLOB NOT NULL, certificate BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS state (key BLOB PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS tx_results (
    tx_id BLOB PRIMARY KEY, height INTEGER NOT NULL, position INTEGER NOT NULL,
    code TEXT NOT NULL, created BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS orders (hash BLOB PRIMARY KEY, order_bytes BLOB NOT NULL, seen_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS signed_messages (height INTEGER NOT NULL, message BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (tx_id BLOB PRIMARY KEY, tx BLOB NOT NULL, reason TEXT);
"""


class StoreError(OperatorError):
    """The data directory cannot be used (another chain's data, or an unreadable database)."""


@dataclass(frozen=True)
class TxResult:
    height: int
    position: int
    code: str
    created: bytes


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._signed_db: sqlite3.Connection | None = None  # save_signed's own connection (see there)
        self._signed_lock = threading.Lock()
        self._outbox_db: sqlite3.Connection | None = None  # save_outbox's own connection (see there)
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            # FULL: a block reported committed survives power loss too; blocks are rare enough to afford it.
            self.db.execute("PRAGMA synchronous=FULL")
            # A truncated or overwritten file can open and fail only when a lost page is read, in the middle
            # of a commit. Check every page now (it reads the file once: well under a second for a devnet's
            # store) and refuse to write into a damaged database.
            problems = [row[0] for row in self.db.execute("PRAGMA quick_check(3)")]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError("; ".join(problems))
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise StoreError(database_problem(path, exc)) from None

    def close(self) -> None:
        with self._signed_lock:
            if self._signed_db is not None:
                self._signed_db.close()
                self._signed_db = None
        if self._outbox_db is not None:
            self._outbox_db.close()
            self._outbox_db = None
        self.db.close()

    def _tx(self) -> Any:
        """A write transaction: `with self._tx(): ...` commits on success, rolls back on any error."""
        return _Transaction(self.db)

    # --- identity -----------------------------------------------------------------------------------

    def bind_genesis(self, genesis_hash: bytes) -> None:
        """Refuse a data directory that belongs to another chain; record the genesis on first use."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'genesis_hash'").fetchone()
        if row is None:
            with self._tx():
                self.db.execute("INSERT INTO meta VALUES ('genesis_hash', ?)", (genesis_hash,))
        elif bytes(row[0]) != genesis_hash:
            raise StoreError(
                f"this data directory belongs to genesis 0x{bytes(row[0]).hex()[:16]}..., "
                f"not 0x{genesis_hash.hex()[:16]}...: use another --data-dir"
            )

    # --- chain ----------------------------------------------------------------------------------------

    def tip(self) -> ChainTip | None:
        row = self.db.execute(
            "SELECT height, block_id, time, certificate FROM blocks ORDER BY height DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        return ChainTip(row[0], bytes(row[1]), row[2], decode(Certificate, bytes(row[3])))

    def commit_block(self, block: Block, certificate: Certificate, committed: CommittedBlock, tx_ids: list[bytes]) -> None:
        """Store a decided block and everything it changed, atomically."""
        with self._tx():
            self.db.execute(
                "INSERT INTO blocks VALUES (?, ?, ?, ?, ?)",
                (block.height, block_id(block), block.time, encode(block), encode(certificate)),
            )
            for key, value in committed.writes.items():
                if value is None:
                    self.db.execute("DELETE FROM state WHERE key = ?", (key,))
                else:
                    self.db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, encode(value)))
            self.db.executemany(
                "INSERT OR REPLACE INTO tx_results VALUES (?, ?, ?, ?, ?)",
                [
                    (tx_id, block.height, i, outcome.code, outcome.created)
                    for i, (tx_id, outcome) in enumerate(zip(tx_ids, committed.outcomes))
                ],
            )
            self.db.execute("DELETE FROM signed_messages WHERE height <= ?", (block.height,))
            self.db.executemany("DELETE FROM outbox WHERE tx_id = ?", [(tx_id,) for tx_id in tx_ids])

    def write_genesis_state(self, entries: Iterable[tuple[bytes, Any]]) -> None:
        """The state before block 1, written once when a data directory is new (a block 0 of sorts)."""
        with self._tx():
            self.db.executemany("INSERT INTO state VALUES (?, ?)", [(k, encode(v)) for k, v in entries])

    def decided_block(self, height: int) -> tuple[Block, Certificate] | None:
        row = self.db.execute("SELECT block, certificate FROM blocks WHERE height = ?", (height,)).fetchone()
        if row is None:
            return None
        return decode(Block, bytes(row[0])), decode(Certificate, bytes(row[1]))

    def block_hashes(self) -> list[tuple[int, bytes]]:
        return [(h, bytes(b)) for h, b in self.db.execute("SELECT height, block_id FROM blocks ORDER BY height")]

    def tx_result(self, tx_id: bytes) -> TxResult | None:
        row = self.db.execute("SELECT height, position, code, created FROM tx_results WHERE tx_id = ?", (tx_id,)).fetchone()
        return TxResult(row[0], row[1], row[2], bytes(row[3])) if row else None

    def load_state(self) -> Iterator[tuple[bytes, Any]]:
        for key, value in self.db.execute("SELECT key, value FROM state"):
            yield bytes(key), decode(Record, bytes(value))

    # --- consensus messages we signed ----------------------------------------------------------------

    def save_signed(self, messages: Sequence[Proposal | Vote]) -> None:
        """Make consensus messages we signed durable (one transaction, one fsync), before any of them is sent.

        Safe to call from a worker thread while the event loop uses the store: it writes through a connection
        of its own (SQLite allows one per thread of use; WAL lets the other read meanwhile, and a concurrent
        writer waits for the lock: sqlite3's default busy timeout, 5 s). The consensus driver calls it that
        way, so the fsync of each vote no longer stops every other task of the node (7-10% of a manager's
        time during a burst, and far more wall time on a busy disk). Calls must not overlap; the lock makes
        sure they do not."""
        rows = [(message.height, encode(message)) for message in messages]
        with self._signed_lock:
            if self._signed_db is None:
                self._signed_db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self._signed_db.execute("PRAGMA synchronous=FULL")
            with _Transaction(self._signed_db):
                self._signed_db.executemany("INSERT INTO signed_messages VALUES (?, ?)", rows)

    def signed_messages(self) -> list[Proposal | Vote]:
        rows = self.db.execute("SELECT message FROM signed_messages ORDER BY rowid")
        return [decode(Proposal | Vote, bytes(m)) for (m,) in rows]

    # --- order book -------------------------------------------------------------------------------------

    def save_orders(self, orders: Iterable[tuple[Order, int]]) -> None:
        with self._tx():
            self.db.executemany(
                "INSERT OR IGNORE INTO orders VALUES (?, ?, ?)",
                [(order.payload_digest, encode(order), seen) for order, seen in orders],
            )

    def delete_orders(self, hashes: Iterable[bytes]) -> None:
        with self._tx():
            self.db.executemany("DELETE FROM orders WHERE hash = ?", [(h,) for h in hashes])

    # --- the outbox: our transactions not yet committed, and those dropped -----------------------------

    def save_outbox(self, tx_id: bytes, tx: bytes) -> None:
        """A transaction of ours, kept until a block commits it (`commit_block` removes it) or it is dropped
        (`reject_outbox`): a node restarted after accepting it re-admits and re-announces it instead of
        losing it and signing another transaction with its nonce. Best effort: on a full disk the
        transaction is kept in memory only, as before the outbox, and the next block's commit stops the
        node with the operator's message (tests/node/test_operator_mistakes.py)."""
        try:
            if self._outbox_db is None:
                self._outbox_db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                # Not FULL: an fsync per submitted transaction held the event loop ~2 ms each (far more on a
                # busy disk; 7% of a follower's time in a burst). In WAL mode a commit without it still
                # survives the process being killed, the case this table is for (the write is in the OS's
                # cache before the transaction is gossiped); only a power loss or an OS crash can lose it,
                # and then the submitter finds it "unknown" and submits again. The next FULL commit (a
                # block) makes it durable anyway.
                self._outbox_db.execute("PRAGMA synchronous=NORMAL")
            self._outbox_db.execute("INSERT OR REPLACE INTO outbox VALUES (?, ?, NULL)", (tx_id, tx))
        except sqlite3.DatabaseError as exc:
            log.warning("event=outbox-not-saved tx=%s error=%r", tx_id.hex()[:16], str(exc))

    def reject_outbox(self, tx_id: bytes, reason: str) -> None:
        """One of ours will never commit: remember why (the submitter may ask after a restart), without its
        bytes; only the last MAX_REJECTED_KEPT are kept."""
        with self._tx():
            self.db.execute("UPDATE outbox SET tx = x'', reason = ? WHERE tx_id = ?", (reason, tx_id))
            self.db.execute(
                "DELETE FROM outbox WHERE reason IS NOT NULL AND rowid NOT IN "
                "(SELECT rowid FROM outbox WHERE reason IS NOT NULL ORDER BY rowid DESC LIMIT ?)",
                (MAX_REJECTED_KEPT,),
            )

    def load_outbox(self) -> list[tuple[bytes, bytes, str | None]]:
        """(tx id, transaction, None) for each pending one; (tx id, b"", reason) for each dropped one."""
        rows = self.db.execute("SELECT tx_id, tx, reason FROM outbox ORDER BY rowid")
        return [(bytes(tx_id), bytes(tx), reason) for tx_id, tx, reason in rows]

    def load_orders(self) -> list[tuple[Order, int]]:
        rows = self.db.execute("SELECT order_bytes, seen_ms FROM orders ORDER BY seen_ms")
        return [(decode(Order, bytes(o)), seen) for o, seen in rows]


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.db.execute("COMMIT")
        else:
            self.db.execute("ROLLBACK")
