"""The simulator itself: deterministic, and the faults it claims to model do happen."""

from __future__ import annotations

import pytest

from protocols.sim.scenario import Behaviour, Crash, Partition, Scenario
from protocols.sim.simulation import run


def fingerprint(result) -> tuple:  # type: ignore[no-untyped-def,type-arg]
    return tuple(tuple(c.block_id for _, c in n.chain) for n in result.nodes), result.messages_sent, result.events


def test_same_scenario_same_run() -> None:
    sc = Scenario(n=4, seed=7, duration=3000, loss=0.1, duplicate=0.1, byzantine=((2, Behaviour.CHAOS),))
    assert fingerprint(run(sc)) == fingerprint(run(sc))


def test_different_seed_different_run() -> None:
    a = run(Scenario(n=4, seed=1, duration=3000, loss=0.1))
    b = run(Scenario(n=4, seed=2, duration=3000, loss=0.1))
    assert fingerprint(a) != fingerprint(b)


def test_a_healthy_network_commits_in_round_0() -> None:
    result = run(Scenario(n=4, seed=3, duration=5000))
    assert not result.violations
    assert min(result.heights()) >= 10
    assert set(result.decided_rounds().values()) == {0}
    assert result.committed_txs() > 0


@pytest.mark.parametrize("relay, loss", [(True, 0.0), (False, 0.1)])
def test_equivocators_are_caught(relay: bool, loss: float) -> None:
    # Each peer gets one of the two votes; the other reaches it by gossip relaying, or without relaying
    # by the re-broadcasts (triggered here by loss) of the polkas that carry it.
    sc = Scenario(n=4, seed=4, duration=3000, loss=loss, relay=relay, byzantine=((1, Behaviour.DOUBLE_VOTE),))
    result = run(sc)
    assert not result.violations
    offenders = {e.first.signature.public_key for n in result.correct for e in n.evidence}
    assert offenders == {result.nodes[1].keypair.public_key}


def test_a_crashed_validator_restarts_and_catches_up() -> None:
    sc = Scenario(n=4, seed=5, duration=8000, crashes=(Crash(2, 1000, 4000),))
    result = run(sc)
    assert not result.violations
    node = result.nodes[2]
    others = [len(n.chain) for n in result.nodes if n.index != 2]
    assert len(node.chain) >= min(others) - 1
    assert any(t > 4000 + 1_000_000 for t in node.commit_times)


def test_a_minority_cut_off_catches_up_by_sync() -> None:
    cut = Partition(500, 4000, (frozenset({0, 1, 2}), frozenset({3})))
    sc = Scenario(n=4, seed=6, duration=8000, partitions=(cut,))
    result = run(sc)
    assert not result.violations
    heights = result.heights()
    assert min(heights) >= max(heights) - 1 and min(heights) > 5


def test_no_load_no_blocks() -> None:
    result = run(Scenario(n=4, seed=8, duration=5000, tx_interval=0))
    assert result.heights() == [0, 0, 0, 0]
    assert result.messages_sent == 0  # idle validators stay silent: nothing to re-broadcast


def test_empty_blocks_only_for_deadlines_and_spaced() -> None:
    sc = Scenario(n=4, seed=9, duration=8000, tx_interval=700, txs_per_batch=1, timer_every=2, cas_share=0.0)
    result = run(sc)
    assert not result.violations
    chain = max(result.correct, key=lambda n: len(n.chain)).chain
    empty = [(prev, b) for (prev, _), (b, _) in zip(chain, chain[1:]) if not b.txs]
    assert empty, "timers should have caused empty blocks"
    for prev, b in empty:
        assert b.time - prev.time >= sc.params.empty_block_interval_ms
    assert len(empty) < len(chain) // 2 + 2  # not a block per interval: only when a timer is due
