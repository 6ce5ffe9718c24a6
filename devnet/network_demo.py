"""The devnet demo: the whole story on a fresh multi-process network (DESIGN.md sections 4-7).

A provider deploys the word-count iApp and a protected (encrypted) dataset and publishes their orders;
four managers run the ledger and offer workerpools; four workers join the first manager's pool, one of
them dishonest; a requester asks for the app over the dataset with trust 3. The managers match the orders
into a deal, the scheduler hands out replicates, the workers run the iApp in the emulated enclave (the
dataset key released to attested enclaves only), contribute and reveal; the ledger reaches PoCo consensus,
pays everyone and seizes the liar's stake; the requester decrypts the result. The demo prints each step
with its time, the result, and every account's balance change, then stops the network.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from devnet.network import Devnet, DevnetError, NodeSpec
from node.control import (
    REQUEST_TIMEOUT_S,
    AccountInfo,
    AccountRequest,
    ControlClient,
    ControlRejected,
    DealInfo,
    DealRequest,
    DeployAppRequest,
    DeployDatasetRequest,
    Deployed,
    FetchResultRequest,
    OrderbookRequest,
    PublishOrderRequest,
    ReplicatesQuery,
    ResultArchive,
    RunRequest,
    RunStarted,
    TaskInfo,
    TaskReport,
    TaskRequest,
    TxResultInfo,
    TxResultRequest,
)
from node.enclave.bundle import build_bundle
from protocols import orders
from protocols.crypto import hex_address
from protocols.genesis import NRLC_PER_RLC
from protocols.ledger.escrow import KITTY_ADDRESS
from protocols.ledger.market import asset_address
from protocols.matching import task_id_for

T = TypeVar("T")
STEP_TIMEOUT_S = 90.0
APPS = Path(__file__).parent / "apps"
DATASET_TEXT = (
    b"It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    b"foolishness, it was the epoch of belief, it was the epoch of incredulity.\n"
)
STATES = {1: "ACTIVE", 2: "REVEALING", 3: "COMPLETED", 4: "FAILED"}


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = STEP_TIMEOUT_S) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.05)
    raise DevnetError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class Participant:
    """One node of the devnet, driven through its control socket."""

    def __init__(self, devnet: Devnet, node: NodeSpec, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.name = node.name
        self.client = ControlClient(devnet.node_dir(node.name), timeout_s)
        self.address: bytes = self.call(AccountRequest(b"")).address

    def call(self, request: object) -> Any:
        return self.client.call(request)

    def committed(self, tx_id: bytes, what: str) -> bytes:
        def probe() -> TxResultInfo | None:
            result: TxResultInfo = self.call(TxResultRequest(tx_id))
            if result.height == 0 and result.code != "pending":
                raise DevnetError(f"{self.name}: {what} not committed: {result.code}")
            return result if result.height else None

        return wait_for(f"{what} by {self.name}", probe).created

    def holdings(self, address: bytes | None = None) -> int:
        info: AccountInfo = self.call(AccountRequest(address or b""))
        return info.balance + info.frozen


def step(text: str) -> float:
    print(f"\n== {text}")
    return time.monotonic()


def done(started: float, text: str) -> None:
    print(f"   {text} ({(time.monotonic() - started) * 1000:.0f} ms)")


def demo_nodes(honest_workers: int, dishonest: bool) -> list[NodeSpec]:
    workers = [NodeSpec(f"worker-{i}", "worker") for i in range(honest_workers)]
    if dishonest:
        workers.append(NodeSpec(f"worker-{honest_workers}", "worker", args=["--dishonest"]))
    return [NodeSpec("provider-0", "provider"), *workers]


def run_demo(
    root: Path, managers: int, followers: int, trust: int = 3, honest_workers: int = 3, dishonest: bool = True
) -> None:
    devnet = Devnet(root)
    nodes = devnet.create(managers, max(followers, 1), extra=demo_nodes(honest_workers, dishonest))
    liar = f", worker-{honest_workers} dishonest" if dishonest else ""
    t = step(f"starting {len(nodes)} nodes on 127.0.0.1: {managers} manager(s), an attestation authority, "
             f"{max(followers, 1)} requester(s), a provider, {honest_workers + dishonest} worker(s){liar}")
    late = [n for n in nodes if dishonest and n.roles == "worker" and "--dishonest" not in n.args]
    early = [n for n in nodes if n not in late]
    try:
        devnet.start(early)
        devnet.wait_for_height(early, 1, STEP_TIMEOUT_S)
        done(t, "the chain has its first block" + ("; the honest workers wait in the wings" if late else ""))
        demo_story(devnet, nodes, early, late, trust)
    finally:
        killed = devnet.stop(nodes)
        print(f"\nnetwork stopped{' (killed: ' + ', '.join(killed) + ')' if killed else ''}; logs remain in {root}")


# Log lines that tell why a task went wrong, from the nodes' logs.
TROUBLE = ("WARNING", "ERROR", "event=replicate-", "event=task-abandoned")


def why_not(devnet: Devnet, requester: Participant, task_id: bytes, nodes: list[NodeSpec]) -> str:
    """What the pool manager says of the task's replicates, and the last troubling lines of the workers' and
    the manager's logs: enough to see why without opening the logs."""
    lines = []
    try:
        report: TaskReport = requester.call(ReplicatesQuery(task_id, False))
        lines += [f"replicate of {hex_address(r.worker)}: {r.status} {r.detail}" for r in report.replicates]
        if report.verdict:
            lines.append(f"scheduler: {report.verdict}")
    except (ControlRejected, ConnectionError, OSError) as exc:
        lines.append(f"(the pool manager's report could not be had: {exc})")
    for node in [nodes[0], *(n for n in nodes if n.roles == "worker")]:  # the scheduling manager and the workers
        trouble = [line for line in devnet.tail(node.name, 400).splitlines() if any(t in line for t in TROUBLE)]
        lines += [f"{node.name}: {line}" for line in trouble[-5:]]
    return "\n" + "\n".join(f"   {line}" for line in lines)


def publish_asset_orders(provider: Participant, app: bytes, dataset: bytes) -> None:
    """The provider's offers: the app at 1 RLC a task, the dataset at 2 RLC for that app only."""
    provider.call(PublishOrderRequest(orders.app_order(app, NRLC_PER_RLC, os.urandom(16))))
    provider.call(PublishOrderRequest(orders.dataset_order(dataset, 2 * NRLC_PER_RLC, os.urandom(16), app_restrict=app)))


def demo_story(devnet: Devnet, nodes: list[NodeSpec], early: list[NodeSpec], late: list[NodeSpec], trust: int) -> None:
    """`late` (the honest workers) start once the dishonest one has contributed, so the demo always shows
    PoCo catching a liar (with all workers polling at once, the scheduler may not pick it)."""
    everyone = {n.name: Participant(devnet, n) for n in early}
    provider, requester = everyone["provider-0"], everyone["follower-0"]
    manager = everyone[nodes[0].name]

    t = step("the provider deploys the word-count iApp and an encrypted dataset")
    bundle, manifest = build_bundle(APPS / "word-count")
    app_deployed: Deployed = provider.call(DeployAppRequest(manifest.name, bundle))
    app = provider.committed(app_deployed.tx_id, "app registration")
    data_deployed: Deployed = provider.call(DeployDatasetRequest("tale-of-two-cities", DATASET_TEXT))
    dataset = provider.committed(data_deployed.tx_id, "dataset registration")
    done(t, f"app {hex_address(app)} (measurement 0x{app_deployed.content_hash.hex()[:16]}...), "
            f"dataset {hex_address(dataset)}")

    t = step("the provider publishes its orders; the managers offer their workerpools")
    publish_asset_orders(provider, app, dataset)
    pool = asset_address(manager.address, "workerpool", 0)  # a manager's first transaction registers its pool
    wait_for("the first manager's workerpool order at the requester", lambda: next(
        (o for o in requester.call(OrderbookRequest("workerpool")).orders if o.workerpool == pool), None))
    wait_for("the app and dataset orders at the requester", lambda: (
        requester.call(OrderbookRequest("app")).orders and requester.call(OrderbookRequest("dataset")).orders) or None)
    done(t, f"workerpool {hex_address(pool)} of {manager.name} is on offer")

    before = {name: p.holdings() for name, p in everyone.items()}
    kitty_before = manager.holdings(KITTY_ADDRESS)
    t = step(f"the requester runs the app over the dataset with trust {trust}")
    started: RunStarted = requester.call(RunRequest(
        app=app, dataset=dataset, workerpool=pool, args="words", trust=trust, category=0, max_price=10 * NRLC_PER_RLC))
    print(f"   request published at {started.task_price / NRLC_PER_RLC} RLC per task")
    deal: DealInfo = wait_for("the deal", lambda: (d := requester.call(DealRequest(started.deal_id))).deal and d)
    assert deal.deal is not None
    task_id = task_id_for(started.deal_id, deal.deal.bot_first)
    done(t, f"matched into deal 0x{started.deal_id.hex()[:16]}..., task 0x{task_id.hex()[:16]}...")

    t = step("workers compute in enclaves; the ledger reaches PoCo consensus")
    shown = ""
    late_started = False
    while True:
        info: TaskInfo = requester.call(TaskRequest(task_id))
        task = info.task
        state = "waiting for the scheduler" if task is None else (
            f"{STATES[task.status]}: {len(task.contributors)} contribution(s), {task.reveal_counter} reveal(s)")
        if state != shown:
            print(f"   {time.monotonic() - t:6.1f} s  {state}")
            shown = state
        if task is not None and task.status >= 3:
            break
        if late and not late_started and task is not None and task.contributors:
            print(f"   {time.monotonic() - t:6.1f} s  the dishonest worker contributed; starting the honest workers")
            devnet.start(late, running=early, also_join=(nodes[0].name, "provider-0"))
            everyone.update({n.name: Participant(devnet, n) for n in late})
            before.update({n.name: everyone[n.name].holdings() for n in late})
            late_started = True
        if time.monotonic() - t > STEP_TIMEOUT_S:
            raise DevnetError(f"the task did not complete in {STEP_TIMEOUT_S:.0f} s (last: {state})"
                              + why_not(devnet, requester, task_id, nodes))
        time.sleep(0.1)
    if task.status != 3:
        raise DevnetError("the task failed" + why_not(devnet, requester, task_id, nodes))
    done(t, "task completed")

    t = step("the requester downloads and decrypts the result")
    archive: ResultArchive = requester.call(FetchResultRequest(task_id))
    with tarfile.open(fileobj=io.BytesIO(archive.archive)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.endswith((".json", ".txt")) and "computed" not in member.name:
                content = tar.extractfile(member)
                print(f"   {member.name}: {content.read().decode(errors='replace').strip() if content else ''}")
    done(t, "result opened with the requester's key")

    height = requester.call(TaskRequest(task_id)).height
    devnet.wait_for_height(nodes, height, STEP_TIMEOUT_S)  # every node has applied the final block
    print("\nBalance changes (free + frozen, RLC):")
    after = {name: p.holdings() for name, p in everyone.items()}
    for name in everyone:
        change = (after[name] - before[name]) / NRLC_PER_RLC
        print(f"   {name:<12} {change:+12.3f}")
    kitty_change = (manager.holdings(KITTY_ADDRESS) - kitty_before) / NRLC_PER_RLC
    print(f"   {'kitty':<12} {kitty_change:+12.3f}")
    total = sum(after.values()) - sum(before.values()) + (manager.holdings(KITTY_ADDRESS) - kitty_before)
    print(f"   {'total':<12} {total / NRLC_PER_RLC:+12.3f}  (RLC is neither created nor destroyed)")
