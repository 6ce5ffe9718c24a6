"""The workerpool manager's scheduler (reference/poco.md section 3, "off-chain scheduler"; DESIGN.md 6).

It initializes its deals' tasks, hands a replicate to a worker only while consensus cannot yet be reached
counting the contributions made and the replicates still running (like iexec-core's prediction), gives up
on a replicate that did not contribute in time so another worker takes it, authorizes each worker's enclave
key, then finalizes (all winners revealed, or the reveal deadline passed with a reveal), reopens (nobody
revealed) or claims (final deadline passed). Transactions it submits may be refused by the mempool when
the chain is not there yet (a deadline not reached in block time): it simply tries again on the next tick.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from node.consensus_driver import wall_ms
from node.enclave.runner import APP_FAULTS
from node.roles.base import NodeAPI
from node.work_messages import OK, ReplicateInfo, ReplicateList, ReplicateReport, ResultLocation
from protocols.crypto import Signature, hex_address, sign
from protocols.encoding import encode
from protocols.ledger.poco import consensus_weight
from protocols.ledger.records import ContributionStatus, Deal, Task, TaskStatus
from protocols.ledger.state import DEAL
from protocols.ledger.transactions import Claim, Finalize, InitializeTask, Reopen, TxBody, WorkerAuthorization
from protocols.matching import task_id_for
from protocols.scheduling import Step, needs_replicate, task_step

log = logging.getLogger(__name__)

# A replicate that has not contributed after this many T (the category time) is presumed lost: its worker
# crashed or left, and the task needs another one (PoCo's contribution deadline is 7T, so there is room).
REPLICATE_TIMEOUT_T = 2
# A transaction this scheduler submitted is not submitted again for this long (it may still be pending).
RESUBMIT_S = 5.0
# Once this many workers report that the app itself failed (APP_FAULTS: an exit code, a memory or time
# limit, no computed.json...), the task is not handed out again: every honest worker would fail the same
# way, and retrying until the deadline only holds the pool. One report is not enough, so that a single
# worker cannot sink a task by lying. The task then ends as PoCo says: claimed at its final deadline.
APP_FAILURE_QUORUM = 2
# Ended tasks whose replicates the scheduler still remembers for `task debug` (a few hundred bytes each).
MAX_FINISHED_TASKS = 10_000


@dataclass
class TaskWork:
    """What the scheduler knows of one task beyond the ledger: replicates handed out, and how each ended."""

    assigned: dict[bytes, float] = field(default_factory=dict)  # worker -> when (monotonic s)
    results: dict[bytes, bytes] = field(default_factory=dict)  # worker -> sealed result blob hash
    reports: dict[bytes, ReplicateReport] = field(default_factory=dict)  # worker -> its last report
    lost: set[bytes] = field(default_factory=set)  # workers whose replicate timed out without a word
    # A worker whose own environment failed the replicate (a bundle it could not fetch...) may take the task
    # again after one category time T, not at its next poll: the cause rarely passes in half a second.
    retry_after: dict[bytes, float] = field(default_factory=dict)  # worker -> trio clock
    worker_failures: dict[bytes, ReplicateReport] = field(default_factory=dict)  # the last one per worker

    def app_failures(self) -> list[ReplicateReport]:
        return [r for r in self.reports.values() if r.outcome in APP_FAULTS]

    def abandoned(self, pool_size: int) -> bool:
        """The app failed on APP_FAILURE_QUORUM workers, or on every worker of a smaller pool."""
        return len(self.app_failures()) >= min(APP_FAILURE_QUORUM, max(1, pool_size))

    def verdict(self, pool_size: int) -> str:
        """The scheduler's word on the task for the requester ("" while it runs normally)."""
        failures = self.app_failures()
        if not self.abandoned(pool_size):
            return ""
        reasons = sorted({f"{r.outcome} ({r.detail})" if r.detail else r.outcome for r in failures})
        return (
            f"the app failed on {len(failures)} worker(s): {'; '.join(reasons)}. The pool stopped handing the task"
            " out; it fails at its final deadline, when the requester's escrow is refunded"
        )


class Scheduler:
    def __init__(self) -> None:
        self.tasks: dict[bytes, TaskWork] = {}
        self.finished: dict[bytes, TaskWork] = {}  # ended tasks, oldest first
        self.pool_size = 0  # the manager's count of ready workers, kept current by the manager
        self._submitted: dict[tuple[type, bytes], float] = {}

    # --- the manager's deals ---------------------------------------------------------------------------

    def my_deals(self, api: NodeAPI) -> list[tuple[bytes, Deal]]:
        view = api.ledger_view()
        return [
            (key[len(DEAL):], deal)
            for key, deal in view.base.items_with_prefix(DEAL)
            if deal.workerpool.owner == api.keypair.address and deal.settled < deal.bot_size
        ]

    async def tick(self, api: NodeAPI, now: float) -> None:
        """Submit what each task of our deals needs at the last block's time (`protocols.scheduling`)."""
        block_time = api.block_time
        view = api.ledger_view()
        for deal_id, deal in self.my_deals(api):
            for index in range(deal.bot_first, deal.bot_first + deal.bot_size):
                task_id = task_id_for(deal_id, index)
                task = view.task(task_id)
                step = task_step(deal, task, block_time)
                if step is Step.INITIALIZE:
                    await self._submit(api, InitializeTask(deal_id, index), task_id, now)
                elif step is Step.CLAIM:
                    await self._submit(api, Claim(deal_id, index), task_id, now)
                elif step is Step.FINALIZE and task is not None:
                    await self._submit(api, Finalize(task_id, self._result_location(api, task_id, task)), task_id, now)
                elif step is Step.REOPEN:
                    await self._submit(api, Reopen(task_id), task_id, now)
        for task_id in [t for t in self.tasks if (task := view.task(t)) is not None and task.status >= TaskStatus.COMPLETED]:
            self.finished[task_id] = self.tasks.pop(task_id)  # kept for `task debug` after the end
        while len(self.finished) > MAX_FINISHED_TASKS:
            del self.finished[next(iter(self.finished))]

    def _result_location(self, api: NodeAPI, task_id: bytes, task: Task) -> bytes:
        """Where the requester finds the result: a worker that proved its contribution and reported a blob."""
        view = api.ledger_view()
        reported = self.tasks.get(task_id, TaskWork()).results
        for worker in task.contributors:
            contribution = view.contribution(task_id, worker)
            if contribution is not None and contribution.status == ContributionStatus.PROVED and worker in reported:
                return encode(ResultLocation(worker, reported[worker]))
        return b""

    async def _submit(self, api: NodeAPI, body: TxBody, task_id: bytes, now: float) -> None:
        key = (type(body), task_id)
        if now - self._submitted.get(key, -RESUBMIT_S) < RESUBMIT_S:
            return
        self._submitted[key] = now
        try:
            await api.submit(body)
        except ValueError as exc:
            log.debug("event=scheduler-tx-refused kind=%s task=%s reason=%s", type(body).__name__, task_id.hex()[:16], exc)
            return
        log.info("event=scheduler-tx kind=%s task=%s", type(body).__name__, task_id.hex()[:16])

    # --- workers ---------------------------------------------------------------------------------------

    def next_task_for(self, api: NodeAPI, worker: bytes, now: float) -> bytes | None:
        """A task of this pool that `worker` has not worked on and that still needs a replicate."""
        view = api.ledger_view()
        for deal_id, deal in self.my_deals(api):
            for index in range(deal.bot_first, deal.bot_first + deal.bot_size):
                task_id = task_id_for(deal_id, index)
                task = view.task(task_id)
                if task is None or task.status != TaskStatus.ACTIVE or wall_ms() >= task.contribution_deadline:
                    continue
                work = self.tasks.setdefault(task_id, TaskWork())
                timeout = REPLICATE_TIMEOUT_T * deal.time_ref_ms / 1000
                for w, t in list(work.assigned.items()):
                    if view.contribution(task_id, w) is not None:
                        del work.assigned[w]
                    elif now - t >= timeout:
                        del work.assigned[w]
                        work.lost.add(w)
                if work.abandoned(self.pool_size) or view.account(worker).balance < deal.worker_stake:
                    continue
                if worker in work.assigned or worker in work.reports or view.contribution(task_id, worker) is not None:
                    continue
                if now < work.retry_after.get(worker, now):
                    continue
                contributions = [c for w in task.contributors if (c := view.contribution(task_id, w)) is not None]
                running = [consensus_weight(view.account(w).score) for w in work.assigned]
                if not needs_replicate(contributions, running, deal.trust):
                    continue
                work.assigned[worker] = now
                log.info("event=replicate-assigned task=%s worker=%s", task_id.hex()[:16], hex_address(worker))
                return task_id
        return None

    def authorize(self, api: NodeAPI, worker: bytes, task_id: bytes, enclave_key: bytes) -> Signature | None:
        """PoCo's authSign, only for a worker this scheduler assigned to the task."""
        work = self.tasks.get(task_id)
        if work is None or worker not in work.assigned:
            return None
        return sign(api.keypair, api.genesis.chain_id, WorkerAuthorization(worker, task_id, enclave_key)).signature

    def record_report(self, api: NodeAPI, worker: bytes, report: ReplicateReport, now: float) -> None:
        """A worker's word on its replicate. A failure frees the replicate at once, so another worker takes
        it (or, once the app has failed on enough workers, nobody: see APP_FAILURE_QUORUM)."""
        work = self.tasks.get(report.task_id)
        if work is None or (worker not in work.assigned and worker not in work.lost):
            return  # not a replicate of ours: a stray or forged report changes nothing
        work.assigned.pop(worker, None)
        work.lost.discard(worker)
        if report.outcome == OK:
            work.results[worker] = report.result_blob
            work.reports[worker] = report
            return
        if report.outcome in APP_FAULTS:
            work.reports[worker] = report  # this worker is not asked again for the task
        else:
            task = api.ledger_view().task(report.task_id)
            deal = api.ledger_view().deal(task.deal_id) if task else None
            work.retry_after[worker] = now + (deal.time_ref_ms / 1000 if deal else 0)
            work.worker_failures[worker] = report
        log.info("event=replicate-reported task=%s worker=%s outcome=%s detail=%r",
                 report.task_id.hex()[:16], hex_address(worker), report.outcome, report.detail[:200])
        if report.outcome in APP_FAULTS and work.abandoned(self.pool_size):
            log.warning("event=task-abandoned task=%s verdict=%r", report.task_id.hex()[:16], work.verdict(self.pool_size))

    def replicates(self, task_id: bytes) -> ReplicateList:
        """How the task's replicates went, for `pocnet task show/debug` on any node."""
        work = self.tasks.get(task_id) or self.finished.get(task_id)
        if work is None:
            return ReplicateList((), "")
        infos = [ReplicateInfo(w, "running", "", b"") for w in work.assigned]
        infos += [ReplicateInfo(w, r.outcome, r.detail, r.logs_blob) for w, r in work.reports.items()]
        infos += [
            ReplicateInfo(w, r.outcome, r.detail, r.logs_blob)
            for w, r in work.worker_failures.items() if w not in work.reports and w not in work.assigned
        ]
        infos += [ReplicateInfo(w, "lost", "no word from the worker within the replicate timeout", b"") for w in work.lost]
        return ReplicateList(tuple(infos[:64]), work.verdict(self.pool_size))
