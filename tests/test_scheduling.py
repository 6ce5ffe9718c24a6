"""The scheduler's pure decisions (protocols/scheduling.py): what each task needs at a block time, and
PoCo's prediction of whether another replicate is needed."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.ledger.records import Contribution, ContributionStatus, TaskStatus
from protocols.scheduling import Step, needs_replicate, task_step
from tests.support import T_MS, Market

GOOD, BAD = b"\x01" * 32, b"\x02" * 32


def contribution(result: bytes, weight: int = 2, status: ContributionStatus = ContributionStatus.CONTRIBUTED) -> Contribution:
    return Contribution(status, result, b"\x00" * 32, b"", weight)


def test_each_step_of_a_task_by_block_time() -> None:
    market = Market.create()
    task_id = market.start_task(trust=3)
    task = market.task(task_id)
    deal = market.deal(task.deal_id)
    start = deal.start_time
    assert task_step(deal, None, start) is Step.INITIALIZE
    assert task_step(deal, None, deal.final_deadline) is Step.CLAIM  # initializeAndClaim
    assert task_step(deal, task, start + T_MS) is Step.NOTHING  # ACTIVE: the workers' turn
    assert task_step(deal, task, task.final_deadline) is Step.CLAIM
    revealing = replace(task, status=TaskStatus.REVEALING, reveal_deadline=start + 3 * T_MS, winner_counter=2)
    assert task_step(deal, revealing, start + T_MS) is Step.NOTHING  # reveals still open
    assert task_step(deal, revealing, revealing.reveal_deadline) is Step.REOPEN  # nobody revealed
    one = replace(revealing, reveal_counter=1)
    assert task_step(deal, one, start + T_MS) is Step.NOTHING
    assert task_step(deal, one, revealing.reveal_deadline) is Step.FINALIZE  # a reveal, and the deadline passed
    assert task_step(deal, replace(revealing, reveal_counter=2), start + T_MS) is Step.FINALIZE  # all revealed
    assert task_step(deal, replace(task, status=TaskStatus.COMPLETED), deal.final_deadline) is Step.NOTHING


def test_replicates_are_handed_out_only_while_consensus_is_out_of_reach() -> None:
    assert needs_replicate([], [], trust=1)
    assert not needs_replicate([], [2], trust=1)  # one running replicate can reach trust 1
    assert needs_replicate([], [2], trust=3)  # fresh workers need two for trust 3
    assert not needs_replicate([], [2, 2], trust=3)
    # A liar contributed first: the prediction assumes the running replicate joins the largest group...
    assert not needs_replicate([contribution(BAD)], [2], trust=3)
    # ... and once an honest one disagreed, two more are needed.
    assert needs_replicate([contribution(BAD), contribution(GOOD)], [2], trust=3)
    assert not needs_replicate([contribution(BAD), contribution(GOOD)], [2, 2], trust=3)
    # Rejected contributions (a reopen) count for nothing.
    assert needs_replicate([contribution(GOOD, status=ContributionStatus.REJECTED)], [], trust=1)


@settings(max_examples=300, deadline=None)
@given(
    made=st.lists(st.tuples(st.sampled_from([GOOD, BAD]), st.integers(2, 9)), max_size=5),
    running=st.lists(st.integers(2, 9), max_size=4),
    extra=st.integers(2, 9),
    trust=st.integers(1, 6),
)
def test_one_more_running_replicate_never_creates_a_need(
    made: list[tuple[bytes, int]], running: list[int], extra: int, trust: int
) -> None:
    """Monotone: the more replicates run, the fewer are needed; trust 1 needs one replicate at most."""
    contributions = [contribution(result, weight) for result, weight in made]
    if not needs_replicate(contributions, running, trust):
        assert not needs_replicate(contributions, [*running, extra], trust)
    if trust == 1:
        assert needs_replicate(contributions, running, trust) == (not contributions and not running)
