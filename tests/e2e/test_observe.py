"""Seeing and scripting a devnet: `--json` on every command, the listings and watch modes, `/metrics`, the
explorer in a real headless Chromium, and hostile HTTP clients. One devnet serves the whole module (a
provider, a requester, one worker): it runs an app once, then every check reads what that run left.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
COMMAND_TIMEOUT_S = 120
HTTP_TIMEOUT_S = 10
CHROMIUM = shutil.which("chromium")
HEX40 = re.compile(r"^0x[0-9a-f]{40}$")
HEX64 = re.compile(r"^0x[0-9a-f]{64}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def pocnet(cwd: Path, *argv: str, code: int = 0) -> Any:
    """Run `pocnet ... --json`; return its one JSON document (stdout), checking the exit status."""
    result = subprocess.run([str(BIN / "pocnet"), *argv, "--json"], cwd=cwd, capture_output=True, text=True,
                            timeout=COMMAND_TIMEOUT_S)
    assert result.returncode == code, f"pocnet {' '.join(argv)} exited {result.returncode}:\n{result.stderr[-3000:]}"
    if code == 0:
        return json.loads(result.stdout)
    return json.loads(result.stderr)


def devnet(cwd: Path, *argv: str) -> str:
    result = subprocess.run([sys.executable, "-m", "devnet", *argv], cwd=cwd, capture_output=True, text=True,
                            timeout=COMMAND_TIMEOUT_S)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    assert match, f"{name} not in the metrics"
    return float(match[1])


class Run:
    """What the module's one app run left: its directory, node options and ids."""

    def __init__(self, here: Path) -> None:
        self.here = here
        self.requester = "--data-dir=.devnet/follower-0"
        self.provider = "--data-dir=.devnet/provider-0"
        self.worker = "--data-dir=.devnet/worker-0"
        self.manager = "--data-dir=.devnet/manager-0"
        self.metrics_before: dict[str, str] = {}
        self.app = self.deal = self.task = self.order = self.tx = ""

    def http(self, node: str) -> str:
        return pocnet(self.here, "status", node)["http"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    here = tmp_path_factory.mktemp("observe")
    try:
        devnet(here, "up", "--followers", "1", "--providers", "1", "--workers", "1")
        state = Run(here)
        state.metrics_before = {name: get(state.http(node) + "/metrics")[1]
                                for name, node in (("requester", state.requester), ("worker", state.worker))}
        assert pocnet(here, "app", "init", "hello")["files"] == ["iapp.toml", "app.py"]
        deployed = pocnet(here, "app", "deploy", "hello", state.provider)
        assert HEX40.match(deployed["address"]) and HEX64.match(deployed["measurement"]) and deployed["height"] > 0
        state.app, state.tx = deployed["address"], deployed["tx_id"]
        published = pocnet(here, "app", "publish", state.app, "--price", "1", state.provider)
        assert HEX64.match(published["id"]) and published["order"]["app_price_rlc"] == "1 RLC"
        state.order = published["id"]
        ran = pocnet(here, "app", "run", state.app, "--args", "json", "--watch", state.requester)
        assert ran["tasks"][0]["status"] == "COMPLETED" and ran["tasks"][0]["outcome"] == "completed"
        assert {f["path"] for f in ran["result"]["files"]} == {"computed.json", "result.txt"}
        assert ran["task_price"] == 2_000_000_000 and ran["task_price_rlc"] == "2 RLC"
        state.deal, state.task = ran["deal_id"], ran["task_id"]
        yield state
    finally:
        subprocess.run([sys.executable, "-m", "devnet", "down"], cwd=here, capture_output=True, timeout=60)


def test_every_command_prints_one_json_document(run: Run) -> None:
    here, requester, provider = run.here, run.requester, run.provider
    status = pocnet(here, "status", requester)
    assert status["type"] == "NodeStatus" and status["height"] > 0 and ISO.match(status["tip_time"])
    assert status["http"].startswith("http://127.0.0.1:")
    wallet = pocnet(here, "wallet", "show", requester)
    assert isinstance(wallet["balance"], int) and wallet["balance_rlc"].endswith(" RLC") and wallet["nonce"] >= 0
    worker = pocnet(here, "wallet", "address", run.worker)["address"]
    assert HEX40.match(worker)
    sent = pocnet(here, "account", "send", "--to", worker, "--amount", "1.5", "--wait", requester)
    assert sent["code"] == "ok" and sent["height"] > 0 and sent["body"]["amount"] == 1_500_000_000
    assert sent["body"]["amount_rlc"] == "1.5 RLC" and HEX64.match(sent["tx_id"])

    # The deal and its task, as `app run --watch` left them.
    deal = pocnet(here, "deal", "show", run.deal, requester)
    assert deal["deal"]["requester"] == status["address"] and deal["tasks"][0]["status"] == "COMPLETED"
    assert ISO.match(deal["deal"]["start_time"]) and deal["deal"]["app"]["price_rlc"] == "1 RLC"
    watched = pocnet(here, "deal", "show", run.deal, "--watch", requester)
    assert watched["tasks"][0]["outcome"] == "completed"
    task = pocnet(here, "task", "show", run.task, "--watch", requester)
    assert task["task"]["status"] == "COMPLETED" and task["claimable_from"] is None
    assert task["contributions"][0]["status"] == "PROVED" and task["report"]["replicates"][0]["status"] == "ok"
    assert task["contributions"][0]["worker"] == task["task"]["contributors"][0]
    debug = pocnet(here, "task", "debug", "--logs", run.task, requester)
    assert "Hello, json" in debug["logs"][0]["log"]["stdout"]
    assert pocnet(here, "task", "claim", run.deal, "0", requester)["status"] == "COMPLETED"

    # Listings, each from the side that sees the task.
    assert [d["deal_id"] for d in pocnet(here, "deal", "list", requester)["deals"]] == [run.deal]
    assert pocnet(here, "task", "list", requester)["tasks"][0]["roles"] == ["requester"]
    assert pocnet(here, "task", "list", "--role", "worker", run.worker)["tasks"][0]["task_id"] == run.task
    assert pocnet(here, "task", "list", "--role", "manager", run.manager)["tasks"][0]["task_id"] == run.task
    assert [a["address"] for a in pocnet(here, "app", "list", provider)["apps"]] == [run.app]
    assert pocnet(here, "app", "list", requester)["apps"] == []
    assert len(pocnet(here, "workerpool", "list", "--all", requester)["workerpools"]) == 4

    # The order book, its filters, one order, and the other order commands.
    apps = pocnet(here, "orderbook", "--app", run.app, requester)["orders"]
    assert [o["id"] for o in apps] == [run.order] and apps[0]["remaining"] == 1_000_000 - 1
    assert pocnet(here, "order", "show", run.order[:12], requester)["id"] == run.order
    assert all(o["trust"] >= 1 for o in pocnet(here, "orderbook", "workerpool", "--min-trust", "1", requester)["orders"])
    assert pocnet(here, "orderbook", "--category", "2", requester)["orders"] == []
    (here / "data.txt").write_text("some protected words\n")
    dataset = pocnet(here, "dataset", "deploy", "data.txt", provider)
    assert HEX40.match(dataset["address"]) and HEX64.match(dataset["blob_hash"])
    encrypted = pocnet(here, "dataset", "encrypt", "data.txt")
    assert encrypted["key_file"] == "data.txt.key" and HEX64.match(encrypted["blob_hash"])
    offer = pocnet(here, "dataset", "publish", dataset["address"], "--price", "2", "--app-restrict", worker, provider)
    request = pocnet(here, "order", "publish", "request", "--app", run.app, "--dataset", dataset["address"],
                     "--app-max-price", "1", "--dataset-max-price", "2", "--price", "1", requester)
    assert request["order"]["requester"] == status["address"]
    time.sleep(1)  # the request reaches the node's own book at once; explain reads the book
    explained = pocnet(here, "order", "explain", request["id"], requester)
    assert explained["type"] == "Explanation" and explained["request"]["id"] == request["id"]
    cancelled = pocnet(here, "order", "cancel", request["id"], "--wait", requester)
    assert cancelled["code"] == "ok" and cancelled["body"]["type"] == "CancelOrder"
    assert HEX64.match(offer["id"])
    assert pocnet(here, "app", "register", "again", "--measurement", "0x" + "11" * 32, "--wait", provider)["code"] == "ok"
    assert pocnet(here, "dataset", "register", "again", "--blob-hash", "0x" + "22" * 32, provider)["code"] == "pending"
    certified = pocnet(here, "worker", "certify", run.worker)
    assert HEX64.match(certified["platform_public_key"]) and certified["policy"]
    genesis = pocnet(here, "genesis", "check", ".devnet/genesis.json")
    assert len(genesis["validators"]) == 4 and genesis["total_supply_rlc"].endswith(" RLC")

    # Failures: a JSON error on stderr, the exit status of today.
    error = pocnet(here, "task", "show", "0x1234", requester, code=2)
    assert "64 hex digits" in error["error"] and error["exit_code"] == 2
    assert "no order" in pocnet(here, "order", "show", "0xdeadbeef", requester, code=2)["error"]


def test_metrics_move_with_the_chain_and_the_task(run: Run) -> None:
    after = get(run.http(run.requester) + "/metrics")[1]
    before = run.metrics_before["requester"]
    assert metric(after, "pocnet_chain_height") > metric(before, "pocnet_chain_height")
    assert metric(after, 'pocnet_tasks{status="COMPLETED"}') == metric(before, 'pocnet_tasks{status="COMPLETED"}') + 1
    assert metric(after, "pocnet_blocks_committed_total") > 0 and metric(after, "pocnet_peers") > 0
    assert metric(after, "pocnet_commit_latency_seconds_count") > 0
    assert metric(after, 'pocnet_gossip_messages_received_total{topic="blocks"}') > 0
    assert metric(after, "process_cpu_seconds_total") > 0
    worker = get(run.http(run.worker) + "/metrics")[1]
    assert metric(worker, 'pocnet_replicates_total{outcome="ok"}') == 1
    assert metric(worker, 'pocnet_enclave_run_duration_seconds_count{outcome="ok"}') == 1


def test_the_api_serves_the_clis_documents(run: Run) -> None:
    base = run.http(run.requester)
    status, body = get(f"{base}/api/task/{run.task}")
    cli = pocnet(run.here, "task", "show", run.task, run.requester)
    api = json.loads(body)
    assert status == 200 and api["task"] == cli["task"] and api["contributions"] == cli["contributions"]
    assert json.loads(get(f"{base}/api/deal/{run.deal}")[1])["tasks"] == pocnet(run.here, "deal", "show", run.deal, run.requester)["tasks"]
    assert json.loads(get(f"{base}/api/order/{run.order}")[1])["id"] == run.order
    blocks = json.loads(get(f"{base}/api/blocks?count=5")[1])["blocks"]
    assert len(blocks) == 5 and blocks[0]["height"] > blocks[-1]["height"]
    validators = json.loads(get(f"{base}/api/validators")[1])
    assert len(validators["validators"]) == 4 and validators["evidence"] == []


def test_hostile_http_requests_get_a_4xx_and_the_chain_goes_on(run: Run) -> None:
    base = run.http(run.requester)
    host, port = base.removeprefix("http://").split(":")
    assert get(f"{base}/api/task/0x12")[0] == 400
    assert get(f"{base}/api/task/{'0x' + 'zz' * 32}")[0] == 400
    assert get(f"{base}/api/block/99999999")[0] == 404
    assert get(f"{base}/api/blocks?count=-1")[0] == 400
    assert get(f"{base}/{'a' * 5000}")[0] == 414
    assert get(f"{base}/api/orders?kind=../../etc")[0] == 400
    request = urllib.request.Request(f"{base}/api/status", method="POST", data=b"{}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S)
    assert refused.value.code == 405
    with socket.create_connection((host, int(port)), timeout=HTTP_TIMEOUT_S) as raw:  # a 64 KiB header
        raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 4")
    height = pocnet(run.here, "status", run.requester)["height"]
    worker = pocnet(run.here, "wallet", "address", run.worker)["address"]
    crowd = [socket.create_connection((host, int(port)), timeout=HTTP_TIMEOUT_S) for _ in range(200)]
    try:
        for sock in crowd:  # half a request each: the server waits for the rest, idly
            sock.sendall(b"GET /api/status HTTP/1.1\r\n")
        # The node still takes a transaction and the chain commits it (an idle chain makes no block of its
        # own, so waiting for the height alone measured other traffic, not this node).
        sent = pocnet(run.here, "account", "send", "--to", worker, "--amount", "0.1", "--wait", run.requester)
        assert sent["code"] == "ok" and sent["height"] > height
        assert get(f"{base}/api/status")[0] == 200
    finally:
        for sock in crowd:
            sock.close()


def chromium(url: str, shots: Path, name: str) -> str:
    """The page's DOM after load, by a real headless Chromium; its screenshot is saved next to it."""
    assert CHROMIUM, "chromium is not installed (.ci/run installs Debian's chromium package)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={shots / 'profile'}",
             "--window-size=1280,1000"]
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shots / (name + '.png')}", url], capture_output=True, timeout=60)
    result = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=60)
    return result.stdout


@pytest.fixture
def shots(run: Run, request: pytest.FixtureRequest) -> Iterator[Path]:
    """Where the browser's screenshots go. If the test fails they are copied to test-screenshots/<test>/
    in the current directory (without the browser profile), and the failure says where."""
    directory = run.here / "screenshots"
    directory.mkdir(exist_ok=True)
    yield directory
    if getattr(request.node, "failed_with_screenshots", False):
        kept = Path("test-screenshots") / request.node.name
        shutil.copytree(directory, kept, dirs_exist_ok=True, ignore=shutil.ignore_patterns("profile"))


def test_the_explorer_in_a_browser(run: Run, shots: Path, request: pytest.FixtureRequest) -> None:
    try:
        browse(run, shots)
    except AssertionError as failure:
        request.node.failed_with_screenshots = True
        raise AssertionError(f"{failure}\n(screenshots: test-screenshots/{request.node.name}/)") from None


def browse(run: Run, shots: Path) -> None:
    base = run.http(run.requester)
    chain = chromium(base + "/", shots, "chain")
    heights = [int(h) for h in re.findall(r'<tr><td><a href="/block/(\d+)">', chain)]
    assert len(heights) >= 5 and heights == sorted(heights, reverse=True)
    task = chromium(f"{base}/task/{run.task}", shots, "task")
    assert '<span class="status-COMPLETED">COMPLETED</span>' in task
    contributions = task[task.index(">contributions<"):]
    assert '<span class="status-PROVED">PROVED</span>' in contributions
    provider = pocnet(run.here, "wallet", "address", run.provider)["address"]
    found = chromium(f"{base}/search?q={provider}", shots, "search")
    assert "<title>pocnet · Account</title>" in found and provider in found and "balance_rlc" in found
    app = chromium(f"{base}/search?q={run.app}", shots, "app")
    assert "<title>pocnet · App</title>" in app and run.order in app
    for page in ("deal/" + run.deal, "orders", "validators", "block/1", "status", "tx/" + run.tx, "order/" + run.order):
        dom = chromium(f"{base}/{page}", shots, page.split("/")[0])
        assert "<main>" in dom and 'class="error"' not in dom, page
