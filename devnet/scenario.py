"""Driving an open market on a devnet through the nodes' control sockets: the provider's app and dataset
published, requests made, tasks followed to settlement, supply counted. Shared by the end-to-end tests
and bench/e2e.py (the demo tells the same story step by step, in `network_demo`)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass

from devnet.network_demo import APPS, DATASET_TEXT, STEP_TIMEOUT_S, Participant, publish_asset_orders, wait_for
from node.control import (
    DealInfo,
    DealRequest,
    DeployAppRequest,
    DeployDatasetRequest,
    Deployed,
    OrderbookRequest,
    ResultArchive,
    RunRequest,
    RunStarted,
    TaskInfo,
    TaskRequest,
)
from node.enclave.bundle import build_bundle
from protocols.genesis import NRLC_PER_RLC
from protocols.ledger.escrow import KITTY_ADDRESS
from protocols.ledger.market import asset_address
from protocols.ledger.records import Task, TaskStatus
from protocols.matching import task_id_for

# A requester's ceiling on the task price: app 1 + dataset 2 + workerpool 1 RLC leaves room.
MAX_PRICE = 10 * NRLC_PER_RLC
# Order volumes large enough for every run of a bench.
POLL_S = 0.02


@dataclass(frozen=True)
class Market:
    """What a requester runs: the word-count app, its encrypted dataset, and the first manager's pool."""

    app: bytes
    dataset: bytes
    pool: bytes


def open_market(
    provider: Participant, manager: Participant, requesters: list[Participant], wait_for_pool: bool = True
) -> Market:
    """The demo's first steps: the provider deploys the app and an encrypted dataset and publishes their
    orders; returns once every requester's book has them and (unless `wait_for_pool` is false: a pool
    offers nothing before it has a ready worker) the manager's workerpool order."""
    bundle, manifest = build_bundle(APPS / "word-count")
    app = provider.committed(provider.call(DeployAppRequest(manifest.name, bundle)).tx_id, "app registration")
    deployed: Deployed = provider.call(DeployDatasetRequest("tale-of-two-cities", DATASET_TEXT))
    dataset = provider.committed(deployed.tx_id, "dataset registration")
    publish_asset_orders(provider, app, dataset)
    pool = asset_address(manager.address, "workerpool", 0)  # a manager's first transaction registers its pool
    for requester in requesters:
        if wait_for_pool:
            wait_for(f"the workerpool order at {requester.name}", lambda r=requester: next(  # type: ignore[misc]
                (o for o in r.call(OrderbookRequest("workerpool")).orders if o.workerpool == pool), None))
        wait_for(f"the app and dataset orders at {requester.name}", lambda r=requester: (  # type: ignore[misc]
            r.call(OrderbookRequest("app")).orders and r.call(OrderbookRequest("dataset")).orders) or None)
    return Market(app, dataset, pool)


def request_task(requester: Participant, market: Market, trust: int) -> bytes:
    """Publish a RunRequest (its own request order, volume 1); the id of its single task."""
    started: RunStarted = requester.call(RunRequest(
        app=market.app, dataset=market.dataset, workerpool=market.pool, args="words", trust=trust, category=0,
        max_price=MAX_PRICE))
    return task_id_for(started.deal_id, 0)  # a fresh request's deal starts at its index 0


def wait_deal(requester: Participant, deal_id: bytes, timeout_s: float = STEP_TIMEOUT_S) -> DealInfo:
    return wait_for("the deal", lambda: (d := requester.call(DealRequest(deal_id))).deal and d, timeout_s)


def wait_settled(
    observer: Participant, task_id: bytes, timeout_s: float = STEP_TIMEOUT_S, check: Callable[[], None] | None = None
) -> Task:
    """The task once COMPLETED or FAILED in `observer`'s ledger; `check` runs at every poll (it raises to
    end the wait early, e.g. when a node it watches has exited)."""
    def probe() -> Task | None:
        if check is not None:
            check()
        info: TaskInfo = observer.call(TaskRequest(task_id))
        return info.task if info.task is not None and info.task.status >= TaskStatus.COMPLETED else None

    return wait_for(f"task 0x{task_id.hex()[:16]} to settle", probe, timeout_s)


def supply(observer: Participant, addresses: list[bytes]) -> int:
    """Free plus frozen nRLC of `addresses` and the kitty, as `observer`'s ledger has them."""
    return sum(observer.holdings(a) for a in addresses) + observer.holdings(KITTY_ADDRESS)


def result_text(archive: ResultArchive) -> str:
    """The result files of a decrypted archive (not computed.json), concatenated."""
    parts = []
    with tarfile.open(fileobj=io.BytesIO(archive.archive)) as tar:
        for member in tar.getmembers():
            if member.isfile() and "computed" not in member.name:
                content = tar.extractfile(member)
                parts.append(content.read().decode(errors="replace") if content else "")
    return "".join(parts)


# --- the bench ------------------------------------------------------------------------------------------
