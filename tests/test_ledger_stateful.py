"""Random transaction sequences against the ledger, with PoCo's invariants checked after every step.

- the total supply of nRLC never changes;
- no order's consumed volume exceeds its volume;
- frozen funds are exactly what open deals can still pay (escrow and pool stakes of unsettled tasks),
  plus the stakes of contributors to unsettled tasks, plus the kitty;
- a task is settled (finalized or claimed) at most once;
- a rejected transaction changes no state.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, multiple, rule

from protocols.ledger.escrow import KITTY_ADDRESS
from protocols.ledger.ledger import TxOutcome
from protocols.ledger.records import TaskStatus
from protocols.ledger.state import ACCOUNT, CONTRIBUTION, DEAL, TASK
from protocols.ledger.transactions import (
    CancelOrder,
    Claim,
    Finalize,
    InitializeTask,
    MatchOrders,
    Reopen,
    Reveal,
    Transfer,
    TxBody,
)
from protocols.matching import task_id_for
from protocols.orders import Order
from tests.support import RLC, T_MS, Market, total_supply

WORKERS = ("w1", "w2", "w3", "w4", "poor")
DIGESTS = (b"\x01" * 32, b"\x02" * 32)
EXAMPLES = int(os.environ.get("POCNET_STATEFUL_EXAMPLES", "150"))


class LedgerMachine(RuleBasedStateMachine):
    deals = Bundle("deals")
    tasks = Bundle("tasks")
    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.market = Market.create(seed=1)
        self.supply = total_supply(self.market.ledger)
        self.seen_orders: dict[bytes, Order] = {}
        self.settled: set[bytes] = set()

    def submit(self, who: str, body: TxBody) -> TxOutcome:
        digest = self.market.ledger.state.digest()
        outcome = self.market.submit(who, body)
        if not outcome.ok:
            assert self.market.ledger.state.digest() == digest, f"rejected {outcome.code} changed the state"
        return outcome

    def remember(self, *orders: Order | None) -> None:
        for order in orders:
            if order is not None:
                self.seen_orders[order.payload_digest] = order

    # Rules --------------------------------------------------------------------------------------

    @rule(target=deals, trust=st.integers(0, 5), volume=st.integers(1, 3), with_dataset=st.booleans(),
          pool_volume=st.integers(1, 3))
    def match(self, trust: int, volume: int, with_dataset: bool, pool_volume: int) -> Any:
        m = self.market
        dataset = m.dataset_order() if with_dataset else None
        request = m.request_order(trust=trust, volume=volume) if with_dataset else m.request_order(
            trust=trust, volume=volume, dataset=b"\x00" * 20, dataset_max_price=0)
        body = MatchOrders(m.app_order(), dataset, m.pool_order(volume=pool_volume, trust=5), request)
        self.remember(body.app_order, dataset, body.workerpool_order, request)
        outcome = self.submit("requester", body)
        return outcome.created if outcome.ok else multiple()

    @rule(target=orders)
    def publish_request(self) -> Order:
        order = self.market.request_order(volume=2)
        self.remember(order)
        return order

    @rule(order=consumes(orders), who=st.sampled_from(("requester", "w1")))
    def cancel(self, order: Order, who: str) -> None:
        self.submit(who, CancelOrder(order))

    @rule(order=orders)
    def match_published_request(self, order: Order) -> None:
        m = self.market
        body = MatchOrders(m.app_order(), m.dataset_order(), m.pool_order(volume=1, trust=5), order)  # type: ignore[arg-type]
        self.remember(body.app_order, body.dataset_order, body.workerpool_order)
        self.submit("requester", body)

    @rule(target=tasks, deal=deals, index=st.integers(0, 3))
    def initialize(self, deal: bytes, index: int) -> Any:
        outcome = self.submit("w1", InitializeTask(deal, index))
        return outcome.created if outcome.ok else multiple()

    @rule(task=tasks, worker=st.sampled_from(WORKERS), digest=st.sampled_from(DIGESTS))
    def contribute(self, task: bytes, worker: str, digest: bytes) -> None:
        if self.market.task(task) is None:
            return
        self.submit(worker, self.market.contribution(worker, task, digest))

    @rule(task=tasks, worker=st.sampled_from(WORKERS), digest=st.sampled_from(DIGESTS))
    def reveal(self, task: bytes, worker: str, digest: bytes) -> None:
        self.submit(worker, Reveal(task, digest))

    @rule(task=tasks, votes=st.lists(st.sampled_from(DIGESTS), min_size=1, max_size=4))
    def contribute_and_reveal_together(self, task: bytes, votes: list[bytes]) -> None:
        """A whole PoCo round in one step, so that sequences reach finalize often."""
        if self.market.task(task) is None:
            return
        for worker, digest in zip(WORKERS, votes):
            self.submit(worker, self.market.contribution(worker, task, digest))
        for worker, digest in zip(WORKERS, votes):
            self.submit(worker, Reveal(task, digest))
        self.finalize(task, "manager")

    @rule(task=tasks, who=st.sampled_from(("manager", "w1")))
    def finalize(self, task: bytes, who: str) -> None:  # also called by contribute_and_reveal_together
        if self.submit(who, Finalize(task, b"result")).ok:
            self.settle(task)

    @rule(task=tasks)
    def reopen(self, task: bytes) -> None:
        self.submit("manager", Reopen(task))

    @rule(deal=deals, index=st.integers(0, 3))
    def claim(self, deal: bytes, index: int) -> None:
        if self.submit("w2", Claim(deal, index)).ok:
            self.settle(task_id_for(deal, index))

    @rule(ms=st.sampled_from((T_MS // 10, T_MS, 3 * T_MS, 11 * T_MS)))
    def advance_time(self, ms: int) -> None:
        self.market.now += ms

    @rule(sender=st.sampled_from(WORKERS), receiver=st.sampled_from(WORKERS), amount=st.integers(0, 2000 * RLC))
    def transfer(self, sender: str, receiver: str, amount: int) -> None:
        self.submit(sender, Transfer(self.market.addr(receiver), amount))

    def settle(self, task: bytes) -> None:
        assert task not in self.settled, "a task was paid twice"
        self.settled.add(task)

    # Invariants ---------------------------------------------------------------------------------

    @invariant()
    def supply_is_constant(self) -> None:
        assert total_supply(self.market.ledger) == self.supply

    @invariant()
    def consumed_never_exceeds_volume(self) -> None:
        view = self.market.ledger.state.view()
        for order_hash, order in self.seen_orders.items():
            assert view.consumed(order_hash) <= order.volume

    @invariant()
    def frozen_funds_are_exactly_what_is_owed(self) -> None:
        state = self.market.ledger.state
        frozen = sum(a.frozen for _, a in state.items_with_prefix(ACCOUNT))
        owed = 0
        for _, deal in state.items_with_prefix(DEAL):
            assert deal.settled <= deal.bot_size
            owed += (deal.bot_size - deal.settled) * (deal.task_price + deal.pool_stake_per_task)
        open_tasks = {
            key[len(TASK):]: task
            for key, task in state.items_with_prefix(TASK)
            if task.status in (TaskStatus.ACTIVE, TaskStatus.REVEALING)
        }
        for key, _ in state.items_with_prefix(CONTRIBUTION):
            task = open_tasks.get(key[len(CONTRIBUTION):len(CONTRIBUTION) + 32])
            if task is not None:
                owed += state.get(DEAL + task.deal_id).worker_stake
        kitty = state.view().account(KITTY_ADDRESS).frozen
        assert frozen == owed + kitty


LedgerMachine.TestCase.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=40, deadline=None, derandomize=True
)
TestLedgerInvariants = LedgerMachine.TestCase
