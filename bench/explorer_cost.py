"""What serving the explorer costs a node: CPU of an idle follower without `--http`, with it and nobody
looking, and with it while a browser keeps the chain page open (one GET every 3 s, as its refresh does)
plus a Prometheus scrape every 15 s; then the CPU one request costs, from a burst of requests per page.

A devnet of 4 managers runs (they serve their own explorers; that is not measured). One follower node is
started by hand three times in a row, joined to manager-0, and after a settling delay its CPU time
(utime + stime from /proc) is read over a window. The chain makes an empty block only while deadlines
wait, so "idle" is the node's own gossip, peer records and timers.

    .venv/bin/python -m bench.explorer_cost [--window 60]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from devnet.network import Devnet, NodeSpec
from node.control import ControlClient, NodeStatus, StatusRequest

SETTLE_S = 15.0  # start-up, catch-up and the first peer records are not idle
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_EVERY_S = 3.0
SCRAPE_EVERY_S = 15.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def follower(devnet: Devnet, directory: Path, http: bool) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "node.cli", "node", "--role", "requester", "--data-dir", str(directory),
               "--genesis", str(devnet.genesis_path), "--join", devnet.addresses("manager-0")[0]]
    if http:
        command += ["--http", "127.0.0.1:0"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_status(directory: Path) -> NodeStatus:
    deadline = time.monotonic() + 60
    while True:
        try:
            answer = ControlClient(directory, timeout_s=2).call(StatusRequest())
            if isinstance(answer, NodeStatus):
                return answer
        except (ConnectionError, OSError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the follower in {directory} did not start")
        time.sleep(0.2)


def measure(devnet: Devnet, root: Path, name: str, http: bool, browse: bool, window_s: float) -> float:
    directory = root / name
    process = follower(devnet, directory, http)
    try:
        url = wait_status(directory).http
        time.sleep(SETTLE_S)
        start, began = cpu_seconds(process.pid), time.monotonic()
        next_page = next_scrape = began
        while time.monotonic() - began < window_s:
            now = time.monotonic()
            if browse and now >= next_page:
                urllib.request.urlopen(url + "/", timeout=10).read()
                next_page = now + PAGE_EVERY_S
            if browse and now >= next_scrape:
                urllib.request.urlopen(url + "/metrics", timeout=10).read()
                next_scrape = now + SCRAPE_EVERY_S
            time.sleep(0.1)
        return (cpu_seconds(process.pid) - start) / (time.monotonic() - began)
    finally:
        process.terminate()
        process.wait(timeout=30)


BURST = 200
BURST_PAGES = ("/", "/api/blocks", "/metrics", "/validators")


def per_request(devnet: Devnet, root: Path) -> dict[str, float]:
    """CPU milliseconds the follower spends per request, by page (BURST requests in a row each)."""
    directory = root / "follower-burst"
    process = follower(devnet, directory, True)
    try:
        url = wait_status(directory).http
        time.sleep(SETTLE_S)
        costs = {}
        for page in BURST_PAGES:
            start = cpu_seconds(process.pid)
            for _ in range(BURST):
                urllib.request.urlopen(url + page, timeout=10).read()
            costs[page] = 1000 * (cpu_seconds(process.pid) - start) / BURST
        return costs
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=60.0, help="seconds of CPU measured per case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="explorer-cost-") as tmp:
        root = Path(tmp)
        devnet = Devnet(root / "devnet")
        nodes: list[NodeSpec] = devnet.create(4, 0)
        devnet.start(nodes)
        try:
            devnet.wait_for_height(nodes, 1, 60)
            cases = [("without --http", False, False), ("with --http, nobody looking", True, False),
                     ("with --http, chain page every 3 s + scrape every 15 s", True, True)]
            for index, (label, http, browse) in enumerate(cases):
                share = measure(devnet, root, f"follower-{index}", http, browse, args.window)
                print(f"idle follower {label:<55} {100 * share:6.2f} % of a core")
            for page, cost in per_request(devnet, root).items():
                print(f"one request of {page:<12} {cost:6.2f} ms of CPU (mean of {BURST}, idle cost included)")
        finally:
            devnet.stop(nodes)


if __name__ == "__main__":
    main()
