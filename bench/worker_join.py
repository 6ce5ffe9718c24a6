"""How long a worker joined by hand takes to become useful, on a real devnet.

Starts a small devnet in a temporary directory (one manager, the attestation authority, a requester, the
provider with the word-count app and its encrypted dataset already offered), then, for each run, does
what the README's "Every role by hand" section does: starts `pocnet node --role worker ... --join ...
--manager ...` as a new process with a fresh data directory, certifies it (`pocnet worker certify`'s
control request), funds it from the requester and has the requester ask for a task. It prints, per run
and as medians, the time from the process start to its `event=node-ready` log line, and to its first
`event=contributed` (the task is requested as soon as the worker is funded, so this is the time until a
new worker has done useful work). The raw Ed25519 verify rate of the machine is printed beside.

    .venv/bin/python -m bench.worker_join [--runs N] [--keep]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.consensus_sim import raw_verify_rate
from devnet.network import Devnet, NodeSpec
from devnet.network_demo import Participant, wait_for
from devnet.scenario import open_market, request_task
from node.control import CertifyPlatformRequest, ControlClient, OrderbookRequest, SubmitRequest
from protocols.genesis import NRLC_PER_RLC
from protocols.ledger.transactions import Transfer

STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*event=(node-ready|contributed)", re.M)
RUN_TIMEOUT_S = 120.0


def first_events(log: Path) -> dict[str, float]:
    """Wall-clock times (s since the epoch) of each event's first log line."""
    found: dict[str, float] = {}
    for stamp, event in STAMP.findall(log.read_text(errors="replace") if log.exists() else ""):
        found.setdefault(event, datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp())
    return found


def one_run(devnet: Devnet, requester: Participant, market_args: tuple, index: int) -> tuple[float, float]:
    directory = devnet.root / f"joined-{index}"
    log = directory.with_suffix(".log")
    manager = "0x" + devnet.address_of("manager-0").hex()
    command = [sys.executable, "-m", "node.cli", "node", "--role", "worker", "--data-dir", str(directory),
               "--genesis", str(devnet.genesis_path), "--join", devnet.addresses("manager-0")[0], "--manager", manager]
    began = time.time()
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        client = ControlClient(directory)
        wait_for("the worker's control socket", lambda: (directory / "node.addr").exists() or None, RUN_TIMEOUT_S)
        wait_for("its certificate", lambda: _try(lambda: client.call(CertifyPlatformRequest(b""))), RUN_TIMEOUT_S)
        worker_account = Participant(devnet, NodeSpec(directory.name, "worker")).address
        requester.call(SubmitRequest(Transfer(worker_account, 10 * NRLC_PER_RLC)))
        # The pool offers a task once its new worker is ready: the requester asks as soon as it sees the offer.
        wait_for("the pool's offer", lambda: requester.call(OrderbookRequest("workerpool")).orders or None, RUN_TIMEOUT_S)
        request_task(requester, *market_args)
        wait_for("its first contribution", lambda: "contributed" in first_events(log) or None, RUN_TIMEOUT_S)
        events = first_events(log)
        return events["node-ready"] - began, events["contributed"] - began
    finally:
        process.terminate()
        process.wait(timeout=30)


def _try(call):  # type: ignore[no-untyped-def]
    try:
        return call() or True
    except Exception:  # not listening yet, or the authority not reachable yet: the caller retries
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the devnet directory")
    args = parser.parse_args()
    print(f"raw Ed25519 verify rate: {raw_verify_rate():,.0f}/s")
    root = Path(tempfile.mkdtemp(prefix="worker-join-"))
    devnet = Devnet(root)
    nodes = devnet.create(1, 1, extra=[NodeSpec("provider-0", "provider")])
    try:
        devnet.start(nodes)
        devnet.wait_for_height(nodes, 1, RUN_TIMEOUT_S)
        by_name = {n.name: Participant(devnet, n) for n in nodes}
        provider, manager, requester = by_name["provider-0"], by_name["manager-0"], by_name["follower-0"]
        market = open_market(provider, manager, [requester], wait_for_pool=False)
        ready, useful = [], []
        for index in range(args.runs):
            r, u = one_run(devnet, requester, (market, 1), index)
            ready.append(r)
            useful.append(u)
            print(f"run {index}: node-ready after {r:.1f} s, first contribution after {u:.1f} s")
        print(f"median of {args.runs}: node-ready {statistics.median(ready):.1f} s, "
              f"first contribution {statistics.median(useful):.1f} s after `pocnet node --role worker`")
    finally:
        devnet.stop(devnet.load())
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
