"""A slower machine on demand: every node process of a devnet inside one CPU quota.

`CpuLimit(cores)` creates a cgroup v1 `cpu` group with `cpu.cfs_quota_us = cores * cpu.cfs_period_us`
(0.5 means the whole devnet gets half of one core, however many processes it has) and `add(pid)` moves a
process into it; children (an iApp's sandbox) inherit it. Where the cgroup v1 cpu controller is not
writable (no root, cgroup v2 only), it falls back to pinning the processes on `ceil(cores)` CPUs with
`sched_setaffinity` (what `taskset` does) and says so once: that cannot express a fraction of a core, nor
cap the total below the pinned cores.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_CPU_ROOT = Path("/sys/fs/cgroup/cpu")
# The kernel's default CFS period. The quota is a share of it; 100 ms keeps the throttling coarse enough
# that a process runs in slices of several milliseconds, as on a slower CPU, not in microsecond crumbs.
CFS_PERIOD_US = 100_000
# The kernel refuses quotas below 1 ms.
MIN_QUOTA_US = 1_000
# Removing the group waits this long at most for exited processes to leave it.
REMOVE_TIMEOUT_S = 5.0


class CpuLimitError(RuntimeError):
    """The limit cannot be set up at all (a bad value)."""


class CpuLimit:
    def __init__(self, cores: float, name: str, root: Path = CGROUP_CPU_ROOT) -> None:
        if not cores > 0:
            raise CpuLimitError(f"--cpu-limit must be a positive number of cores, got {cores}")
        self.cores = cores
        self.group: Path | None = None
        self.warning: str | None = None
        self._cpus: set[int] = set()
        group = root / f"pocnet-{name}-{os.getpid()}"
        try:
            group.mkdir(exist_ok=True)
            (group / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (group / "cpu.cfs_quota_us").write_text(str(max(MIN_QUOTA_US, round(cores * CFS_PERIOD_US))))
            self.group = group
        except OSError as exc:
            if group.exists():
                _remove_group(group)
            available = sorted(os.sched_getaffinity(0))
            self._cpus = set(available[: max(1, math.ceil(cores))])
            self.warning = (
                f"cgroup v1 cpu controller not usable at {root} ({exc.strerror or exc}); falling back to "
                f"pinning the nodes on CPUs {sorted(self._cpus)} (taskset): {cores} cores is rounded up to "
                f"{len(self._cpus)}, and the nodes share them with nothing else held back"
            )
            log.warning("event=cpu-limit-fallback reason=%r", self.warning)

    def describe(self) -> str:
        if self.group is not None:
            return f"{self.cores:g} cores for all nodes (cgroup {self.group}, quota {round(self.cores * CFS_PERIOD_US)} us per {CFS_PERIOD_US} us)"
        return f"pinned on CPUs {sorted(self._cpus)} (taskset fallback; asked for {self.cores:g} cores)"

    def add(self, pid: int) -> None:
        """Put a freshly started process under the limit (before it has done much)."""
        if self.group is not None:
            (self.group / "cgroup.procs").write_text(str(pid))
        else:
            os.sched_setaffinity(pid, self._cpus)

    def close(self) -> None:
        """Remove the group once its processes are gone (the devnet was stopped)."""
        if self.group is not None:
            _remove_group(self.group)
            self.group = None


def _remove_group(group: Path) -> None:
    """rmdir of a cgroup; processes still inside are moved to the parent first. A process that just exited
    keeps the group busy until the kernel has finished with it (EBUSY for a moment): retry for a while."""
    deadline = time.monotonic() + REMOVE_TIMEOUT_S
    while True:
        try:
            for pid in (group / "cgroup.procs").read_text().split():
                try:
                    (group.parent / "cgroup.procs").write_text(pid)
                except OSError:
                    pass  # exited meanwhile
            group.rmdir()
            return
        except OSError as exc:
            if time.monotonic() > deadline:
                log.warning("event=cpu-limit-cleanup-failed group=%s error=%r", group, exc)
                return
            time.sleep(0.05)
