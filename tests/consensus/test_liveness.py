"""Liveness: after a partition heals, with at most f faulty validators, every correct validator keeps
committing. Each test prints the rounds the heights after the heal needed (pytest -s to see them)."""

from __future__ import annotations

import pytest

from protocols.sim.report import liveness_since
from protocols.sim.scenario import Behaviour, Crash, Partition, Scenario
from protocols.sim.simulation import run

HEAL = 4_000
DURATION = 12_000


def split(n: int, cut: int) -> Partition:
    """No side has a quorum: nothing can be decided until the heal."""
    return Partition(1_000, HEAL, (frozenset(range(cut)), frozenset(range(cut, n))))


@pytest.mark.parametrize("behaviour", list(Behaviour))
def test_n4_one_byzantine_partition_heals(behaviour: Behaviour) -> None:
    sc = Scenario(n=4, seed=11, duration=DURATION, max_delay=40, byzantine=((3, behaviour),), partitions=(split(4, 2),))
    result = run(sc)
    assert not result.violations
    report = liveness_since(result, HEAL)
    print(f"n=4 f=1 {behaviour.value}: {report.describe()}")
    assert min(report.heights_after) >= 5, report.describe()
    assert report.first_commit_delay is not None and report.first_commit_delay < 3_000


@pytest.mark.parametrize("behaviour", [Behaviour.SILENT, Behaviour.EQUIVOCATE, Behaviour.CHAOS])
def test_n7_two_byzantine_partition_heals(behaviour: Behaviour) -> None:
    sc = Scenario(
        n=7,
        seed=12,
        duration=DURATION,
        max_delay=40,
        byzantine=((1, behaviour), (5, behaviour)),
        partitions=(split(7, 3),),
    )
    result = run(sc)
    assert not result.violations
    report = liveness_since(result, HEAL)
    print(f"n=7 f=2 {behaviour.value}: {report.describe()}")
    assert min(report.heights_after) >= 5, report.describe()
    assert report.first_commit_delay is not None and report.first_commit_delay < 3_000


def test_lossy_network_then_settles() -> None:
    """Loss and duplication until the heal (modelled as a partition-free lossy phase); then clean."""
    sc = Scenario(n=4, seed=13, duration=DURATION, loss=0.3, duplicate=0.2, byzantine=((0, Behaviour.CHAOS),))
    result = run(sc)
    assert not result.violations
    report = liveness_since(result, HEAL)
    print(f"n=4 f=1 loss 30%: {report.describe()}")
    assert min(report.heights_after) >= 3, report.describe()


def test_crash_and_restart_with_a_byzantine_peer() -> None:
    sc = Scenario(
        n=7, seed=14, duration=DURATION, byzantine=((2, Behaviour.DOUBLE_VOTE),), crashes=(Crash(4, 1_500, HEAL),)
    )
    result = run(sc)
    assert not result.violations
    report = liveness_since(result, HEAL)
    print(f"n=7 crash+restart: {report.describe()}")
    assert min(report.heights_after) >= 5, report.describe()
