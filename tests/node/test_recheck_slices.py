"""The mempool re-check after a block runs in slices beside the consensus loop, never as one long step."""

from __future__ import annotations

from types import SimpleNamespace

import trio

from node.consensus_driver import RECHECK_SLICE_TXS, ConsensusDriver
from node.net.bulk_lane import BulkLane
from protocols.consensus.mempool import Mempool
from protocols.sim.kvapp import KVApp


async def test_other_tasks_run_between_recheck_slices() -> None:
    app = KVApp()
    pool = Mempool(app)
    for i in range(10 * RECHECK_SLICE_TXS):
        assert pool.add(f"set k{i} 1".encode()) is None
    app.commit_block((b"set x 1",), 1)
    pool.update((b"set x 1",))
    # Only what _recheck_loop uses of a driver: its machine's mempool, the event a commit sets, the bulk lane
    # (turns of one slice each: the node's last SLICE_S, which a test cannot time).
    driver = SimpleNamespace(
        machine=SimpleNamespace(mempool=pool), _recheck_wanted=trio.Event(), host=SimpleNamespace(bulk_lane=BulkLane(slice_s=0.0))
    )
    seen: list[int] = []  # transactions left to re-check each time this task (the consensus loop) ran
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ConsensusDriver._recheck_loop, driver)
        driver._recheck_wanted.set()
        while pool.unchecked:
            seen.append(pool.unchecked)
            await trio.sleep(0)
        nursery.cancel_scope.cancel()
    assert len(pool) == 10 * RECHECK_SLICE_TXS  # all still valid, all re-checked
    steps = [before - after for before, after in zip(seen, [*seen[1:], 0])]
    # trio may run the two tasks in either order within a batch, so a turn can see up to two slices pass.
    assert len(seen) >= 5 and max(steps) <= 2 * RECHECK_SLICE_TXS
