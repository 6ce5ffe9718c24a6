"""Proof of Contribution on the ledger: every task transaction, its happy path and each rejection."""

from __future__ import annotations

from dataclasses import replace

import pytest

from protocols.attestation import sign_enclave_result
from protocols.ledger.market import WORKERPOOL_STAKE_RATIO
from protocols.ledger.poco import KITTY_BONUS_MIN, consensus_weight
from protocols.ledger.records import ContributionStatus, TaskStatus
from protocols.ledger.transactions import (
    Claim,
    ContributeAndFinalize,
    Finalize,
    InitializeTask,
    MatchOrders,
    Reopen,
    Transfer,
    WorkerAuthorization,
)
from protocols.matching import task_id_for
from protocols.orders import TEE_BIT, tag_bytes
from tests.support import APP_PRICE, CHAIN_ID, DATASET_PRICE, POOL_PRICE, START_BALANCE, T_MS, Market, total_supply

GOOD = b"\x01" * 32
BAD = b"\x02" * 32
STAKE = POOL_PRICE * 30 // 100
POOL_STAKE = POOL_PRICE * WORKERPOOL_STAKE_RATIO // 100


@pytest.fixture
def market() -> Market:
    return Market.create()


# initialize ----------------------------------------------------------------------------------------


def test_initialize_sets_deadlines_from_the_deal_start(market: Market) -> None:
    deal_id = market.match()
    market.now += 500
    task_id = market.ok("w1", InitializeTask(deal_id, 0)).created  # anyone may initialize
    task = market.task(task_id)
    start = market.deal(deal_id).start_time
    assert task.status == TaskStatus.ACTIVE
    assert task.contribution_deadline == start + 7 * T_MS
    assert task.final_deadline == start + 10 * T_MS


def test_initialize_rejections(market: Market) -> None:
    deal_id = market.match()
    assert market.submit("w1", InitializeTask(b"\x00" * 32, 0)).code == "unknown-deal"
    assert market.submit("w1", InitializeTask(deal_id, 1)).code == "task-index-out-of-range"
    market.ok("w1", InitializeTask(deal_id, 0))
    assert market.submit("w1", InitializeTask(deal_id, 0)).code == "task-already-initialized"
    other = market.match()
    market.now += 10 * T_MS
    assert market.submit("w1", InitializeTask(other, 0)).code == "deal-expired"


# contribute ----------------------------------------------------------------------------------------


def test_contribute_locks_stake_and_trust_one_reaches_consensus_at_once(market: Market) -> None:
    task_id = market.start_task(trust=1)
    assert market.contribute("w1", task_id, GOOD).ok
    assert market.account("w1").frozen == STAKE
    task = market.task(task_id)
    assert task.status == TaskStatus.REVEALING
    assert task.reveal_deadline == market.now + 2 * T_MS
    assert task.winner_counter == 1


def test_fresh_workers_need_two_matches_for_trust_three(market: Market) -> None:
    task_id = market.start_task(trust=3)
    market.contribute("w1", task_id, GOOD)
    assert market.task(task_id).status == TaskStatus.ACTIVE
    market.contribute("w2", task_id, GOOD)
    assert market.task(task_id).status == TaskStatus.REVEALING


def test_fresh_workers_need_three_matches_for_trust_five(market: Market) -> None:
    task_id = market.start_task(trust=5)
    market.contribute("w1", task_id, GOOD)
    market.contribute("w2", task_id, GOOD)
    assert market.task(task_id).status == TaskStatus.ACTIVE
    market.contribute("w3", task_id, GOOD)
    assert market.task(task_id).status == TaskStatus.REVEALING


def test_a_dishonest_contribution_delays_consensus(market: Market) -> None:
    task_id = market.start_task(trust=3)
    market.contribute("w4", task_id, BAD)
    market.contribute("w1", task_id, GOOD)
    market.contribute("w2", task_id, GOOD)
    assert market.task(task_id).status == TaskStatus.ACTIVE  # 4*3 > 7*2 fails
    market.contribute("w3", task_id, GOOD)
    task = market.task(task_id)
    assert task.status == TaskStatus.REVEALING and task.winner_counter == 3


def test_consensus_weight_follows_poco() -> None:
    assert consensus_weight(0) == 2
    assert consensus_weight(12) == 3
    assert consensus_weight(30) == 9


def test_contribute_rejections(market: Market) -> None:
    task_id = market.start_task(trust=3)
    assert market.submit("w1", replace(market.contribution("w1", task_id, GOOD), task_id=b"\x00" * 32)).code == "unknown-task"
    # authorization signed by someone else than the pool owner
    good = market.contribution("w1", task_id, GOOD)
    forged = replace(good, authorization=market.wallets["w2"].sign(
        WorkerAuthorization(
            market.addr("w1"), task_id, good.enclave_challenge)).signature)
    assert market.submit("w1", forged).code == "bad-authorization"
    # an authorization for w1 used by w2
    assert market.submit("w2", good).code == "bad-authorization"
    # enclave signature over another result
    other = market.contribution("w1", task_id, BAD)
    assert market.submit("w1", replace(good, attestation=other.attestation)).code == "bad-enclave-signature"
    assert market.contribute("w1", task_id, GOOD).ok
    assert market.contribute("w1", task_id, GOOD).code == "already-contributed"
    # w2 has no funds to stake
    market.ok("w2", Transfer(
        market.addr("poor"), START_BALANCE))
    assert market.contribute("w2", task_id, GOOD).code == "worker-stake-too-low"
    market.now += 7 * T_MS
    assert market.contribute("w3", task_id, GOOD).code == "contribution-deadline-passed"


def test_contribute_after_consensus_is_refused(market: Market) -> None:
    task_id = market.start_task(trust=1)
    market.contribute("w1", task_id, GOOD)
    assert market.contribute("w2", task_id, GOOD).code == "task-not-active"


def test_tee_task_needs_an_enclave_challenge(market: Market) -> None:
    tee = tag_bytes(TEE_BIT)
    body = MatchOrders(market.app_order(tag=tee), market.dataset_order(), market.pool_order(tag=tee),
                       market.request_order(tag=tee))
    deal_id = market.ok("requester", body).created
    task_id = market.ok("manager", InitializeTask(deal_id, 0)).created
    contribution = market.contribution("w1", task_id, GOOD)
    auth = market.wallets["manager"].sign(
        WorkerAuthorization(
            market.addr("w1"), task_id, b"")).signature
    bare = replace(contribution, enclave_challenge=b"", attestation=b"", authorization=auth)
    assert market.submit("w1", bare).code == "enclave-challenge-missing"
    assert market.submit("w1", contribution).ok


# reveal --------------------------------------------------------------------------------------------


def test_reveal_rejections_and_success(market: Market) -> None:
    task_id = market.start_task(trust=3)
    market.contribute("w4", task_id, BAD)
    assert market.reveal("w4", task_id, BAD).code == "task-not-revealing"
    for w in ("w1", "w2", "w3"):
        market.contribute(w, task_id, GOOD)
    assert market.reveal("w4", task_id, BAD).code == "not-a-winner"
    assert market.reveal("poor", task_id, GOOD).code == "not-a-contributor"
    assert market.reveal("w1", task_id, BAD).code == "bad-result-hash"
    assert market.reveal("w1", task_id, GOOD).ok
    assert market.reveal("w1", task_id, GOOD).code == "not-a-contributor"
    assert market.task(task_id).reveal_counter == 1
    market.now += 2 * T_MS
    assert market.reveal("w2", task_id, GOOD).code == "reveal-deadline-passed"


def test_reveal_with_a_wrong_seal(market: Market) -> None:
    task_id = market.start_task(trust=1)
    contribution = market.contribution("w1", task_id, GOOD)
    wrong_seal = market.contribution("w2", task_id, GOOD).result_seal  # w2's seal, w1 submits it
    attestation = sign_enclave_result(market.enclave_keys["w1"], CHAIN_ID, contribution.result_hash, wrong_seal)
    market.ok("w1", replace(contribution, result_seal=wrong_seal, attestation=attestation))
    assert market.reveal("w1", task_id, GOOD).code == "bad-result-seal"


# finalize ------------------------------------------------------------------------------------------


def run_to_revealed(market: Market, honest: tuple[str, ...], dishonest: tuple[str, ...] = (), trust: int = 3) -> bytes:
    task_id = market.start_task(trust=trust)
    for w in dishonest:
        market.contribute(w, task_id, BAD)
    for w in honest:
        market.contribute(w, task_id, GOOD)
    for w in honest:
        market.reveal(w, task_id, GOOD)
    return task_id


def test_finalize_pays_everyone_and_seizes_the_dishonest_stake(market: Market) -> None:
    supply = total_supply(market.ledger)
    before = {n: market.account(n).balance for n in ("appdev", "provider", "manager", "w1", "w4", "requester")}
    task_id = run_to_revealed(market, honest=("w1", "w2", "w3"), dishonest=("w4",))
    assert market.submit("w1", Finalize(task_id, b"loc")).code == "not-workerpool-owner"
    market.ok("manager", Finalize(task_id, b"loc"))
    task = market.task(task_id)
    assert task.status == TaskStatus.COMPLETED and task.results == b"loc" and task.result_digest == GOOD
    gain = {n: market.account(n).balance - before[n] for n in before}
    assert gain["appdev"] == APP_PRICE and gain["provider"] == DATASET_PRICE
    assert gain["requester"] == -(APP_PRICE + DATASET_PRICE + POOL_PRICE)
    pot = POOL_PRICE + STAKE  # the pool price plus w4's seized stake
    share = pot * 99 // 100 // 3  # three equal log-weights, 1% scheduler ratio
    assert gain["w1"] == share
    assert gain["w4"] == -STAKE
    assert gain["manager"] == pot - 3 * share
    assert all(market.account(n).frozen == 0 for n in ("w1", "w2", "w3", "w4", "requester", "manager"))
    assert market.account("w1").score == 1 and market.account("w4").score == 0
    assert total_supply(market.ledger) == supply


def test_finalize_waits_for_all_winners_until_the_reveal_deadline(market: Market) -> None:
    task_id = market.start_task(trust=3)
    market.contribute("w1", task_id, GOOD)
    market.contribute("w2", task_id, GOOD)
    market.reveal("w1", task_id, GOOD)
    assert market.submit("manager", Finalize(task_id, b"")).code == "reveals-pending"
    market.now = market.task(task_id).reveal_deadline
    market.ok("manager", Finalize(task_id, b""))
    assert market.account("w2").frozen == 0  # w2 did not reveal: its stake was seized
    assert market.account("w2").balance == START_BALANCE - STAKE


def test_finalize_rejections(market: Market) -> None:
    task_id = market.start_task(trust=1)
    assert market.submit("manager", Finalize(task_id, b"")).code == "task-not-revealing"
    market.contribute("w1", task_id, GOOD)
    market.reveal("w1", task_id, GOOD)
    market.now = market.task(task_id).final_deadline
    assert market.submit("manager", Finalize(task_id, b"")).code == "final-deadline-passed"


def test_kitty_bonus_goes_to_the_next_successful_pool(market: Market) -> None:
    failed = market.match()
    market.now += 10 * T_MS
    market.ok("w1", Claim(failed, 0))
    assert market.kitty() == POOL_STAKE
    manager_before = market.account("manager").balance
    task_id = run_to_revealed(market, honest=("w1",), trust=1)
    market.ok("manager", Finalize(task_id, b""))
    bonus = min(max(POOL_STAKE // 10, KITTY_BONUS_MIN), POOL_STAKE)
    assert market.kitty() == POOL_STAKE - bonus
    # the manager locked a new pool stake at match and got it back, plus its scheduler share and the bonus
    pot = POOL_PRICE
    assert market.account("manager").balance - manager_before == pot - pot * 99 // 100 + bonus


# reopen --------------------------------------------------------------------------------------------


def test_reopen_after_silent_winners(market: Market) -> None:
    task_id = market.start_task(trust=3)
    market.contribute("w1", task_id, GOOD)
    market.contribute("w2", task_id, GOOD)
    assert market.submit("manager", Reopen(task_id)).code == "reveal-deadline-not-reached"
    market.now = market.task(task_id).reveal_deadline
    assert market.submit("w1", Reopen(task_id)).code == "not-workerpool-owner"
    market.ok("manager", Reopen(task_id))
    task = market.task(task_id)
    assert task.status == TaskStatus.ACTIVE and task.winner_counter == 0
    view = market.ledger.state.view()
    assert view.contribution(task_id, market.addr("w1")).status == ContributionStatus.REJECTED
    market.contribute("w3", task_id, GOOD)
    market.contribute("w4", task_id, GOOD)
    assert market.task(task_id).status == TaskStatus.REVEALING and market.task(task_id).winner_counter == 2


def test_reopen_rejections(market: Market) -> None:
    task_id = market.start_task(trust=1)
    assert market.submit("manager", Reopen(task_id)).code == "task-not-revealing"
    market.contribute("w1", task_id, GOOD)
    market.reveal("w1", task_id, GOOD)
    market.now = market.task(task_id).reveal_deadline
    assert market.submit("manager", Reopen(task_id)).code == "already-revealed"


# claim ---------------------------------------------------------------------------------------------


def test_claim_refunds_requester_and_unlocks_contributors(market: Market) -> None:
    supply = total_supply(market.ledger)
    task_id = market.start_task(trust=3)
    deal_id = market.task(task_id).deal_id
    market.contribute("w1", task_id, GOOD)
    assert market.submit("w1", Claim(deal_id, 0)).code == "final-deadline-not-reached"
    market.now = market.task(task_id).final_deadline
    market.ok("w2", Claim(deal_id, 0))  # anyone may claim
    assert market.task(task_id).status == TaskStatus.FAILED
    assert market.account("requester").balance == START_BALANCE
    assert market.account("w1").frozen == 0 and market.account("w1").balance == START_BALANCE
    assert market.kitty() == POOL_STAKE
    assert market.submit("w2", Claim(deal_id, 0)).code == "task-settled"
    assert total_supply(market.ledger) == supply


def test_claim_of_an_uninitialized_task(market: Market) -> None:
    deal_id = market.match(volume=2)
    market.now += 10 * T_MS
    market.ok("w1", Claim(deal_id, 1))
    assert market.task(task_id_for(deal_id, 1)).status == TaskStatus.FAILED
    assert market.deal(deal_id).settled == 1
    assert market.submit("w1", Claim(deal_id, 2)).code == "task-index-out-of-range"


def test_completed_task_cannot_be_claimed(market: Market) -> None:
    task_id = run_to_revealed(market, honest=("w1",), trust=1)
    market.ok("manager", Finalize(task_id, b""))
    market.now += 20 * T_MS
    assert market.submit("w1", Claim(market.task(task_id).deal_id, 0)).code == "task-settled"
    assert market.account("requester").balance == START_BALANCE - (APP_PRICE + DATASET_PRICE + POOL_PRICE)


def test_after_a_reopen_only_the_hash_just_contributed_can_reach_consensus(market: Market) -> None:
    """PoCo's contribute tests consensus for the contributed hash alone. Trust 3: A (weight 2), B, A, B
    (weight 5 each) put B in consensus (25 * 3 > 36 * 2); nobody reveals, the reopen removes B's group;
    then a fresh worker contributes C. A's group (2 * 5 = 10) would now pass the test (10 * 3 > 13 * 2),
    but nobody new agreed with it: the task stays ACTIVE, and the third result costs nobody a stake."""
    view = market.ledger.state.view()
    for name in ("w2", "w3", "w4"):  # score 18: weight max(18 // 3, 3) - 1 = 5
        view.put_account(market.addr(name), replace(view.account(market.addr(name)), score=18))
    market.ledger.state.apply_writes(view.writes)
    worker_c = market.addr("poor")
    market.ok("requester", Transfer(worker_c, STAKE))  # the fresh fifth worker can stake
    task_id = market.start_task(trust=3)
    for name, result in (("w1", GOOD), ("w2", BAD), ("w3", GOOD), ("w4", BAD)):
        market.contribute(name, task_id, result)
    assert market.task(task_id).status == TaskStatus.REVEALING and market.task(task_id).consensus_value != b""
    market.now = market.task(task_id).reveal_deadline
    market.ok("manager", Reopen(task_id))
    third = b"\x03" * 32
    market.contribute("poor", task_id, third)
    assert market.task(task_id).status == TaskStatus.ACTIVE


# contribute and finalize ---------------------------------------------------------------------------


def contribute_and_finalize(market: Market, worker: str, task_id: bytes, digest: bytes) -> ContributeAndFinalize:
    c = market.contribution(worker, task_id, digest)
    return ContributeAndFinalize(task_id, digest, b"where", c.enclave_challenge, c.attestation, c.authorization)


def test_contribute_and_finalize_completes_a_trust_one_task_in_one_step(market: Market) -> None:
    supply = total_supply(market.ledger)
    task_id = market.start_task(trust=1)
    deal = market.deal(market.task(task_id).deal_id)
    worker_before, pool_before = market.account("w1"), market.account("manager")
    market.ok("w1", contribute_and_finalize(market, "w1", task_id, GOOD))
    task = market.task(task_id)
    assert task.status == TaskStatus.COMPLETED and task.results == b"where" and task.result_digest == GOOD
    assert task.contributors == (market.addr("w1"),) and task.reveal_counter == task.winner_counter == 1
    worker_share = POOL_PRICE * (100 - deal.scheduler_reward_ratio) // 100
    after = market.account("w1")
    assert after.balance == worker_before.balance + worker_share and after.frozen == 0  # no stake was locked
    assert after.score == worker_before.score  # no score change
    pool = market.account("manager")  # the rest of the pool price, and its stake back
    assert pool.balance + pool.frozen == pool_before.balance + pool_before.frozen + POOL_PRICE - worker_share
    assert market.deal(task.deal_id).settled == 1
    assert total_supply(market.ledger) == supply


def test_contribute_and_finalize_rejections(market: Market) -> None:
    trust_three = market.start_task(trust=3)
    assert market.submit("w1", contribute_and_finalize(market, "w1", trust_three, GOOD)).code == "trust-not-one"
    task_id = market.start_task(trust=1)
    forged = replace(contribute_and_finalize(market, "w1", task_id, GOOD), result_digest=BAD)
    assert market.submit("w1", forged).code == "bad-enclave-signature"  # the enclave signed another result
    assert market.submit("w2", contribute_and_finalize(market, "w1", task_id, GOOD)).code == "bad-authorization"
    market.ok("w1", contribute_and_finalize(market, "w1", task_id, GOOD))
    assert market.submit("w2", contribute_and_finalize(market, "w2", task_id, GOOD)).code == "task-not-active"
