"""Proof of Contribution: task initialization, contribute (and contributeAndFinalize), reveal, finalize,
reopen and claim, and the rules the roles share with the ledger (consensus groups, worker authorization).

Follows PoCo's IexecPoco2Facet (reference/poco.md sections 3 and 4), with SHA-256 in place of keccak and
deadlines in milliseconds of block time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace

from protocols.crypto import Signature, SignatureVerifier
from protocols.ledger.context import TxContext
from protocols.ledger.escrow import KITTY_ADDRESS, Pot, Reject, lock, lock_into_kitty, reward, seize, unlock
from protocols.ledger.records import (
    CONTRIBUTION_DEADLINE_RATIO,
    REVEAL_DEADLINE_RATIO,
    Contribution,
    ContributionStatus,
    Deal,
    Task,
    TaskStatus,
)
from protocols.ledger.state import DEAL, TASK, StateView
from protocols.ledger.transactions import (
    Claim,
    Contribute,
    ContributeAndFinalize,
    Finalize,
    InitializeTask,
    Reopen,
    Reveal,
    WorkerAuthorization,
)
from protocols.matching import task_id_for
from protocols.orders import TEE_BIT, tag_int

# A task takes at most this many contributions: the scheduler hands out replicates only while consensus is
# out of reach, so even trust 100 with a few dishonest workers stays far below; the bound keeps a task's
# record and the consensus computation small.
MAX_CONTRIBUTORS = 64
# PoCo kitty bonus on success: 10% of the kitty, at least 1 RLC, at most all of it.
KITTY_BONUS_PERCENT = 10
KITTY_BONUS_MIN = 10**9


def result_hash(task_id: bytes, digest: bytes) -> bytes:
    """PoCo resultHash = H(taskid || digest): the same for every worker that computed the same result."""
    return hashlib.sha256(task_id + digest).digest()


def result_seal(worker: bytes, task_id: bytes, digest: bytes) -> bytes:
    """PoCo resultSeal = H(worker || taskid || digest): proves, at reveal, that this worker knew the digest."""
    return hashlib.sha256(worker + task_id + digest).digest()


def consensus_weight(score: int) -> int:
    """PoCo: w = max(score / 3, 3) - 1, so a fresh worker weighs 2."""
    return max(score // 3, 3) - 1


def consensus_groups(contributions: Iterable[Contribution]) -> dict[bytes, int]:
    """PoCo's groups: for each result hash, the product of the weights of the CONTRIBUTED contributions that
    agree on it (rejected and proved ones no longer count)."""
    groups: dict[bytes, int] = {}
    for c in contributions:
        if c.status == ContributionStatus.CONTRIBUTED:
            groups[c.result_hash] = groups.get(c.result_hash, 1) * c.weight
    return groups


def has_consensus(group: int, total: int, trust: int) -> bool:
    """PoCo's consensus rule: a group wins once group * trust > total * (trust - 1), total = 1 + all groups."""
    return group * trust > total * (trust - 1)


def worker_authorized(verifier: SignatureVerifier, deal: Deal, worker: bytes, task_id: bytes,
                      enclave_challenge: bytes, signature: Signature) -> bool:
    """PoCo's authSign: the deal's pool owner let this worker (and this enclave key) work on this task. The
    ledger checks it on contribute, a dataset owner before releasing a key."""
    grant = WorkerAuthorization(worker, task_id, enclave_challenge, signature)
    return grant.signer == deal.workerpool.owner and verifier.verify(grant)


def _new_task(deal_id: bytes, deal: Deal, index: int) -> Task:
    return Task(
        status=TaskStatus.ACTIVE,
        deal_id=deal_id,
        index=index,
        contribution_deadline=deal.start_time + CONTRIBUTION_DEADLINE_RATIO * deal.time_ref_ms,
        reveal_deadline=0,
        final_deadline=deal.final_deadline,
        consensus_value=b"",
        reveal_counter=0,
        winner_counter=0,
        contributors=(),
        result_digest=b"",
        results=b"",
    )


def _deal_and_index(view: StateView, deal_id: bytes, index: int) -> Deal:
    deal = view.deal(deal_id)
    if deal is None:
        raise Reject("unknown-deal", f"no deal 0x{deal_id.hex()}")
    if not deal.bot_first <= index < deal.bot_first + deal.bot_size:
        raise Reject("task-index-out-of-range", f"index {index} not in [{deal.bot_first}, {deal.bot_first + deal.bot_size})")
    return deal


def _task_and_deal(view: StateView, task_id: bytes) -> tuple[Task, Deal]:
    task = view.task(task_id)
    if task is None:
        raise Reject("unknown-task", f"no initialized task 0x{task_id.hex()}")
    deal = view.deal(task.deal_id)
    assert deal is not None  # a task is only written for an existing deal
    return task, deal


def _require_pool_owner(ctx: TxContext, deal: Deal) -> None:
    if ctx.sender != deal.workerpool.owner:
        raise Reject("not-workerpool-owner", f"only 0x{deal.workerpool.owner.hex()} may do this")


def initialize(ctx: TxContext, body: InitializeTask) -> bytes:
    deal = _deal_and_index(ctx.view, body.deal_id, body.index)
    task_id = task_id_for(body.deal_id, body.index)
    if ctx.view.task(task_id) is not None:
        raise Reject("task-already-initialized", f"task 0x{task_id.hex()} exists")
    if ctx.block_time >= deal.final_deadline:
        raise Reject("deal-expired", "past the final deadline: the task can only be claimed")
    ctx.view.put(TASK + task_id, _new_task(body.deal_id, deal, body.index))
    return task_id


def _admit_contribution(ctx: TxContext, body: Contribute) -> tuple[Task, Deal]:
    """The checks PoCo's contribute and contributeAndFinalize share: an active task before its contribution
    deadline, one contribution per worker, the pool owner's authorization, and a valid attestation."""
    view, worker = ctx.view, ctx.sender
    task, deal = _task_and_deal(view, body.task_id)
    if task.status != TaskStatus.ACTIVE:
        raise Reject("task-not-active", f"task is {TaskStatus(task.status).name}")
    if ctx.block_time >= task.contribution_deadline:
        raise Reject("contribution-deadline-passed", f"deadline was {task.contribution_deadline}")
    if view.contribution(body.task_id, worker) is not None:
        raise Reject("already-contributed", "one contribution per worker and task")
    if len(task.contributors) >= MAX_CONTRIBUTORS:
        raise Reject("task-full", f"task already has {MAX_CONTRIBUTORS} contributions")
    if not worker_authorized(ctx.rules.signatures, deal, worker, body.task_id, body.enclave_challenge, body.authorization):
        raise Reject("bad-authorization", "contribution is not authorized by the workerpool owner")
    if tag_int(deal.tag) & TEE_BIT and not body.enclave_challenge:
        raise Reject("enclave-challenge-missing", "a TEE task needs an enclave challenge")
    app = view.app(deal.app.pointer)
    assert app is not None  # a deal is only made for a registered app, and apps are never removed
    reason = ctx.rules.contribution_verifier.check(body, worker, deal, app)
    if reason is not None:
        raise Reject(reason, "attestation rejected")
    return task, deal


def contribute(ctx: TxContext, body: Contribute) -> bytes:
    view, worker = ctx.view, ctx.sender
    task, deal = _admit_contribution(ctx, body)
    lock(view, worker, deal.worker_stake, "worker-stake-too-low")
    weight = consensus_weight(view.account(worker).score)
    view.put_contribution(
        body.task_id,
        worker,
        Contribution(ContributionStatus.CONTRIBUTED, body.result_hash, body.result_seal, body.enclave_challenge, weight),
    )
    task = replace(task, contributors=task.contributors + (worker,))
    view.put(TASK + body.task_id, _update_consensus(view, body.task_id, task, deal, ctx.block_time, body.result_hash))
    return body.task_id


def contribute_and_finalize(ctx: TxContext, body: ContributeAndFinalize) -> bytes:
    """PoCo contributeAndFinalize: with trust 1 the first contribution is the consensus, so the worker
    contributes, reveals and finalizes in one transaction. No stake is locked and no score changes; the
    worker gets the workerpool price less the scheduler's ratio, the pool owner the rest (and, as in any
    success, its stake back and the kitty bonus)."""
    view, worker = ctx.view, ctx.sender
    rhash = result_hash(body.task_id, body.result_digest)
    rseal = result_seal(worker, body.task_id, body.result_digest)
    contribution = Contribute(body.task_id, rhash, rseal, body.enclave_challenge, body.attestation, body.authorization)
    task, deal = _admit_contribution(ctx, contribution)
    if deal.trust != 1:
        raise Reject("trust-not-one", f"contribute-and-finalize is for trust 1, the deal asks trust {deal.trust}")
    if task.contributors:
        raise Reject("task-has-contributors", "contribute-and-finalize must be the task's first contribution")
    pot = Pot()
    _success_work(view, pot, deal)
    reward(view, pot, worker, deal.workerpool.price * (100 - deal.scheduler_reward_ratio) // 100)
    reward(view, pot, deal.workerpool.owner, pot.amount)
    pot.require_empty()
    weight = consensus_weight(view.account(worker).score)
    view.put_contribution(
        body.task_id, worker, Contribution(ContributionStatus.PROVED, rhash, rseal, body.enclave_challenge, weight)
    )
    view.put(TASK + body.task_id, replace(
        task, status=TaskStatus.COMPLETED, contributors=(worker,), consensus_value=rhash, reveal_counter=1,
        winner_counter=1, result_digest=body.result_digest, results=body.results,
    ))
    view.put(DEAL + task.deal_id, replace(deal, settled=deal.settled + 1))
    return body.task_id


def _update_consensus(view: StateView, task_id: bytes, task: Task, deal: Deal, now: int, contributed: bytes) -> Task:
    """PoCo consensus after a contribution: group[h] is the product of agreeing weights, total = 1 + sum of
    groups, and the task reaches consensus on the hash just `contributed` once group * trust > total *
    (trust - 1). Only that hash is tested, as in PoCo's contribute: after a reopen has removed the silent
    winners' group (and with it part of the total), an older group may pass the test without anyone new
    agreeing with it, and PoCo leaves the task ACTIVE then. Groups are recomputed from the contributions (at
    most MAX_CONTRIBUTORS); rejected ones count for nothing."""
    contributions = [c for w in task.contributors if (c := view.contribution(task_id, w)) is not None]
    groups = consensus_groups(contributions)
    if not has_consensus(groups.get(contributed, 0), 1 + sum(groups.values()), deal.trust):
        return task
    winners = sum(1 for c in contributions if c.status == ContributionStatus.CONTRIBUTED and c.result_hash == contributed)
    return replace(
        task,
        status=TaskStatus.REVEALING,
        consensus_value=contributed,
        reveal_deadline=now + REVEAL_DEADLINE_RATIO * deal.time_ref_ms,
        winner_counter=winners,
    )


def reveal(ctx: TxContext, body: Reveal) -> bytes:
    view, worker = ctx.view, ctx.sender
    task, deal = _task_and_deal(view, body.task_id)
    if task.status != TaskStatus.REVEALING:
        raise Reject("task-not-revealing", f"task is {TaskStatus(task.status).name}")
    if ctx.block_time >= task.reveal_deadline:
        raise Reject("reveal-deadline-passed", f"deadline was {task.reveal_deadline}")
    contribution = view.contribution(body.task_id, worker)
    if contribution is None or contribution.status != ContributionStatus.CONTRIBUTED:
        raise Reject("not-a-contributor", "no pending contribution from this worker")
    if contribution.result_hash != task.consensus_value:
        raise Reject("not-a-winner", "this contribution is not the consensus value")
    if result_hash(body.task_id, body.result_digest) != contribution.result_hash:
        raise Reject("bad-result-hash", "digest does not match the contributed result hash")
    if result_seal(worker, body.task_id, body.result_digest) != contribution.result_seal:
        raise Reject("bad-result-seal", "digest does not match the contributed result seal")
    view.put_contribution(body.task_id, worker, replace(contribution, status=ContributionStatus.PROVED))
    task = replace(task, reveal_counter=task.reveal_counter + 1, result_digest=body.result_digest)
    view.put(TASK + body.task_id, task)
    return body.task_id


def finalize(ctx: TxContext, body: Finalize) -> bytes:
    view, now = ctx.view, ctx.block_time
    task, deal = _task_and_deal(view, body.task_id)
    _require_pool_owner(ctx, deal)
    if task.status != TaskStatus.REVEALING:
        raise Reject("task-not-revealing", f"task is {TaskStatus(task.status).name}")
    if now >= task.final_deadline:
        raise Reject("final-deadline-passed", "the task can only be claimed now")
    all_revealed = task.reveal_counter == task.winner_counter
    if not (all_revealed or (task.reveal_counter > 0 and now >= task.reveal_deadline)):
        raise Reject("reveals-pending", f"{task.reveal_counter}/{task.winner_counter} winners revealed")
    pot = Pot()
    _success_work(view, pot, deal)
    _distribute_rewards(view, pot, body.task_id, task, deal)
    pot.require_empty()
    view.put(TASK + body.task_id, replace(task, status=TaskStatus.COMPLETED, results=body.results))
    view.put(DEAL + task.deal_id, replace(deal, settled=deal.settled + 1))
    return body.task_id


def _success_work(view: StateView, pot: Pot, deal: Deal) -> None:
    """PoCo successWork: take the task price from escrow, pay app and dataset owners, free the pool's stake,
    and give the pool owner the kitty bonus. The workerpool price stays in the pot for the workers."""
    seize(view, pot, deal.requester, deal.task_price)
    reward(view, pot, deal.app.owner, deal.app.price)
    reward(view, pot, deal.dataset.owner, deal.dataset.price)
    unlock(view, deal.workerpool.owner, deal.pool_stake_per_task)
    kitty = view.account(KITTY_ADDRESS).frozen
    if kitty > 0:
        bonus = min(max(kitty * KITTY_BONUS_PERCENT // 100, KITTY_BONUS_MIN), kitty)
        seize(view, pot, KITTY_ADDRESS, bonus)
        reward(view, pot, deal.workerpool.owner, bonus)


def _distribute_rewards(view: StateView, pot: Pot, task_id: bytes, task: Task, deal: Deal) -> None:
    """PoCo distributeRewards: stakes of contributors who did not prove are seized and shared, with the
    workerpool price, among provers by log2 weight; the pool owner keeps its ratio and the rounding."""
    contributions = {w: view.contribution(task_id, w) for w in task.contributors}
    proved = {w: c for w, c in contributions.items() if c is not None and c.status == ContributionStatus.PROVED}
    for worker in contributions:
        if worker not in proved:
            seize(view, pot, worker, deal.worker_stake)
            account = view.account(worker)
            view.put_account(worker, replace(account, score=account.score * 2 // 3))
    workers_share = pot.amount * (100 - deal.scheduler_reward_ratio) // 100
    log_weights = {w: c.weight.bit_length() - 1 for w, c in proved.items()}
    total_log_weight = sum(log_weights.values())
    for worker in proved:
        unlock(view, worker, deal.worker_stake)
        reward(view, pot, worker, workers_share * log_weights[worker] // total_log_weight)
        if len(task.contributors) > 1:
            account = view.account(worker)
            view.put_account(worker, replace(account, score=account.score + 1))
    reward(view, pot, deal.workerpool.owner, pot.amount)


def reopen(ctx: TxContext, body: Reopen) -> bytes:
    """PoCo reopen: nobody revealed in time, so the winners are rejected and contribution starts again."""
    view, now = ctx.view, ctx.block_time
    task, deal = _task_and_deal(view, body.task_id)
    _require_pool_owner(ctx, deal)
    if task.status != TaskStatus.REVEALING:
        raise Reject("task-not-revealing", f"task is {TaskStatus(task.status).name}")
    if now < task.reveal_deadline:
        raise Reject("reveal-deadline-not-reached", f"reveals are open until {task.reveal_deadline}")
    if task.reveal_counter != 0:
        raise Reject("already-revealed", "a winner revealed: finalize instead")
    if now >= task.final_deadline:
        raise Reject("final-deadline-passed", "the task can only be claimed now")
    for worker in task.contributors:
        c = view.contribution(body.task_id, worker)
        if c is not None and c.result_hash == task.consensus_value:
            view.put_contribution(body.task_id, worker, replace(c, status=ContributionStatus.REJECTED))
    task = replace(task, status=TaskStatus.ACTIVE, consensus_value=b"", reveal_deadline=0, winner_counter=0)
    view.put(TASK + body.task_id, task)
    return body.task_id


def claim(ctx: TxContext, body: Claim) -> bytes:
    """PoCo claim (and initializeAndClaim): after the final deadline, refund the requester, send the pool's
    stake to the kitty and give contributors their stakes back."""
    view = ctx.view
    deal = _deal_and_index(view, body.deal_id, body.index)
    task_id = task_id_for(body.deal_id, body.index)
    task = view.task(task_id) or replace(_new_task(body.deal_id, deal, body.index), status=TaskStatus.UNSET)
    if task.status not in (TaskStatus.UNSET, TaskStatus.ACTIVE, TaskStatus.REVEALING):
        raise Reject("task-settled", f"task is {TaskStatus(task.status).name}")
    if ctx.block_time < task.final_deadline:
        raise Reject("final-deadline-not-reached", f"claimable from {task.final_deadline}")
    pot = Pot()
    unlock(view, deal.requester, deal.task_price)
    seize(view, pot, deal.workerpool.owner, deal.pool_stake_per_task)
    lock_into_kitty(view, pot, pot.amount)
    for worker in task.contributors:
        unlock(view, worker, deal.worker_stake)
    pot.require_empty()
    view.put(TASK + task_id, replace(task, status=TaskStatus.FAILED))
    view.put(DEAL + body.deal_id, replace(deal, settled=deal.settled + 1))
    return task_id
