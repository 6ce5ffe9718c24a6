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
    evicted = pool.update((b"cas c 0 1",))
    assert evicted == 1  # "cas c 0 2" no longer applies
    assert pool.reap(10, 10_000) == (b"set x 1",)
    assert pool.add(b"cas c 0 1") == ALREADY_COMMITTED


def test_bounds() -> None:
    pool = Mempool(KVApp(), max_txs=2, max_bytes=1000, max_tx_bytes=20)
    assert pool.add(b"set a " + b"1" * 30) == TOO_LARGE
    assert pool.add(b"set a 1") is None and pool.add(b"set b 1") is None
    assert pool.add(b"set c 1") == FULL
    assert len(pool) == 2 and pool.size_bytes == 14
