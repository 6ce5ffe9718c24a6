"""`python -m devnet chaos`: a devnet under a seeded schedule of faults, then a check of the invariants.

Like CometBFT's e2e runner, in three parts:

- `make_schedule(seed, ...)` is a pure function: the same seed, duration, fault kinds and node names give
  the same list of `Fault`s. Faults on managers never overlap, so at most one manager (f = 1 of n = 4; the
  runner refuses fewer than 4 managers for manager faults) is faulty at any time.
- `ChaosRun` starts a devnet (managers and followers), runs a steady workload of transfers through the
  nodes' control sockets, and applies the faults on time: `kill` (SIGKILL, relaunched after the fault's
  duration: a crash), `restart` (SIGTERM, relaunched after the fault's duration: an operator's
  restart), `pause` (SIGSTOP, then SIGCONT: a node that hangs). `partition` and `loss` need iptables and are skipped with a message when it
  is missing; `twins` and `byzantine` are not implemented yet and are skipped with a message.
- After the schedule every fault is healed and the workload stops; the runner waits for the nodes to agree
  on a height, stops them, and `check_invariants` reads every node's store: the same block hash at every
  height on every node, the same state digest, the genesis supply on every node, every transaction a node
  reported committed in the chain at that height, every deal settled (its tasks COMPLETED, or FAILED and
  refunded), the longest gap between blocks while the workload ran (a quorum was up all along, since
  at most f managers are ever faulty), and that a probe transfer commits once every fault is healed. The
  exit status is 0 only if every invariant holds.

The workload is transfers only: app runs are not yet scriptable by the chaos runner, so the deal check
holds vacuously unless something else made deals.
"""

from __future__ import annotations

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
from devnet.network import JOIN_FANOUT, Devnet, DevnetError, NodeSpec, _alive
from node.control import ControlClient, ControlRejected, SubmitRequest, TxResultInfo, TxResultRequest, TxSubmitted
from node.keys import KEY_FILE
from node.storage import Store
from protocols.chain import decode_tx
from protocols.genesis import parse_genesis
from protocols.ledger.records import TaskStatus
from protocols.ledger.state import ACCOUNT, DEAL, EQUIVOCATION, TASK, LedgerState
from protocols.ledger.transactions import Transfer
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


@dataclass
class Workload:
    """Transfers through random live nodes, recorded as (tx id, node) pairs."""

    devnet: Devnet
    nodes: list[NodeSpec]
    seed: int
    submitted: list[tuple[bytes, str]] = field(default_factory=list)
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
                self.submitted.append((answer.tx_id, via.name))
        self.stopped = time.time()

    def stop(self) -> None:
        self._stop.set()


@dataclass
class Report:
    """What a run found: figures to print, and the invariants that failed (empty: all hold)."""

    figures: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations


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
        self.nodes = self.devnet.create(self.n_managers, self.n_followers)
        managers = [n.name for n in self.nodes if n.roles == "manager"]
        followers = [n.name for n in self.nodes if n.roles != "manager"]
        schedule = make_schedule(self.seed, self.duration_s, tuple(usable), managers, followers)
        report.figures.append(f"seed {self.seed}, {self.duration_s:.0f} s, {len(managers)} managers, "
                              f"{len(followers)} followers, {len(schedule)} faults")
        report.figures += ["  " + fault.describe() for fault in schedule]
        try:
            self.devnet.start(self.nodes)
            self.devnet.wait_for_height(self.nodes, 1, CONVERGE_TIMEOUT_S)
            workload = Workload(self.devnet, self.nodes, self.seed)
            thread = threading.Thread(target=workload.run, name="chaos-workload", daemon=True)
            thread.start()
            began = time.monotonic()
            try:
                self._apply(schedule, began)
                time.sleep(max(0.0, began + self.duration_s - time.monotonic()))
            finally:
                self._heal_all()
                workload.stop()
                thread.join()
            self._probe_liveness(report)
            height = self._converge(report)
            committed = self._committed(workload)
        finally:
            self._heal_all()
            self.devnet.stop(self.nodes)
            if isinstance(self.devnet, NetnsDevnet):
                self.devnet.remove_network()
        report.figures.append(f"workload: {len(workload.submitted)} transfers submitted ({workload.refused} refused "
                              f"by nodes that were down), {len(committed)} reported committed; final height {height}")
        check_invariants(self.devnet, self.nodes, committed, (workload.started, workload.stopped), self.max_gap_s, report)
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

    def _committed(self, workload: Workload) -> dict[bytes, int]:
        """Transactions the node they were submitted to reports committed, with their heights."""
        found: dict[bytes, int] = {}
        for tx_id, via in workload.submitted:
            try:
                answer = ControlClient(self.devnet.node_dir(via), CONTROL_TIMEOUT_S).call(TxResultRequest(tx_id))
            except (ControlRejected, ConnectionError, OSError):
                continue
            if isinstance(answer, TxResultInfo) and answer.height:
                found[tx_id] = answer.height
        return found


def check_invariants(devnet: Devnet, nodes: list[NodeSpec], committed: dict[bytes, int],
                     window: tuple[float, float], max_gap_s: float, report: Report) -> None:
    """Read every (stopped) node's store and check the invariants; appends to `report`."""
    genesis = parse_genesis(devnet.genesis_path.read_text())
    chains: dict[str, dict[int, bytes]] = {}
    digests: dict[str, tuple[int, bytes]] = {}
    block_txs: dict[int, set[bytes]] = {}
    block_times: list[int] = []
    settled_deals = deals = equivocations = 0
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
                for h in chain:
                    decided = store.decided_block(h)
                    assert decided is not None
                    block_txs[h] = {decode_tx(data).tx_id for data in decided[0].txs}
                    block_times.append(decided[0].time)
                equivocations = sum(1 for _ in state.items_with_prefix(EQUIVOCATION))
                for deal_id, deal in state.items_with_prefix(DEAL):
                    deals += 1
                    unsettled = [i for i in range(deal.bot_first, deal.bot_first + deal.bot_size)
                                 if (task := state.get(TASK + task_id_for(deal_id[len(DEAL):], i))) is None
                                 or task.status not in (TaskStatus.COMPLETED, TaskStatus.FAILED)]
                    if unsettled or deal.settled != deal.bot_size:
                        report.violations.append(f"deal 0x{deal_id[len(DEAL):].hex()[:16]}: tasks {unsettled} unsettled")
                    else:
                        settled_deals += 1
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
    report.figures += [
        f"blocks: {len(reference)} on the longest chain, {len(chains)} nodes agree on every common height: "
        f"{'yes' if not any('different blocks' in v for v in report.violations) else 'NO'}",
        f"state digest at height {top}: 0x{next(iter(at_top.values())).hex()[:16]}... on {len(at_top)}/{len(digests)} nodes",
        f"supply: {genesis.total_supply} nRLC on every node: "
        f"{'yes' if not any('supply' in v for v in report.violations) else 'NO'}",
        f"committed transactions in the chain: {len(committed) - len(missing)}/{len(committed)}",
        f"deals: {deals}, settled {settled_deals}",
        f"equivocations recorded on the ledger: {equivocations}",
        f"longest gap between blocks during the workload: {gap_s:.2f} s (bound {max_gap_s:.0f} s)",
    ]


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
    print("chaos: every invariant holds" if report.ok else f"chaos: {len(report.violations)} invariant(s) violated")
    return report.ok
