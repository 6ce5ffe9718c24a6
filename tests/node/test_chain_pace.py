"""The chain's busy pace: only intervals after a block that left work count, so idle time never slows the
gossip batches; while the chain is busy the batches' interval is a few blocks of that pace, never below the
fixed floor, and back at the floor as soon as a block leaves nothing waiting."""

from __future__ import annotations

import pytest

from node.chain_pace import ChainPace
from node.node import GOSSIP_BLOCKS_PER_BATCH, GOSSIP_MIN_INTERVAL_S, publish_interval


def test_only_intervals_after_a_block_that_left_work_count() -> None:
    pace = ChainPace(samples=8)
    assert pace.busy_block_interval() is None
    pace.on_commit(now=0.0, waiting=0)
    pace.on_commit(now=60.0, waiting=10)  # a minute idle, then a transaction: not the chain's speed
    assert pace.busy_block_interval() is None
    pace.on_commit(now=62.0, waiting=5)
    pace.on_commit(now=66.0, waiting=0)
    assert pace.busy_block_interval() == pytest.approx(3.0)  # median of 2 s and 4 s


def test_the_median_of_the_last_samples_follows_a_chain_that_speeds_up() -> None:
    pace = ChainPace(samples=3)
    now = 0.0
    for step in (10.0, 1.0, 1.0, 1.0, 9.0):
        now += step
        pace.on_commit(now, waiting=1)
    assert pace.busy_block_interval() == pytest.approx(1.0)  # the 10 s fell out; one slow block moves nothing


def test_batches_are_paced_per_block_on_a_busy_slow_chain_and_by_the_floor_otherwise() -> None:
    fast, slow = ChainPace(samples=8), ChainPace(samples=8)
    assert publish_interval(fast) == GOSSIP_MIN_INTERVAL_S  # nothing measured yet
    for block in range(5):
        fast.on_commit(block * 0.01, waiting=100)
        slow.on_commit(block * 6.0, waiting=100)
    assert publish_interval(fast) == GOSSIP_MIN_INTERVAL_S
    assert publish_interval(slow) == pytest.approx(6.0 * GOSSIP_BLOCKS_PER_BATCH)
    slow.on_commit(30.0, waiting=0)  # the burst is over: a lone transaction leaves at once again
    assert publish_interval(slow) == GOSSIP_MIN_INTERVAL_S
