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


class GossipedBlocks:
    """What `on_block_gossip` and `_release_next_but_one` use of a driver, at height 5."""

    def __init__(self) -> None:
        self.height = 5
        self._want_height = 0
        self._sync_wanted = trio.Event()
        self._next_but_one = None
        self.fed: list[object] = []
        self.inbox = SimpleNamespace(put_reliable=self.fed.append)

    def _note_height(self, height: int) -> None:
        ConsensusDriver._note_height(self, height)  # type: ignore[arg-type]

    async def gossip(self, height: int) -> None:
        decided = SimpleNamespace(block=SimpleNamespace(height=height), certificate=None)
        await ConsensusDriver.on_block_gossip(self, "peer", decided)  # type: ignore[arg-type]

    def commit(self) -> None:
        self.height += 1
        ConsensusDriver._release_next_but_one(self)  # type: ignore[arg-type]


async def test_a_block_gossiped_just_before_its_parent_waits_for_it_instead_of_a_sync() -> None:
    node = GossipedBlocks()
    await node.gossip(7)  # before 6: kept, no sync
    assert node.fed == [] and not node._sync_wanted.is_set()
    await node.gossip(6)
    assert [d.block.height for d in node.fed] == [6]  # type: ignore[attr-defined]
    node.commit()  # 6 committed: 7 is next
    assert [d.block.height for d in node.fed] == [6, 7]  # type: ignore[attr-defined]
    assert not node._sync_wanted.is_set()


async def test_a_parent_lost_for_good_is_synced_when_the_next_block_arrives() -> None:
    node = GossipedBlocks()
    await node.gossip(7)
    await node.gossip(8)  # 6 never came: two blocks ahead is a gap to fetch
    assert node._sync_wanted.is_set() and node._want_height == 8
    node.height = 7  # sync brought 6 and 7
    node.commit()  # the kept 7 is stale now: dropped, not fed
    assert node.fed == [] and node._next_but_one is None
