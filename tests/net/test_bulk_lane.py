"""The bulk lane: bulk work runs in turns, one task's turn at a time, and other tasks run between turns."""

from __future__ import annotations

import math
from collections.abc import Iterator

import trio

from node.net.bulk_lane import BulkLane


def items(name: str, count: int, log: list[str]) -> Iterator[str]:
    for i in range(count):
        log.append(f"{name}{i}")
        yield f"{name}{i}"


async def test_drain_returns_every_result_in_order() -> None:
    log: list[str] = []
    assert await BulkLane(slice_s=0.0).drain(items("a", 3, log)) == ["a0", "a1", "a2"]
    assert await BulkLane(slice_s=math.inf).drain(items("b", 3, log)) == ["b0", "b1", "b2"]
    assert await BulkLane().drain(items("c", 0, log)) == []


async def test_two_bulk_tasks_take_turns_and_a_prompt_task_runs_between_turns() -> None:
    """With turns of one item: bulk tasks alternate item by item (the lane is fair), and a task that is not
    bulk work (a vote being read) runs after one item, not after both batches."""
    lane = BulkLane(slice_s=0.0)
    log: list[str] = []

    async def vote() -> None:
        while not log:
            await trio.sleep(0)
        log.append("vote")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(vote)
        nursery.start_soon(lane.drain, items("a", 4, log))
        nursery.start_soon(lane.drain, items("b", 4, log))
    bulk = [entry for entry in log if entry != "vote"]
    first, second = bulk[0][0], bulk[1][0]  # trio starts the two in either order
    assert first != second and bulk == [f"{name}{i}" for i in range(4) for name in (first, second)], log
    assert log.index("vote") <= 2, log


async def test_a_turn_runs_items_until_its_slice_is_spent() -> None:
    """With an endless slice one task's work runs in one turn: the lane's cost is per turn, not per item."""
    lane = BulkLane(slice_s=math.inf)
    log: list[str] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lane.drain, items("a", 3, log))
        nursery.start_soon(lane.drain, items("b", 3, log))
    assert log in (["a0", "a1", "a2", "b0", "b1", "b2"], ["b0", "b1", "b2", "a0", "a1", "a2"]), log
