"""Catch-up's sync step when gossip commits some of the synced blocks while the response travels."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import trio

import node.consensus_driver as driver_module
from node.consensus_driver import SYNC_TIMEOUT_S, ConsensusDriver


class RacingNode:
    """What `sync_once` uses of a driver: a peer answers with blocks 6 and 7 while gossip commits 6 first."""

    def __init__(self) -> None:
        self.height = 5
        self._peers_tip = 0
        self.committed = trio.Condition()
        self.fed: list[object] = []
        self.host = SimpleNamespace(connected_peers=lambda: ["peer"], request=self._answer)
        self.inbox = SimpleNamespace(put_reliable=self.fed.append)

    async def _answer(self, *args: object) -> bytes:
        self.height = 6  # block 6 arrived by gossip meanwhile
        return b"response"

    async def consensus(self) -> None:
        """Consensus takes the synced blocks in turn (6 is already decided and ignored), then commits 7."""
        while len(self.fed) < 2:
            await trio.sleep(0.01)
        self.height = 7
        async with self.committed:
            self.committed.notify_all()


async def test_a_synced_block_committed_by_gossip_does_not_hold_catch_up(
    autojump_clock: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = [SimpleNamespace(block=SimpleNamespace(height=h), certificate=None) for h in (6, 7)]
    monkeypatch.setattr(driver_module, "parse_response", lambda data: SimpleNamespace(tip_height=7, blocks=blocks))
    node = RacingNode()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(node.consensus)
        began = trio.current_time()
        assert await ConsensusDriver.sync_once(node)  # type: ignore[arg-type]
        # It waited for block 7 only; counting "start + 2 blocks" waited for a height 8 that never came.
        assert trio.current_time() - began < SYNC_TIMEOUT_S / 2 and node.height == 7
