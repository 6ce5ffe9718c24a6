"""devnet/cpulimit.py: the quota written where cgroup v1 expects it, and the pinning fallback with a warning."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from devnet.cpulimit import CFS_PERIOD_US, CpuLimit, CpuLimitError


def test_a_cgroup_gets_the_quota_and_the_processes(tmp_path: Path) -> None:
    limit = CpuLimit(0.5, "t", root=tmp_path)
    assert limit.group is not None and limit.warning is None
    assert (limit.group / "cpu.cfs_period_us").read_text() == str(CFS_PERIOD_US)
    assert (limit.group / "cpu.cfs_quota_us").read_text() == str(CFS_PERIOD_US // 2)
    limit.add(12345)
    assert (limit.group / "cgroup.procs").read_text() == "12345"
    assert "0.5 cores" in limit.describe()


def test_without_cgroups_it_pins_and_says_so(tmp_path: Path) -> None:
    limit = CpuLimit(0.5, "t", root=tmp_path / "no" / "such" / "controller")
    assert limit.group is None
    assert limit.warning is not None and "taskset" in limit.warning and "rounded up" in limit.warning
    before = os.sched_getaffinity(0)
    try:
        limit.add(os.getpid())
        assert len(os.sched_getaffinity(0)) == 1
    finally:
        os.sched_setaffinity(0, before)


def test_a_non_positive_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CpuLimitError, match="positive"):
        CpuLimit(0, "t", root=tmp_path)
