"""The mempool: dedup, admission against the state, eviction after a block, bounds."""

from __future__ import annotations

from protocols.consensus.mempool import ALREADY_COMMITTED, DUPLICATE, FULL, TOO_LARGE, Mempool
from protocols.sim.kvapp import KVApp


def test_admission_dedup_and_order() -> None:
    pool = Mempool(KVApp())
    assert pool.add(b"set a 1") is None
    assert pool.add(b"set a 1") == DUPLICATE
    assert pool.add(b"garbage") == "malformed"
    assert pool.add(b"cas a 7 8") == "stale-cas"  # checked against the committed state (a = 0)
    assert pool.add(b"set b 2") is None
    assert pool.reap(10, 10_000) == (b"set a 1", b"set b 2")
    assert pool.reap(1, 10_000) == (b"set a 1",)
    assert pool.reap(10, 8) == (b"set a 1",)


def test_commit_removes_included_and_evicts_what_became_invalid() -> None:
    app = KVApp()
    pool = Mempool(app)
    for tx in (b"cas c 0 1", b"cas c 0 2", b"set x 1"):
        assert pool.add(tx) is None
    app.commit_block((b"cas c 0 1",), 1)
    pool.update((b"cas c 0 1",))
    assert pool.unchecked == 2 and len(pool) == 2  # the re-check is the shell's to run, not the commit's
    assert pool.recheck(10) == 1  # "cas c 0 2" no longer applies
    assert pool.unchecked == 0
    assert pool.reap(10, 10_000) == (b"set x 1",)
    assert pool.add(b"cas c 0 1") == ALREADY_COMMITTED


def test_recheck_runs_in_slices_in_arrival_order() -> None:
    app = KVApp()
    pool = Mempool(app)
    for tx in (b"cas c 0 1", b"set y 1", b"cas d 0 1", b"set z 1"):
        assert pool.add(tx) is None
    app.commit_block((b"set c 1",), 1)
    pool.update((b"set c 1",))
    assert pool.recheck(1) == 1  # "cas c 0 1" is stale now
    assert pool.unchecked
    assert pool.recheck(2) == 0
    assert pool.unchecked
    assert pool.recheck(10) == 0
    assert pool.unchecked == 0
    assert pool.reap(10, 10_000) == (b"set y 1", b"cas d 0 1", b"set z 1")
    assert pool.size_bytes == sum(len(tx) for tx in pool.reap(10, 10_000))


def test_a_transaction_added_during_a_recheck_is_checked_in_its_turn() -> None:
    app = KVApp()
    pool = Mempool(app)
    assert pool.add(b"set a 1") is None
    app.commit_block((b"set x 1",), 1)
    pool.update((b"set x 1",))
    # While "set a 1" waits for its re-check, a newer transaction is queued behind it, not checked first.
    assert pool.add(b"cas c 1 2") is None
    assert pool.add(b"cas c 1 2") == DUPLICATE
    assert pool.add(b"set b 1") is None
    assert pool.recheck_all() == 1  # its turn came: stale against the state (c = 0)
    assert pool.reap(10, 10_000) == (b"set a 1", b"set b 1")
    assert pool.add(b"cas c 5 6") == "stale-cas"  # no re-check running: the state's verdict at once


def test_reap_rechecks_only_what_the_block_needs() -> None:
    app = KVApp()
    pool = Mempool(app)
    txs = [f"set k{i} 1".encode() for i in range(10)]
    for tx in txs:
        assert pool.add(tx) is None
    app.commit_block((b"set x 1",), 1)
    pool.update((b"set x 1",))
    assert pool.reap(3, 10_000) == tuple(txs[:3])
    assert pool.unchecked == 7 and len(pool) == 10  # seven still wait for the shell's slices
    assert pool.reap(3, 10_000) == tuple(txs[:3])


def test_a_block_committed_during_a_recheck_restarts_it() -> None:
    app = KVApp()
    pool = Mempool(app)
    for tx in (b"set a 1", b"cas c 0 1", b"set b 1"):
        assert pool.add(tx) is None
    app.commit_block((b"set x 1",), 1)
    pool.update((b"set x 1",))
    assert pool.recheck(1) == 0
    app.commit_block((b"set a 1",), 2)
    pool.update((b"set a 1",))
    assert len(pool) == 2 and pool.unchecked == 2
    assert pool.recheck_all() == 0
    assert pool.reap(10, 10_000) == (b"cas c 0 1", b"set b 1")


def test_bounds() -> None:
    pool = Mempool(KVApp(), max_txs=2, max_bytes=1000, max_tx_bytes=20)
    assert pool.add(b"set a " + b"1" * 30) == TOO_LARGE
    assert pool.add(b"set a 1") is None and pool.add(b"set b 1") is None
    assert pool.add(b"set c 1") == FULL
    assert len(pool) == 2 and pool.size_bytes == 14
