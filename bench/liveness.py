"""Liveness of a 10-node devnet (4 managers + 6 followers) under overload, restarts and loss of quorum.

Three scenarios (issue 11), each on a fresh devnet in a temporary directory:

- burst: 3,000 transfers from the six followers at once, without a CPU limit and then with every node
  process inside one CPU quota (`--limits`, default 1 and 0.5 cores; devnet/cpulimit.py), a slower machine;
- restarts: kill -9 and restart of random single nodes, 20 times, at most one manager down at a time,
  under a steady load of transfers;
- quorum: two managers killed (no quorum: the chain must stop, without a fork), then one restarted;
- latency: light load without a CPU limit, beside the publish-to-all latency of bare py-libp2p hosts in as
  many processes with the node's gossip settings (bench/raw_gossip.py), run just before on the same machine.

For each it prints the longest gap between consecutive blocks while at least 3 managers were up and
transactions were pending, the time from quorum restored (the restarted manager's `event=node-ready`
line) to the next commit, the transactions submitted / committed / rejected with a reason / lost, and
commit latency p50/p95 (submit until the first manager's `event=block-committed` of the block holding it).
A burst also prints the CPU time all node processes used during it, in all and per committed transaction:
a slower machine that needs more CPU per transaction is doing extra work (more messages, copies), not
just waiting.

A transaction is *submitted* when a node admitted it (a SubmitRequest answered with its id). A refused
submit ("mempool-full" and the like) is counted by reason and retried, as a client told "retry" would.
At the end every admitted transaction is looked up at the node that took it: *committed* (in a block),
*rejected with a reason* (the node dropped it and says why), or *lost* (still pending after the wait, or
unknown). One whose submitter was killed before it committed is counted apart: the node that held it
died with it, which the submitter saw.

Targets (issue 11), printed beside the numbers: longest gap under 5 s, next commit within 5 s of quorum
restored, every admitted transaction committed or rejected with a reason, throughput with the
smallest CPU limit at least a fifth of the unlimited throughput of the same run, and a light-load commit
p50 within 8x of the raw publish-to-all p50 (a commit takes about five gossip phases). The machine's raw
Ed25519 verify rate is printed at the start: it says how fast this machine is.

    .venv/bin/python -m bench.liveness [--scenarios burst,restarts,quorum,latency] [--limits 1,0.5] [--txs 3000]
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.consensus_sim import raw_verify_rate
from bench.devnet_support.node_logs import commits, parse_time
from bench.devnet_support.session import ControlSession
from bench.raw_gossip import publish_to_all_ms
from devnet.cpulimit import CpuLimit
from devnet.network import LOG_FILE, Devnet, DevnetError, NodeSpec, cpu_ticks
from node.control import (
    AccountInfo,
    AccountRequest,
    ControlRejected,
    SubmitRequest,
    TxResultInfo,
    TxResultRequest,
    TxSubmitted,
)
from protocols.ledger.transactions import Transfer

MANAGERS, FOLLOWERS = 4, 6
QUORUM_UP = 3  # managers up for the chain to be expected to move (n = 4, f = 1)
START_TIMEOUT_S = 120.0
# Targets of issue 11.
TARGET_GAP_S = 5.0
TARGET_RESTORE_S = 5.0
TARGET_THROUGHPUT_RATIO = 0.2
TARGET_LATENCY_RATIO = 8.0
# A refused submit is tried again after this long, at most this many times (a client told "retry").
RETRY_S = 0.05
MAX_ATTEMPTS = 2_000
# Steady load of the restart and quorum scenarios: about what the restart test ran (6 tx/s).
STEADY_TX_PER_S = 6.0
RESTART_CYCLES = 20
# A killed node stays down this long, then runs this long before the next kill (seconds, uniform).
DOWN_S = (1.0, 4.0)
UP_S = (2.0, 5.0)
# Quorum scenario: how long the chain is left without quorum, and how long we wait for it to resume.
NO_QUORUM_S = 10.0
# Latency scenario: how long the light load (STEADY_TX_PER_S) runs, and the raw gossip samples beside it.
LIGHT_LOAD_S = 30.0
RAW_GOSSIP_SAMPLES = 100
RAW_GOSSIP_GAP_S = 0.2
RESUME_TIMEOUT_S = 120.0
# After the load stops, admitted transactions get this long (from the last commit) to commit.
DRAIN_STALL_S = 45.0
TRANSFER_NRLC = 1


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


@dataclass
class Tx:
    node: str
    tx_id: bytes
    submitted_at: float  # time.time() just before the accepted attempt
    outcome: str = "pending"  # committed | rejected | lost | submitter-killed
    reason: str = ""
    height: int = 0


@dataclass
class Outcome:
    """The numbers of one scenario run."""

    name: str
    cores: float | None = None  # the CPU limit of a burst run (None: unlimited)
    txs: list[Tx] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)  # submit refusals by reason (then retried)
    submit_errors: Counter[str] = field(default_factory=Counter)  # the submitter's node was down
    longest_gap_s: float = 0.0
    gap_at: float = 0.0
    restored_to_commit_s: float | None = None
    throughput: float = 0.0
    latency_ms: list[float] = field(default_factory=list)
    raw_gossip_ms: list[float] = field(default_factory=list)  # the latency scenario's yardstick
    cpu_s: float | None = None  # CPU time all node processes used during a burst (user + system)
    notes: list[str] = field(default_factory=list)


class Network:
    """A running 10-node devnet, with a record of when each manager was up (for the gap measure)."""

    def __init__(self, root: Path, limit: CpuLimit | None) -> None:
        self.devnet = Devnet(root, limit)
        self.nodes = self.devnet.create(MANAGERS, FOLLOWERS)
        self.by_name = {n.name: n for n in self.nodes}
        self.managers = [n for n in self.nodes if "manager" in n.roles]
        self.followers = [n for n in self.nodes if "manager" not in n.roles]
        self.down: set[str] = set()
        self.manager_changes: list[tuple[float, int]] = []  # (time.time(), managers up from then on)
        self.devnet.start(self.nodes, timeout_s=START_TIMEOUT_S)
        self.devnet.wait_for_height(self.nodes, 1, START_TIMEOUT_S)
        self._note_managers()
        self.addresses = {n.name: self._account(n.name).address for n in self.nodes}

    def _account(self, name: str) -> AccountInfo:
        with self.session(name) as session:
            answer = session.call(AccountRequest(b""))
        assert isinstance(answer, AccountInfo)
        return answer

    @contextmanager
    def session(self, name: str) -> Iterator[ControlSession]:
        session = ControlSession(self.devnet.node_dir(name))
        try:
            yield session
        finally:
            session.close()

    def _note_managers(self) -> None:
        self.manager_changes.append((time.time(), sum(1 for m in self.managers if m.name not in self.down)))

    def kill(self, name: str) -> None:
        os.kill(self.by_name[name].pid, signal.SIGKILL)
        self.down.add(name)
        self._note_managers()

    def restart(self, name: str) -> None:
        running = [n for n in self.nodes if n.name not in self.down]
        self.devnet.start([self.by_name[name]], timeout_s=START_TIMEOUT_S, running=running)
        self.down.discard(name)
        self._note_managers()

    def cpu_seconds(self) -> float:
        """User + system CPU time the running node processes have used so far (from /proc)."""
        ticks = sum(cpu_ticks(node.pid) for node in self.nodes if node.name not in self.down)
        return ticks / os.sysconf("SC_CLK_TCK")

    def first_commits(self) -> dict[int, float]:
        """Height -> the earliest `event=block-committed` time on any manager."""
        first: dict[int, float] = {}
        for manager in self.managers:
            for height, event in commits(self.devnet.node_dir(manager.name) / LOG_FILE).items():
                first[height] = min(first.get(height, event.time), event.time)
        return first

    def ready_times(self, name: str) -> list[float]:
        path = self.devnet.node_dir(name) / LOG_FILE
        return [parse_time(line[:23]) for line in path.read_text(errors="replace").splitlines() if "event=node-ready" in line]

    def quorum_intervals(self, end: float) -> list[tuple[float, float]]:
        marks = self.manager_changes + [(end, 0)]
        return [(t, marks[i + 1][0]) for i, (t, up) in enumerate(marks[:-1]) if up >= QUORUM_UP]

    def stop(self) -> None:
        self.devnet.stop(self.nodes)


class Load:
    """Submits transfers from the followers and keeps every admitted one for the final accounting."""

    def __init__(self, net: Network, outcome: Outcome) -> None:
        self.net = net
        self.outcome = outcome
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def submit(self, session: ControlSession, sender: NodeSpec) -> bool:
        """One transfer from `sender`, retried while refused with a reason. False if its node is down."""
        followers = self.net.followers
        receiver = self.net.addresses[followers[(followers.index(sender) + 1) % len(followers)].name]
        for _ in range(MAX_ATTEMPTS):
            started = time.time()
            try:
                answer = session.call(SubmitRequest(Transfer(receiver, TRANSFER_NRLC)))
            except ControlRejected as exc:
                with self.lock:
                    self.outcome.refused[str(exc).removeprefix("transaction refused: ").split(":")[0]] += 1
                time.sleep(RETRY_S)
                continue
            except (ConnectionError, OSError) as exc:
                with self.lock:
                    self.outcome.submit_errors[type(exc).__name__] += 1
                return False
            assert isinstance(answer, TxSubmitted)
            with self.lock:
                self.outcome.txs.append(Tx(sender.name, answer.tx_id, started))
            return True
        raise DevnetError(f"{sender.name}: a transfer was refused {MAX_ATTEMPTS} times in a row")

    def burst(self, total: int) -> None:
        """`total` transfers from all followers at once, as fast as they are admitted."""
        followers = self.net.followers

        def send(sender: NodeSpec, count: int) -> None:
            with self.net.session(sender.name) as session:
                for _ in range(count):
                    self.submit(session, sender)

        counts = [total // len(followers) + (1 if i < total % len(followers) else 0) for i in range(len(followers))]
        threads = [threading.Thread(target=send, args=(s, c)) for s, c in zip(followers, counts, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def steady(self) -> threading.Thread:
        """STEADY_TX_PER_S transfers per second, round-robin over the followers that are up, until stopped."""

        def run() -> None:
            i = 0
            next_at = time.monotonic()
            while not self.stopping.is_set():
                up = [f for f in self.net.followers if f.name not in self.net.down]
                sender = up[i % len(up)]
                i += 1
                with self.net.session(sender.name) as session:
                    self.submit(session, sender)
                next_at += 1 / STEADY_TX_PER_S
                time.sleep(max(0.0, next_at - time.monotonic()))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def settle(self, killed: dict[str, float]) -> None:
        """Wait until no admitted transaction is pending (or none committed for DRAIN_STALL_S), then classify.

        `killed`: node -> when it was last killed; a pending transaction it admitted before then died
        with it (counted as submitter-killed, not lost)."""
        last_change, last_pending = time.monotonic(), -1
        while True:
            pending = self._classify(killed)
            if pending == 0:
                break
            if pending != last_pending:
                last_change, last_pending = time.monotonic(), pending
            if time.monotonic() - last_change > DRAIN_STALL_S:
                self.outcome.notes.append(f"{pending} transactions still pending {DRAIN_STALL_S:.0f} s after the last progress")
                break
            time.sleep(0.5)
        for tx in self.outcome.txs:
            if tx.outcome == "pending":
                tx.outcome = "lost"

    def _classify(self, killed: dict[str, float]) -> int:
        pending = 0
        by_node: dict[str, list[Tx]] = {}
        for tx in self.outcome.txs:
            if tx.outcome == "pending":
                by_node.setdefault(tx.node, []).append(tx)
        for name, txs in by_node.items():
            with self.net.session(name) as session:
                for tx in txs:
                    result = session.call(TxResultRequest(tx.tx_id))
                    assert isinstance(result, TxResultInfo)
                    if result.height:
                        tx.outcome, tx.height = "committed", result.height
                    elif result.code == "pending":
                        pending += 1
                    elif result.code == "unknown transaction" and tx.submitted_at < killed.get(name, 0.0):
                        tx.outcome = "submitter-killed"
                    else:
                        tx.outcome, tx.reason = "rejected", result.code
        return pending


def measure(net: Network, outcome: Outcome, began: float, end: float, pending_until: float) -> None:
    """Gap, latency and throughput from the managers' logs once the scenario is over."""
    time.sleep(0.5)  # the last commit lines reach the logs
    first = net.first_commits()
    heights = sorted(h for h, t in first.items() if began <= t <= end)
    marks = [began] + [first[h] for h in heights if first[h] <= pending_until] + [pending_until]
    up = net.quorum_intervals(end)
    for a, b in zip(marks, marks[1:]):
        gap = sum(max(0.0, min(b, e) - max(a, s)) for s, e in up)
        if gap > outcome.longest_gap_s:
            outcome.longest_gap_s, outcome.gap_at = gap, a - began
    committed = [tx for tx in outcome.txs if tx.outcome == "committed" and tx.height in first]
    outcome.latency_ms = [(first[tx.height] - tx.submitted_at) * 1000 for tx in committed]
    if committed:
        span = max(first[tx.height] for tx in committed) - min(tx.submitted_at for tx in outcome.txs)
        outcome.throughput = len(committed) / span if span > 0 else 0.0


# --- scenarios ------------------------------------------------------------------------------------


def scenario_burst(root: Path, cores: float | None, total: int) -> Outcome:
    outcome = Outcome(f"burst of {total}, " + (f"--cpu-limit {cores:g}" if cores else "no CPU limit"), cores)
    limit = CpuLimit(cores, "liveness") if cores else None
    if limit is not None and limit.warning:
        outcome.notes.append(limit.warning)
    net = Network(root, limit)
    try:
        load = Load(net, outcome)
        began, cpu_before = time.time(), net.cpu_seconds()
        load.burst(total)
        load.settle({})
        end = time.time()
        outcome.cpu_s = net.cpu_seconds() - cpu_before
        # Transactions were pending until the last commit, or until the end if some never committed.
        last = max((t for t in net.first_commits().values()), default=end)
        stuck = any(tx.outcome == "lost" for tx in outcome.txs)
        measure(net, outcome, began, end, pending_until=end if stuck else max(last, began))
    finally:
        net.stop()
        if limit is not None:
            limit.close()
    return outcome


def scenario_restarts(root: Path, seed: int) -> Outcome:
    outcome = Outcome(f"{RESTART_CYCLES} kill -9/restart cycles under {STEADY_TX_PER_S:g} tx/s")
    rng = random.Random(seed)
    net = Network(root, None)
    killed: dict[str, float] = {}
    try:
        load = Load(net, outcome)
        began = time.time()
        worker = load.steady()
        for _ in range(RESTART_CYCLES):
            time.sleep(rng.uniform(*UP_S))
            victim = rng.choice(net.nodes).name
            net.kill(victim)
            killed[victim] = time.time()
            time.sleep(rng.uniform(*DOWN_S))
            net.restart(victim)
        time.sleep(rng.uniform(*UP_S))
        wind_down(net, load, worker, outcome, began, killed)
    finally:
        net.stop()
    return outcome


def wind_down(net: Network, load: Load, worker: threading.Thread, outcome: Outcome, began: float,
              killed: dict[str, float]) -> None:
    """Stop the steady load, let what it submitted settle, and measure the run up to now."""
    load.stopping.set()
    worker.join()
    load_end = time.time()
    load.settle(killed)
    measure(net, outcome, began, time.time(), pending_until=load_end)


def scenario_quorum(root: Path) -> Outcome:
    outcome = Outcome("two managers killed, one restarted")
    net = Network(root, None)
    killed: dict[str, float] = {}
    try:
        load = Load(net, outcome)
        began = time.time()
        worker = load.steady()
        time.sleep(5.0)
        for name in ("manager-1", "manager-2"):
            net.kill(name)
            killed[name] = time.time()
        time.sleep(NO_QUORUM_S)
        net.restart("manager-2")
        ready = max(net.ready_times("manager-2"))
        deadline = time.time() + RESUME_TIMEOUT_S
        next_commit = None
        while next_commit is None and time.time() < deadline:
            time.sleep(0.2)
            next_commit = min((t for t in net.first_commits().values() if t > ready), default=None)
        outcome.restored_to_commit_s = None if next_commit is None else next_commit - ready
        time.sleep(10.0)
        wind_down(net, load, worker, outcome, began, killed)
    finally:
        net.stop()
    return outcome


def scenario_latency(root: Path) -> Outcome:
    outcome = Outcome(f"light load ({STEADY_TX_PER_S:g} tx/s), no CPU limit")
    outcome.raw_gossip_ms = publish_to_all_ms(MANAGERS + FOLLOWERS, RAW_GOSSIP_SAMPLES, RAW_GOSSIP_GAP_S)
    net = Network(root, None)
    try:
        load = Load(net, outcome)
        began = time.time()
        worker = load.steady()
        time.sleep(LIGHT_LOAD_S)
        load.stopping.set()
        worker.join()
        load_end = time.time()
        load.settle({})
        measure(net, outcome, began, time.time(), pending_until=load_end)
    finally:
        net.stop()
    return outcome


# --- report ---------------------------------------------------------------------------------------


def report(o: Outcome) -> None:
    counts = Counter(tx.outcome for tx in o.txs)
    reasons = Counter(tx.reason for tx in o.txs if tx.outcome == "rejected")
    print(f"\n--- {o.name}")
    print(f"longest gap between blocks with >= {QUORUM_UP} managers up and transactions pending: "
          f"{o.longest_gap_s:.1f} s (at +{o.gap_at:.0f} s)   target < {TARGET_GAP_S:.0f} s: {verdict(o.longest_gap_s < TARGET_GAP_S)}")
    if o.restored_to_commit_s is not None or o.name.startswith("two managers"):
        value = "never" if o.restored_to_commit_s is None else f"{o.restored_to_commit_s:.1f} s"
        ok = o.restored_to_commit_s is not None and o.restored_to_commit_s < TARGET_RESTORE_S
        print(f"quorum restored (node-ready) -> next commit: {value}   target < {TARGET_RESTORE_S:.0f} s: {verdict(ok)}")
    print(f"transactions: submitted {len(o.txs)}, committed {counts['committed']}, rejected with a reason "
          f"{counts['rejected']} {dict(reasons) or ''}, lost {counts['lost']}, died with their killed submitter "
          f"{counts['submitter-killed']}   target lost = 0: {verdict(counts['lost'] == 0)}")
    print(f"submits refused with a reason (then retried): {dict(o.refused) or 'none'}; "
          f"submits to a node that was down: {sum(o.submit_errors.values())}")
    print(f"commit latency p50 {percentile(o.latency_ms, 50):.0f} ms  p95 {percentile(o.latency_ms, 95):.0f} ms  "
          f"(n={len(o.latency_ms)}); committed {o.throughput:.1f} tx/s")
    if o.cpu_s is not None:
        per_tx = o.cpu_s / counts["committed"] * 1000 if counts["committed"] else float("nan")
        print(f"CPU time of all node processes during the burst: {o.cpu_s:.1f} s ({per_tx:.1f} ms per committed "
              f"transaction)")
    if o.raw_gossip_ms:
        raw, commit = percentile(o.raw_gossip_ms, 50), percentile(o.latency_ms, 50)
        ratio = commit / raw
        print(f"raw py-libp2p publish-to-all over {MANAGERS + FOLLOWERS} processes p50 {raw:.1f} ms "
              f"(n={len(o.raw_gossip_ms)}); commit p50 {commit:.0f} ms = {ratio:.1f}x   "
              f"target <= {TARGET_LATENCY_RATIO:g}x: {verdict(ratio <= TARGET_LATENCY_RATIO)}")
    for note in o.notes:
        print(f"note: {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="burst,restarts,quorum,latency", help="comma-separated: burst, restarts, quorum, latency")
    parser.add_argument("--limits", default="1,0.5", help="CPU limits (cores) of the burst, beside an unlimited run")
    parser.add_argument("--txs", type=int, default=3_000, help="transfers in each burst")
    parser.add_argument("--seed", type=int, default=1, help="which nodes the restart scenario kills, and when")
    parser.add_argument("--keep", action="store_true", help="keep the devnet directories (node logs) afterwards")
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(scenarios) - {"burst", "restarts", "quorum", "latency"}
    if unknown:
        parser.exit(2, f"error: unknown scenario(s) {', '.join(sorted(unknown))}: use burst, restarts, quorum, latency\n")
    try:
        limits = [float(x) for x in args.limits.split(",") if x.strip()]
    except ValueError:
        parser.exit(2, f"error: --limits takes numbers of cores separated by commas, got {args.limits!r}\n")
    if any(not x > 0 for x in limits):
        parser.exit(2, "error: every CPU limit must be a positive number of cores\n")
    print(f"raw Ed25519 verify on this machine: {raw_verify_rate():.0f}/s; {os.cpu_count()} cores; "
          f"{MANAGERS} managers + {FOLLOWERS} followers on 127.0.0.1")
    base = Path(tempfile.mkdtemp(prefix="pocnet-liveness-"))
    outcomes: list[Outcome] = []
    runs: list[tuple[str, Callable[[Path], Outcome]]] = []
    if "burst" in scenarios:
        for cores in [None, *limits]:
            runs.append((f"burst-{cores or 'unlimited'}", functools.partial(scenario_burst, cores=cores, total=args.txs)))
    if "restarts" in scenarios:
        runs.append(("restarts", lambda root: scenario_restarts(root, args.seed)))
    if "quorum" in scenarios:
        runs.append(("quorum", scenario_quorum))
    if "latency" in scenarios:
        runs.append(("latency", scenario_latency))
    try:
        for name, run in runs:
            began = time.monotonic()
            print(f"running {name} ...", flush=True)
            try:
                outcome = run(base / name)
            except (DevnetError, OSError, AssertionError, RuntimeError) as exc:
                outcome = Outcome(name, notes=[f"aborted: {type(exc).__name__}: {exc}"])
            outcomes.append(outcome)
            report(outcome)
            print(f"({time.monotonic() - began:.0f} s)", flush=True)
    finally:
        if args.keep:
            print(f"\nlogs kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    unlimited = next((o for o in outcomes if o.name.startswith("burst") and o.cores is None), None)
    slowest = min((o for o in outcomes if o.cores is not None), key=lambda o: o.cores or 0.0, default=None)
    if unlimited is not None and slowest is not None and unlimited.throughput:
        ratio = slowest.throughput / unlimited.throughput
        print(f"\nburst throughput, --cpu-limit {slowest.cores:g} / unlimited: {slowest.throughput:.1f} / "
              f"{unlimited.throughput:.1f} tx/s = {ratio:.2f}   target >= {TARGET_THROUGHPUT_RATIO}: "
              f"{verdict(ratio >= TARGET_THROUGHPUT_RATIO)}")
    medians = {o.name: statistics.median(o.latency_ms) for o in outcomes if o.latency_ms}
    if medians:
        print("commit latency p50 per scenario: " + ", ".join(f"{k}: {v:.0f} ms" for k, v in medians.items()))


if __name__ == "__main__":
    main()
