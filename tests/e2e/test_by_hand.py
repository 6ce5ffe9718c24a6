"""The README's "Every role by hand" section, command by command, through the CLI as a person types it.

A devnet with a provider, a worker joined with its role flag (not started by the devnet), certified by the
devnet's attestation authority and funded by commands, an app that works and one that fails on purpose,
the failure's reason and logs reaching the requester, `order explain` on a request that cannot match, and
a claim. Every command runs as its own process in the test's directory, with relative paths.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.flaky(reruns=1)]

BIN = Path(sys.executable).parent
COMMAND_TIMEOUT_S = 120
READY_TIMEOUT_S = 60
FAILING_APP = 'import sys\nprint("starting the job")\nsys.exit("boom: this app always fails")\n'


def sh(cwd: Path, *argv: str, code: int = 0) -> str:
    """Run one command as the README writes it (`pocnet ...` or `python -m devnet ...`)."""
    command = [str(BIN / "pocnet"), *argv[1:]] if argv[0] == "pocnet" else [sys.executable, "-m", *argv]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    output = result.stdout + result.stderr
    assert result.returncode == code, f"{' '.join(argv)} exited {result.returncode}, not {code}:\n{output[-3000:]}"
    return output


def until(cwd: Path, needle: str, *argv: str, timeout_s: float = READY_TIMEOUT_S) -> str:
    """Repeat a command until its output matches `needle`, a regular expression (a node may still be starting:
    errors are retried)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            output = sh(cwd, *argv)
        except AssertionError as exc:
            output = str(exc)
        if re.search(needle, output):
            return output
        assert time.monotonic() < deadline, f"{needle!r} never appeared in `{' '.join(argv)}`:\n{output}"
        time.sleep(0.5)


def created(output: str, kind: str) -> str:
    match = re.search(rf"{kind} (0x[0-9a-f]{{40}}) registered", output)
    assert match, output
    return match[1]


def printed_id(output: str, label: str) -> str:
    match = re.search(rf"^{label}\s+(0x[0-9a-f]{{64}})", output, re.M)
    assert match, output
    return match[1]


@pytest.fixture
def here(tmp_path: Path) -> Iterator[Path]:
    try:
        yield tmp_path
    finally:
        subprocess.run([sys.executable, "-m", "devnet", "down"], cwd=tmp_path, capture_output=True, timeout=60)


def test_every_role_by_hand(here: Path) -> None:
    sh(here, "devnet", "up", "--followers", "1", "--providers", "1")
    requester, provider = "--data-dir=.devnet/follower-0", "--data-dir=.devnet/provider-0"

    # A worker joins manager-0's pool with its role flag, in a directory of its own.
    manager = sh(here, "devnet", "address", "manager-0").strip()
    bootstrap = sh(here, "devnet", "address", "manager-0", "--multiaddr").strip()
    log = open(here / "w1.log", "wb")
    worker = subprocess.Popen(
        [str(BIN / "pocnet"), "node", "--role", "worker", "--data-dir", "w1", "--genesis", ".devnet/genesis.json",
         "--join", bootstrap, "--manager", manager],
        cwd=here, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        until(here, "NOT READY: no platform certificate", "pocnet", "status", "--data-dir", "w1")
        status = sh(here, "pocnet", "status", "--data-dir", "w1")
        assert "NOT READY: no RLC to stake" in status
        assert "certified by authority" in sh(here, "pocnet", "worker", "certify", "--data-dir", "w1")
        address = sh(here, "pocnet", "wallet", "address", "--data-dir", "w1").strip()
        assert "committed in block" in sh(here, "pocnet", "account", "send", "--to", address, "--amount", "10", "--wait", requester)
        until(here, "worker: ready", "pocnet", "status", "--data-dir", "w1")
        until(here, r"1 ready worker\(s\)", "pocnet", "status", "--data-dir", ".devnet/manager-0")

        # The provider deploys an app that works and one that fails, and offers both.
        sh(here, "pocnet", "app", "init", "hello")
        hello = created(sh(here, "pocnet", "app", "deploy", "hello", provider), "app")
        sh(here, "pocnet", "app", "init", "failing")
        (here / "failing" / "app.py").write_text(FAILING_APP)
        failing = created(sh(here, "pocnet", "app", "deploy", "failing", provider), "app")
        for app in (hello, failing):
            sh(here, "pocnet", "app", "publish", app, "--price", "1", provider)
        until(here, "pool 0x", "pocnet", "orderbook", "workerpool", requester)

        # The requester runs the working app and gets its result.
        output = sh(here, "pocnet", "app", "run", hello, "--args", "world", "--watch", requester)
        assert "Hello, world" in output

        # The failing app: the requester is told why, sees the app's output, and when it can claim.
        output = sh(here, "pocnet", "app", "run", failing, "--watch", requester, code=1)
        assert "exit-code" in output and "claimable from" in output
        task, deal = printed_id(output, "task"), printed_id(output, "deal")
        logs = sh(here, "pocnet", "task", "debug", "--logs", task, requester)
        assert "starting the job" in logs and "boom: this app always fails" in logs

        # A protected dataset, only for hello: hello reads it; the failing app's request can never match.
        (here / "data.txt").write_text("some protected words\n")
        dataset = created(sh(here, "pocnet", "dataset", "deploy", "data.txt", provider), "dataset")
        sh(here, "pocnet", "dataset", "publish", dataset, "--price", "2", "--app-restrict", hello, provider)
        until(here, dataset, "pocnet", "orderbook", "dataset", requester)
        output = sh(here, "pocnet", "app", "run", hello, "--dataset", dataset, "--watch", requester)
        assert "the dataset has 21 bytes" in output
        refused = sh(here, "pocnet", "app", "run", failing, "--dataset", dataset, requester, code=2)
        assert "dataset-app-restricted" in refused  # app run says at once that nothing in the book can match
        published = sh(here, "pocnet", "order", "publish", "request", "--app", failing, "--dataset", dataset,
                       "--price", "1", "--app-max-price", "1", "--dataset-max-price", "2", requester)
        request = re.search(r"request order (0x[0-9a-f]{64}) published", published)[1]  # type: ignore[index]
        explained = sh(here, "pocnet", "order", "explain", request, requester)
        assert "dataset-app-restricted" in explained
        assert "committed in block" in sh(here, "pocnet", "order", "cancel", request, "--wait", requester)

        # The failed task's escrow comes back by claim once its final deadline has passed (the pool claims it
        # then too: whichever is first, the requester is refunded).
        until(here, "claimable     now|FAILED", "pocnet", "task", "show", task, requester, timeout_s=90)
        assert "refunded" in sh(here, "pocnet", "task", "claim", deal, "0", "--wait", requester)
        assert "FAILED" in sh(here, "pocnet", "task", "show", task, requester)
        assert re.search(r"^frozen\s+0 RLC", sh(here, "pocnet", "wallet", "show", requester), re.M)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
