"""Admission control: local submissions are refused with a reason once the pool holds more than the
measured commit rate drains in the backlog time; the limit follows the chain's speed, never below a floor."""

from __future__ import annotations

from node.admission import OVERLOADED, Admission


def test_the_floor_is_admitted_before_anything_is_measured() -> None:
    admission = Admission(backlog_s=30, floor=500, window_s=30)
    assert admission.refuse(499, now=0) is None
    reason = admission.refuse(500, now=0)
    assert reason is not None and reason.startswith(OVERLOADED) and "retry" in reason


def test_the_limit_follows_the_measured_rate_and_forgets_old_blocks() -> None:
    admission = Admission(backlog_s=30, floor=500, window_s=30)
    for second in range(30):  # 100 tx/s for half a minute
        admission.on_commit(100, now=float(second))
    assert admission.rate(now=30) == 100
    assert admission.limit(now=30) == 3_000
    assert admission.refuse(2_999, now=30) is None and admission.refuse(3_000, now=30) is not None
    # A slower chain (the same node on a machine twice as slow) admits half as much.
    slow = Admission(backlog_s=30, floor=500, window_s=30)
    for second in range(30):
        slow.on_commit(50, now=float(second))
    assert slow.limit(now=30) == 1_500
    # Minutes later with no commits, only the floor is left.
    assert admission.limit(now=200) == 500
