"""`python -m devnet chaos`: a devnet under a seeded schedule of faults, then a check of the invariants.

Like CometBFT's e2e runner, in three parts:

- `make_schedule(seed, ...)` is a pure function: the same seed, duration, fault kinds and node names give
  the same list of `Fault`s. Faults on managers never overlap, so at most one manager (f = 1 of n = 4; the
  runner refuses fewer than 4 managers for manager faults) is faulty at any time.
- `ChaosRun` starts a devnet (managers, followers, a provider and two workers in manager-0's pool,
  certified by the devnet's authority and funded by the genesis) and runs two workloads through the nodes'
  control sockets: transfers through random nodes, and app runs (`AppWorkload`: follower-0 runs the
  word-count iApp over the provider's encrypted dataset, as the demo does, two runs at a time). It applies
  the faults on time: `kill` (SIGKILL, relaunched after the fault's duration: a crash), `restart`
  (SIGTERM, relaunched: an operator's restart), `pause` (SIGSTOP, then SIGCONT: a node that hangs),
  `partition` and `loss` (netns only: the node's bridge port down, or 10% of its packets dropped),
  `twins` (a second process with a manager's key) and `byzantine` (the manager restarted misbehaving in
  consensus, node/byzantine.py). Faults target any node; twins and byzantine only managers.
- After the schedule every fault is healed and the workloads stop. The requester cancels its request
  orders that never matched and waits for every task of its deals to end, claiming itself one the pool has
  not claimed CLAIM_GRACE_S after its final deadline; transactions still pending get PENDING_GRACE_S to
  commit. The runner waits for the nodes to agree on a height, stops them, and `check_invariants` reads
  every node's store: the same block hash at every height on every node, the same state digest, the
  genesis supply on every node, every transaction a node reported committed in the chain at that height,
  every submitted transaction accounted for (`account_for`: committed, rejected with its reason, or
  pending in its node's mempool; none lost), every deal settled (`check_deals`: each task COMPLETED, or
  FAILED by a claim in a block at or after its final deadline, and no requester escrow left frozen), the
  longest gap between blocks while the workload ran (a quorum was up all along, since at most f managers
  are ever faulty), and that a probe transfer commits once every fault is healed. The exit status is 0
  only if every invariant holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from devnet.netns import NetnsDevnet, devnet_at
from devnet.network import DEVNET_CATEGORIES, JOIN_FANOUT, Devnet, DevnetError, NodeSpec, _alive
from devnet.network_demo import Participant
from devnet.scenario import Market, open_market, request_task
from node.control import (
    ControlClient,
    ControlRejected,
    DealList,
    DealListRequest,
    OrderbookRequest,
    SubmitRequest,
    TaskInfo,
    TaskRequest,
    TxResultInfo,
    TxResultRequest,
    TxSubmitted,
)
from node.keys import KEY_FILE
from node.storage import Store
from protocols.chain import decode_tx
from protocols.genesis import parse_genesis
from protocols.ledger.ledger import OK
from protocols.ledger.records import FINAL_DEADLINE_RATIO, TaskStatus
from protocols.ledger.state import ACCOUNT, DEAL, EQUIVOCATION, TASK, LedgerState, StateView
from protocols.ledger.transactions import CancelOrder, Claim, Transfer
from protocols.matching import task_id_for

log = logging.getLogger(__name__)

FAULT_KINDS = ("kill", "restart", "pause", "partition", "loss", "twins", "byzantine")
DEFAULT_FAULTS = ("kill", "restart", "pause")
# The schedule leaves the first part of the run fault-free (the devnet settles its meshes) and the last
# part too (the network recovers from the last fault before the invariants are checked).
WARMUP_FRACTION = 0.15
COOLDOWN_FRACTION = 0.2
# A fault lasts between these fractions of the run, and faults are separated by a gap in the same range:
# long enough for round timeouts and sync to happen, short enough for several faults per run.
FAULT_MIN_FRACTION = 0.05
FAULT_MAX_FRACTION = 0.15
# The workload: one transfer every this many seconds, of 1 nRLC, through a random node.
WORKLOAD_INTERVAL_S = 0.2
CONTROL_TIMEOUT_S = 5.0
# After healing, how long the nodes get to agree on one height (sync of the blocks missed while down).
CONVERGE_TIMEOUT_S = 90.0
POLL_S = 0.2
# Packet loss on a lossy node: one packet in ten, in and out. TCP retransmits, so connections stay up but
# slow down by retransmission timeouts, and gossip and votes arrive late: a hard but survivable link.
LOSS_PROBABILITY = 0.1
MANAGERS_FOR_FAULTS = 4  # n = 3f + 1 with f = 1: a manager may be faulty only if there are at least 4
# Faults only a validator can commit: a second process with its key, or misbehaving in consensus.
MANAGER_FAULTS = ("twins", "byzantine")
# The Byzantine manager of a `byzantine` fault (node/byzantine.py): any of equivocation, double votes and
# votes for unknown blocks, chosen per message.
BYZANTINE_MODE = "chaos"
TWIN_SUFFIX = "-twin"
# App runs: the requester (follower-0) runs the word-count iApp over the provider's encrypted dataset in
# manager-0's pool (devnet/scenario.py, as the demo and the e2e tests do), trust 1, category 0: the
# devnet's XS, T = 5 s, so a task that cannot complete fails and is claimable 10T = 50 s after its deal,
# which fits a run of a few minutes. Two workers, at most two runs unsettled at a time, a new one at most
# every APP_INTERVAL_S: a steady trickle of deals that costs the 2-core machine little beside the nodes.
APP_WORKERS = 2
APPS_IN_FLIGHT = 2
APP_INTERVAL_S = 3.0
APP_TRUST = 1
# A run counts as in flight until its task ends, or for at most its final deadline (10T) and a little: a
# request that never matched, or a task the pool will claim, no longer holds the requester back.
APP_RUN_LIFETIME_S = FINAL_DEADLINE_RATIO * DEVNET_CATEGORIES[0].work_clock_time_ref_ms / 1000 + 10.0
PROVIDER = "provider-0"
REQUESTER = "follower-0"
# After the workload: how long past a task's final deadline the runner waits for the pool's claim before
# the requester claims it itself (`pocnet task claim`); the pool's scheduler claims on its next tick.
CLAIM_GRACE_S = 15.0
# After the workload, how long transactions still pending get to commit: the longest re-announce back-off of
# a node (node/node.py REANNOUNCE_MAX_S is 60 s) and a little.
PENDING_GRACE_S = 70.0
PENDING = "pending"
UNKNOWN = "unknown transaction"  # what a node answers about a transaction it never had, or forgot
NO_ANSWER = "its node did not answer"
# How often the runner re-sends a cancel or a claim that has not taken effect (it may have been lost).
RESUBMIT_S = 5.0
# Waiting for the market to open (app and dataset registered, the pool's order in the requester's book).
MARKET_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class Fault:
    """One perturbation: `kind` on node `target` from `at_s` (seconds after the workload starts) for
    `duration_s`."""

    at_s: float
    kind: str
    target: str
    duration_s: float

    def describe(self) -> str:
        return f"{self.at_s:6.1f}s {self.kind:<9} {self.target:<12} for {self.duration_s:.1f}s"


def make_schedule(seed: int, duration_s: float, kinds: tuple[str, ...], managers: list[str], followers: list[str]) -> list[Fault]:
    """A deterministic fault schedule: faults one after another (never two at once, so never more than one
    faulty manager) between the warm-up and the cool-down. Managers are targeted only when there are at
    least MANAGERS_FOR_FAULTS of them (f >= 1)."""
    rng = random.Random(seed)
    faulty_managers = managers if len(managers) >= MANAGERS_FOR_FAULTS else []
    kinds = tuple(k for k in kinds if faulty_managers or k not in MANAGER_FAULTS)
    if not kinds or not (faulty_managers or followers):
        return []
    faults: list[Fault] = []
    at = duration_s * WARMUP_FRACTION
    end = duration_s * (1 - COOLDOWN_FRACTION)
    while True:
        length = duration_s * rng.uniform(FAULT_MIN_FRACTION, FAULT_MAX_FRACTION)
        if at + length > end:
            return faults
        kind = rng.choice(kinds)
        targets = faulty_managers if kind in MANAGER_FAULTS else faulty_managers + followers
        faults.append(Fault(round(at, 2), kind, rng.choice(targets), round(length, 2)))
        at += length + duration_s * rng.uniform(FAULT_MIN_FRACTION, FAULT_MAX_FRACTION)


def unavailable(kind: str, netns: bool) -> str | None:
    """Why a fault kind cannot be applied here (None: it can)."""
    if kind in ("partition", "loss") and not netns:
        return "needs --netns (on 127.0.0.1 every node shares one interface, so one cannot be cut off alone)"
    if kind == "loss" and shutil.which("iptables") is None:
        return "iptables is not installed (Debian: apt-get install iptables)"
    return None


@dataclass(frozen=True)
class Submitted:
    """A transaction a node accepted: its id, the node, the node's account and the nonce it signed with."""

    tx_id: bytes
    via: str
    signer: bytes
    nonce: int


@dataclass
class Workload:
    """Transfers through random live nodes, recorded as (tx id, node) pairs."""

    devnet: Devnet
    nodes: list[NodeSpec]
    seed: int
    submitted: list[Submitted] = field(default_factory=list)
    refused: int = 0
    started: float = 0.0
    stopped: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        rng = random.Random(self.seed)
        addresses = [self.devnet.address_of(n.name) for n in self.nodes]
        self.started = time.time()
        while not self._stop.wait(WORKLOAD_INTERVAL_S):
            via = rng.choice(self.nodes)
            to = rng.choice(addresses)
            try:
                answer = ControlClient(self.devnet.node_dir(via.name), CONTROL_TIMEOUT_S).call(SubmitRequest(Transfer(to, 1)))
            except (ControlRejected, ConnectionError, OSError):
                self.refused += 1  # the node is down, paused or busy: the workload goes on elsewhere
                continue
            if isinstance(answer, TxSubmitted):
                self.submitted.append(Submitted(answer.tx_id, via.name, self.devnet.address_of(via.name), answer.nonce))
        self.stopped = time.time()

    def stop(self) -> None:
        self._stop.set()


@dataclass
class AppWorkload:
    """The requester runs the app while fewer than APPS_IN_FLIGHT of its runs are unsettled; a run the
    node refuses (no pool order in its book while the pool has no ready worker, its node down...) is
    counted with its reason, and tried again later."""

    requester: Participant
    market: Market
    tasks: list[bytes] = field(default_factory=list)  # the single task of each run requested
    refused: dict[str, int] = field(default_factory=dict)  # reason -> count
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        in_flight: dict[bytes, float] = {}  # task -> when requested (monotonic s)
        while not self._stop.wait(APP_INTERVAL_S):
            try:
                for task_id, requested in list(in_flight.items()):
                    if time.monotonic() - requested > APP_RUN_LIFETIME_S or self._ended(task_id):
                        del in_flight[task_id]
                if len(in_flight) >= APPS_IN_FLIGHT:
                    continue
                task_id = request_task(self.requester, self.market, APP_TRUST)
            except (ControlRejected, ConnectionError, OSError) as exc:
                reason = _reason(exc)
                self.refused[reason] = self.refused.get(reason, 0) + 1
                continue
            self.tasks.append(task_id)
            in_flight[task_id] = time.monotonic()

    def _ended(self, task_id: bytes) -> bool:
        info: TaskInfo = self.requester.call(TaskRequest(task_id))
        return info.task is not None and info.task.status >= TaskStatus.COMPLETED

    def stop(self) -> None:
        self._stop.set()


def _reason(exc: Exception) -> str:
    """A refusal's reason without the ids and amounts that make each one different."""
    text = str(exc) if isinstance(exc, ControlRejected) else f"node unreachable ({type(exc).__name__})"
    return text.split(" 0x")[0].split(":")[0][:80]


@dataclass
class Report:
    """What a run found: figures to print, and the invariants that failed (empty: all hold)."""

    figures: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    # The run in one line of key=value pairs, for tables of many runs (`summary_line`).
    summary: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary_line(self) -> str:
        return "summary " + " ".join(f"{k}={v}" for k, v in {**self.summary, "invariants": "yes" if self.ok else "NO"}.items())


class ChaosRun:
    def __init__(self, root: Path, seed: int, duration_s: float, kinds: tuple[str, ...], managers: int, followers: int,
                 max_gap_s: float, netns: bool) -> None:
        self.devnet = devnet_at(root, netns)
        self.netns = netns
        self.seed = seed
        self.duration_s = duration_s
        self.kinds = kinds
        self.n_managers = managers
        self.n_followers = followers
        self.max_gap_s = max_gap_s
        self.nodes: list[NodeSpec] = []
        self.paused: set[str] = set()
        self.down: set[str] = set()
        self.cut: set[str] = set()  # partitioned, or losing packets (netns only)
        self.twins: list[NodeSpec] = []  # second processes with a manager's key: not checked, stopped at the end

    def run(self) -> Report:
        report = Report()
        usable = []
        for kind in self.kinds:
            reason = unavailable(kind, self.netns)
            if reason is None:
                usable.append(kind)
            else:
                report.figures.append(f"fault kind {kind} skipped: {reason}")
        extra = [NodeSpec(PROVIDER, "provider"), *(NodeSpec(f"worker-{i}", "worker") for i in range(APP_WORKERS))]
        self.nodes = self.devnet.create(self.n_managers, max(self.n_followers, 1), extra=extra)
        managers = [n.name for n in self.nodes if n.roles == "manager"]
        followers = [n.name for n in self.nodes if n.roles != "manager"]
        schedule = make_schedule(self.seed, self.duration_s, tuple(usable), managers, followers)
        report.figures.append(f"seed {self.seed}, {self.duration_s:.0f} s, {len(managers)} managers, "
                              f"{len(followers)} other nodes ({', '.join(followers)}), {len(schedule)} faults: "
                              f"{' '.join(f'{f.kind}:{f.target}' for f in schedule) or 'none'}")
        report.figures += ["  " + fault.describe() for fault in schedule]
        report.summary.update(seed=self.seed, duration_s=f"{self.duration_s:.0f}", netns="yes" if self.netns else "no",
                              faults=",".join(f"{f.kind}:{f.target}" for f in schedule) or "none")
        try:
            self.devnet.start(self.nodes)  # certifies the workers; every node is funded by the genesis
            self.devnet.wait_for_height(self.nodes, 1, CONVERGE_TIMEOUT_S)
            requester = Participant(self.devnet, self._node(REQUESTER), CONTROL_TIMEOUT_S)
            market = open_market(Participant(self.devnet, self._node(PROVIDER)),
                                 Participant(self.devnet, self.nodes[0]), [requester])
            workload = Workload(self.devnet, self.nodes, self.seed)
            apps = AppWorkload(requester, market)
            threads = [threading.Thread(target=workload.run, name="chaos-workload", daemon=True),
                       threading.Thread(target=apps.run, name="chaos-apps", daemon=True)]
            for thread in threads:
                thread.start()
            began = time.monotonic()
            try:
                self._apply(schedule, began)
                time.sleep(max(0.0, began + self.duration_s - time.monotonic()))
            finally:
                self._heal_all()
                workload.stop()
                apps.stop()
                for thread in threads:
                    thread.join()
            self._probe_liveness(report)
            self._settle_deals(requester, report)
            height = self._converge(report)
            committed, unresolved = self._outcomes(workload)
        finally:
            self._heal_all()
            self.devnet.stop(self.nodes)
            if isinstance(self.devnet, NetnsDevnet):
                self.devnet.remove_network()
        report.figures.append(f"workload: {len(workload.submitted)} transfers submitted ({workload.refused} refused "
                              f"by nodes that were down); final height {height}")
        report.summary.update(height=height, refused_by_down_nodes=workload.refused, app_runs=len(apps.tasks),
                              app_runs_refused=sum(apps.refused.values()))
        refusals = ", ".join(f"{n} x {reason}" for reason, n in sorted(apps.refused.items())) or "none"
        report.figures.append(f"apps: {len(apps.tasks)} runs requested by {REQUESTER} (refused: {refusals})")
        check_invariants(self.devnet, self.nodes, committed, (workload.started, workload.stopped), self.max_gap_s, report,
                         unresolved, len(workload.submitted))
        return report

    # --- faults ------------------------------------------------------------------------------------

    def _node(self, name: str) -> NodeSpec:
        return next(n for n in self.nodes + self.twins if n.name == name)

    def _apply(self, schedule: list[Fault], began: float) -> None:
        for fault in schedule:
            time.sleep(max(0.0, began + fault.at_s - time.monotonic()))
            log.info("event=fault-start %s", fault.describe())
            self._start_fault(fault)
            time.sleep(max(0.0, began + fault.at_s + fault.duration_s - time.monotonic()))
            self._end_fault(fault)
            log.info("event=fault-end kind=%s target=%s", fault.kind, fault.target)

    def _start_fault(self, fault: Fault) -> None:
        node = self._node(fault.target)
        if fault.kind == "pause":
            os.kill(node.pid, signal.SIGSTOP)
            self.paused.add(node.name)
        elif fault.kind == "kill":
            os.kill(node.pid, signal.SIGKILL)
            self._reap(node)
            self.down.add(node.name)
        elif fault.kind == "restart":
            self.devnet.stop([node])
            self.down.add(node.name)
        elif fault.kind == "byzantine":
            self.devnet.stop([node])
            node.args = [*node.args, "--byzantine", BYZANTINE_MODE]
            self._relaunch(node)
        elif fault.kind == "twins":
            self._start_twin(node)
        else:
            self._cut(node, fault.kind, True)

    def _end_fault(self, fault: Fault) -> None:
        node = self._node(fault.target)
        if fault.kind == "pause":
            os.kill(node.pid, signal.SIGCONT)
            self.paused.discard(node.name)
        elif fault.kind in ("kill", "restart"):
            self._relaunch(node)
            self.down.discard(node.name)
        elif fault.kind == "byzantine":
            self.devnet.stop([node])
            node.args = [a for a in node.args if a not in ("--byzantine", BYZANTINE_MODE)]
            self._relaunch(node)
        elif fault.kind == "twins":
            self._stop_twins()
        else:
            self._cut(node, fault.kind, False)

    def _start_twin(self, node: NodeSpec) -> None:
        """A second process with the manager's key, on a data directory of its own (the lock forbids
        sharing one), joined like any node: it syncs, then signs votes the original did not."""
        twin = NodeSpec(node.name + TWIN_SUFFIX, node.roles, args=list(node.args))
        directory = self.devnet.node_dir(twin.name)
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir()
        shutil.copy2(self.devnet.node_dir(node.name) / KEY_FILE, directory / KEY_FILE)
        if isinstance(self.devnet, NetnsDevnet):
            self.devnet.share_namespace(twin.name, node.name)
        self.twins.append(twin)
        self._relaunch(twin)

    def _stop_twins(self) -> None:
        self.devnet.stop(self.twins)
        self.twins.clear()
        self.devnet.save(self.nodes)

    def _cut(self, node: NodeSpec, kind: str, on: bool) -> None:
        """Partition the node from all others, or make it lose packets; or heal either."""
        assert isinstance(self.devnet, NetnsDevnet)
        if kind == "partition":
            self.devnet.partition(node, on)
        else:
            self.devnet.set_loss(node, LOSS_PROBABILITY if on else None)
        (self.cut.add if on else self.cut.discard)(node.name)

    def _reap(self, node: NodeSpec) -> None:
        deadline = time.monotonic() + CONTROL_TIMEOUT_S
        while _alive(node.pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def _relaunch(self, node: NodeSpec) -> None:
        others = [n.name for n in self.nodes if n.name != node.name and n.name not in self.down | self.paused | self.cut]
        joins = [a for name in random.Random(node.pid).sample(others, min(JOIN_FANOUT, len(others)))
                 for a in self.devnet.addresses(name)[:1]]
        node.pid = self.devnet.launch(node, joins)
        self.devnet.save(self.nodes + self.twins)  # `python -m devnet down` finds every pid even if we crash
        self.devnet.wait_for_address(node, CONVERGE_TIMEOUT_S)

    def _heal_all(self) -> None:
        self._stop_twins()
        for name in list(self.paused):
            node = self._node(name)
            if _alive(node.pid):
                os.kill(node.pid, signal.SIGCONT)
            self.paused.discard(name)
        for name in list(self.down):
            self._relaunch(self._node(name))
            self.down.discard(name)
        if isinstance(self.devnet, NetnsDevnet):
            for name in list(self.cut):
                self.devnet.partition(self._node(name), False)
                self.devnet.set_loss(self._node(name), None)
                self.cut.discard(name)

    # --- after the faults ----------------------------------------------------------------------------

    def _probe_liveness(self, report: Report) -> None:
        """Once every fault is healed, the chain must commit again: one transfer through the first node."""
        client = ControlClient(self.devnet.node_dir(self.nodes[0].name), CONTROL_TIMEOUT_S)
        deadline = time.monotonic() + CONVERGE_TIMEOUT_S
        try:
            submitted = client.call(SubmitRequest(Transfer(self.devnet.address_of(self.nodes[-1].name), 1)))
            while isinstance(submitted, TxSubmitted) and time.monotonic() < deadline:
                answer = client.call(TxResultRequest(submitted.tx_id))
                if isinstance(answer, TxResultInfo) and answer.height:
                    report.figures.append(f"after healing: a probe transfer committed at height {answer.height}")
                    return
                time.sleep(POLL_S)
        except (ControlRejected, ConnectionError, OSError) as exc:
            report.violations.append(f"after healing, {self.nodes[0].name} took no transfer: {exc}")
            return
        report.violations.append(f"after healing, the chain did not commit a transfer within {CONVERGE_TIMEOUT_S:.0f} s")

    def _settle_deals(self, requester: Participant, report: Report) -> None:
        """What a requester does at the end: cancel its request orders that never matched, then wait for
        every task of its deals to end; one still open CLAIM_GRACE_S past its final deadline (the pool's
        manager was down then, say) it claims itself, as `pocnet task claim` would."""
        me = requester.address
        deadline = time.monotonic() + CONVERGE_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                open_orders = requester.call(OrderbookRequest("request", requester=me)).orders
                if not open_orders:
                    break
                for order in open_orders:
                    with contextlib.suppress(ControlRejected):  # matched meanwhile, or already cancelled
                        requester.call(SubmitRequest(CancelOrder(order)))
            except (ConnectionError, OSError):
                pass
            time.sleep(RESUBMIT_S)
        else:
            report.violations.append(f"{REQUESTER}'s request orders were neither matched nor cancelled "
                                     f"within {CONVERGE_TIMEOUT_S:.0f} s")
        try:
            deals: DealList = requester.call(DealListRequest(b""))
        except (ControlRejected, ConnectionError, OSError) as exc:
            report.violations.append(f"{REQUESTER} did not list its deals after healing: {exc}")
            return
        tasks = {task_id_for(d.deal_id, i): (d.deal_id, i, d.deal) for d in deals.deals if d.deal.requester == me
                 for i in range(d.deal.bot_first, d.deal.bot_first + d.deal.bot_size)}
        last = max((deal.final_deadline for _, _, deal in tasks.values()), default=0) / 1000
        deadline = time.monotonic() + max(0.0, last + CLAIM_GRACE_S - time.time()) + CONVERGE_TIMEOUT_S
        claimed: dict[bytes, float] = {}
        while tasks and time.monotonic() < deadline:
            for task_id, (deal_id, index, deal) in list(tasks.items()):
                with contextlib.suppress(ControlRejected, ConnectionError, OSError):
                    info: TaskInfo = requester.call(TaskRequest(task_id))
                    if info.task is not None and info.task.status >= TaskStatus.COMPLETED:
                        del tasks[task_id]
                    elif (time.time() * 1000 > deal.final_deadline + CLAIM_GRACE_S * 1000
                          and time.monotonic() - claimed.get(task_id, -RESUBMIT_S) >= RESUBMIT_S):
                        claimed[task_id] = time.monotonic()
                        requester.call(SubmitRequest(Claim(deal_id, index)))
            time.sleep(POLL_S * 5)
        if tasks:
            report.violations.append(f"{len(tasks)} task(s) of {REQUESTER}'s deals neither completed nor failed "
                                     f"{CONVERGE_TIMEOUT_S:.0f} s after their final deadline")

    def _converge(self, report: Report) -> int:
        """Until every node reports the same height (the highest any has); returns it."""
        deadline = time.monotonic() + CONVERGE_TIMEOUT_S
        heights: dict[str, int] = {}
        while time.monotonic() < deadline:
            heights = {n.name: (s.height if (s := self.devnet.status(n.name)) else -1) for n in self.nodes}
            if len(set(heights.values())) == 1 and min(heights.values()) > 0:
                return min(heights.values())
            time.sleep(POLL_S)
        report.violations.append(f"the nodes did not agree on a height within {CONVERGE_TIMEOUT_S:.0f} s: {heights}")
        return max(heights.values(), default=0)

    def _outcomes(self, workload: Workload) -> tuple[dict[bytes, int], dict[Submitted, str]]:
        """What the node each transaction was submitted to says of it: committed (with its height), or else
        its answer ("pending", a rejection reason, or "unknown transaction" from a node that forgot it).
        Transactions still pending get PENDING_GRACE_S to commit (a node cut off by a partition re-announces
        its backlog with a back-off of up to a minute)."""
        committed: dict[bytes, int] = {}
        unresolved: dict[Submitted, str] = {}
        deadline = time.monotonic() + PENDING_GRACE_S
        todo = list(workload.submitted)
        while todo:
            for tx in todo:
                try:
                    answer = ControlClient(self.devnet.node_dir(tx.via), CONTROL_TIMEOUT_S).call(TxResultRequest(tx.tx_id))
                except (ControlRejected, ConnectionError, OSError) as exc:
                    unresolved[tx] = f"{NO_ANSWER} ({exc})"
                    continue
                if isinstance(answer, TxResultInfo) and answer.height:
                    committed[tx.tx_id] = answer.height
                    unresolved.pop(tx, None)
                elif isinstance(answer, TxResultInfo):
                    unresolved[tx] = answer.code
            todo = [tx for tx, code in unresolved.items() if code == PENDING]
            if not todo or time.monotonic() > deadline:
                break
            time.sleep(POLL_S * 5)
        return committed, unresolved


def check_invariants(devnet: Devnet, nodes: list[NodeSpec], committed: dict[bytes, int],
                     window: tuple[float, float], max_gap_s: float, report: Report,
                     unresolved: dict[Submitted, str] | None = None, submitted: int | None = None) -> None:
    """Read every (stopped) node's store and check the invariants; appends to `report`. `committed` are the
    transactions their node reported committed (id -> height), `unresolved` the others with what their
    node said (`ChaosRun._outcomes`): each is accounted for by `account_for`."""
    genesis = parse_genesis(devnet.genesis_path.read_text())
    chains: dict[str, dict[int, bytes]] = {}
    digests: dict[str, tuple[int, bytes]] = {}
    block_txs: dict[int, set[bytes]] = {}
    block_times: list[int] = []
    nonces: dict[tuple[bytes, int], bytes] = {}  # (signer, nonce) -> the transaction in the chain
    equivocations = 0
    deal_figures = ""
    for node in nodes:
        store = Store(devnet.node_dir(node.name) / "node.db")
        try:
            chain = dict(store.block_hashes())
            chains[node.name] = chain
            state = LedgerState(dict(store.load_state()))
            height = max(chain, default=0)
            digests[node.name] = (height, state.digest())
            supply = sum(a.balance + a.frozen for _, a in state.items_with_prefix(ACCOUNT))
            if supply != genesis.total_supply:
                report.violations.append(f"{node.name}: supply {supply} != genesis total {genesis.total_supply}")
            if list(chain) != list(range(1, height + 1)):
                report.violations.append(f"{node.name}: its chain has gaps")
            if not block_txs:  # the reference chain: the others are compared with it block by block
                claims: dict[bytes, list[tuple[bytes, int]]] = {}  # task -> (claimer, block time) of successful claims
                for h in chain:
                    decided = store.decided_block(h)
                    assert decided is not None
                    txs = [decode_tx(data) for data in decided[0].txs]
                    block_txs[h] = {tx.tx_id for tx in txs}
                    nonces.update({(tx.signer, tx.nonce): tx.tx_id for tx in txs})
                    block_times.append(decided[0].time)
                    for tx in txs:
                        result = store.tx_result(tx.tx_id)
                        if isinstance(tx.body, Claim) and result is not None and result.code == OK:
                            claims.setdefault(task_id_for(tx.body.deal_id, tx.body.index), []).append(
                                (tx.signer, decided[0].time))
                equivocations = sum(1 for _ in state.items_with_prefix(EQUIVOCATION))
                deal_figures = check_deals(state, claims, report)
        finally:
            store.close()
    reference = max(chains.values(), key=len)
    for name, chain in chains.items():
        forks = [h for h, block in chain.items() if reference.get(h) != block]
        if forks:
            report.violations.append(f"{name}: different blocks at heights {forks[:5]}")
    top = max(h for h, _ in digests.values())
    at_top = {name: digest for name, (h, digest) in digests.items() if h == top}
    if len(set(at_top.values())) != 1:
        report.violations.append(f"state digests differ at height {top}: {sorted(at_top)}")
    if len(at_top) != len(digests):
        report.violations.append(f"nodes behind height {top}: {sorted(set(digests) - set(at_top))}")
    missing = [tx_id for tx_id, h in committed.items() if tx_id not in block_txs.get(h, set())]
    if missing:
        report.violations.append(f"{len(missing)} transactions reported committed are not in their block")
    start_ms, stop_ms = int(window[0] * 1000), int(window[1] * 1000)
    during = [t for t in block_times if start_ms <= t <= stop_ms]
    gap_s = max((b - a for a, b in zip([start_ms, *during], [*during, stop_ms])), default=0) / 1000
    if gap_s > max_gap_s:
        report.violations.append(f"longest gap between blocks {gap_s:.1f} s > {max_gap_s:.0f} s while a quorum was up")
    report.summary.update(blocks=len(reference), longest_gap_s=f"{gap_s:.2f}", equivocations=equivocations)
    report.figures += [
        f"blocks: {len(reference)} on the longest chain, {len(chains)} nodes agree on every common height: "
        f"{'yes' if not any('different blocks' in v for v in report.violations) else 'NO'}",
        f"state digest at height {top}: 0x{next(iter(at_top.values())).hex()[:16]}... on {len(at_top)}/{len(digests)} nodes",
        f"supply: {genesis.total_supply} nRLC on every node: "
        f"{'yes' if not any('supply' in v for v in report.violations) else 'NO'}",
        f"committed transactions in the chain: {len(committed) - len(missing)}/{len(committed)}",
        account_for(committed, unresolved or {}, block_txs, nonces, report, submitted),
        deal_figures,
        f"equivocations recorded on the ledger: {equivocations}",
        f"longest gap between blocks during the workload: {gap_s:.2f} s (bound {max_gap_s:.0f} s)",
    ]


def account_for(committed: dict[bytes, int], unresolved: dict[Submitted, str], block_txs: dict[int, set[bytes]],
                nonces: dict[tuple[bytes, int], bytes], report: Report, submitted: int | None = None) -> str:
    """Every submitted transaction is committed, rejected with a reason, or still pending in its node's
    mempool; one in none of these is lost (a violation). A transaction its node did not report committed is
    still looked for in the chain, and its nonce too: the account's nonce taken by another transaction (a
    twin signing with the same key, say) is named with its rejection."""
    in_chain = set().union(*block_txs.values()) if block_txs else set()
    rejected: dict[str, int] = {}
    pending = 0
    lost: list[str] = []
    late = 0
    for tx, code in unresolved.items():
        if tx.tx_id in in_chain:
            late += 1
        elif code == PENDING:
            pending += 1
        elif code == UNKNOWN or code.startswith(NO_ANSWER):
            taken = nonces.get((tx.signer, tx.nonce))
            lost.append(f"0x{tx.tx_id.hex()[:16]} via {tx.via} nonce {tx.nonce}: {code}"
                        + (f", its nonce taken by 0x{taken.hex()[:16]}" if taken else ""))
        else:
            reason = code + (" (its nonce taken by another transaction)" if (tx.signer, tx.nonce) in nonces else "")
            rejected[reason] = rejected.get(reason, 0) + 1
    if lost:
        report.violations.append(f"{len(lost)} submitted transaction(s) lost (not committed, rejected or pending): "
                                 + "; ".join(lost[:10]))
    # A node that signs the same body with the same nonce twice (its first try dropped) makes the same id
    # twice: `submitted` counts submissions, `committed` ids.
    total = submitted if submitted is not None else len(committed) + len(unresolved)
    report.summary.update(submitted=total, committed=len(committed) + late, rejected=sum(rejected.values()),
                          pending=pending, lost=len(lost))
    reasons = "; ".join(f"{n} x {reason}" for reason, n in sorted(rejected.items()))
    twice = total - len(committed) - len(unresolved)
    return (f"transactions: {total} submitted{f' ({twice} the same as an earlier one, signed again)' if twice else ''}, "
            f"{len(committed) + late} committed"
            f"{f' ({late} found in the chain only)' if late else ''}, {sum(rejected.values())} rejected"
            f"{f' ({reasons})' if reasons else ''}, {pending} pending in their node's mempool at the end, "
            f"{len(lost)} lost")


def check_deals(state: LedgerState, claims: dict[bytes, list[tuple[bytes, int]]], report: Report) -> str:
    """Every deal's tasks COMPLETED, or FAILED by a claim in a block at or after the task's final deadline,
    and no requester's escrow left frozen for a settled task: its frozen balance is exactly the price of its
    tasks still open (none, once every task has ended). Returns the figure to print."""
    deals = tasks = completed = 0
    claimed_by: dict[str, int] = {"pool": 0, "requester": 0, "other": 0}
    escrow: dict[bytes, int] = {}  # requester -> the price of its tasks not settled
    for key, deal in state.items_with_prefix(DEAL):
        deals += 1
        deal_id = key[len(DEAL):]
        escrow[deal.requester] = escrow.get(deal.requester, 0) + deal.task_price * (deal.bot_size - deal.settled)
        for index in range(deal.bot_first, deal.bot_first + deal.bot_size):
            tasks += 1
            task_id = task_id_for(deal_id, index)
            task = state.get(TASK + task_id)
            status = TaskStatus(task.status).name if task is not None else "not initialized"
            if task is not None and task.status == TaskStatus.COMPLETED:
                completed += 1
                continue
            if task is None or task.status != TaskStatus.FAILED:
                report.violations.append(f"deal 0x{deal_id.hex()[:16]} task {index}: {status}, neither completed nor failed")
                continue
            on_time = [who for who, block_time in claims.get(task_id, []) if block_time >= task.final_deadline]
            if not on_time:
                report.violations.append(f"deal 0x{deal_id.hex()[:16]} task {index}: FAILED without a claim in a block "
                                         f"at or after its final deadline")
                continue
            who = on_time[0]
            claimed_by["pool" if who == deal.workerpool.owner else "requester" if who == deal.requester else "other"] += 1
    for requester, open_price in escrow.items():
        frozen = StateView(state).account(requester).frozen
        if frozen != open_price:
            report.violations.append(f"requester 0x{requester.hex()[:16]}: {frozen} nRLC frozen, but its open tasks "
                                     f"hold {open_price}: escrow not refunded")
    failed = sum(claimed_by.values())
    report.summary.update(deals=deals, tasks=tasks, completed=completed, failed_claimed=failed,
                          claimed_by_pool=claimed_by["pool"], claimed_by_requester=claimed_by["requester"],
                          unsettled=tasks - completed - failed)
    return (f"deals: {deals}, tasks: {tasks}: {completed} completed, {failed} failed and refunded by claim after the "
            f"final deadline ({claimed_by['pool']} claimed by the pool, {claimed_by['requester']} by the requester"
            f"{', ' + str(claimed_by['other']) + ' by others' if claimed_by['other'] else ''}), "
            f"{tasks - completed - failed} neither")


def run_chaos(root: Path, seed: int, duration_s: float, kinds: tuple[str, ...], managers: int, followers: int,
              max_gap_s: float, netns: bool) -> bool:
    """Run, print the figures and the verdict; True if every invariant held."""
    for kind in kinds:
        if kind not in FAULT_KINDS:
            raise DevnetError(f"unknown fault kind {kind!r}: choose from {', '.join(FAULT_KINDS)}")
    report = ChaosRun(root, seed, duration_s, kinds, managers, followers, max_gap_s, netns).run()
    for line in report.figures:
        print(line)
    for violation in report.violations:
        print(f"VIOLATION: {violation}")
    print(report.summary_line())
    print("chaos: every invariant holds" if report.ok else f"chaos: {len(report.violations)} invariant(s) violated")
    return report.ok
