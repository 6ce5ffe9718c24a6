"""Driving `pocnet node` as an operator does, for tests of operator mistakes: a one-validator chain in a
temporary directory, the node as a subprocess of the `pocnet` command, its control socket for checks.

A chain of one validator commits on its own (it is its own quorum), so every test can make history (a
committed transfer), break something, and check that a restart after the repair still has that history.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from node.control import (
    ControlClient,
    NodeStatus,
    StatusRequest,
    SubmitRequest,
    TxResultInfo,
    TxResultRequest,
    TxSubmitted,
)
from node.keys import KEY_FILE, write_key
from protocols.chain_params import ChainParams
from protocols.crypto import Keypair
from protocols.genesis import NRLC_PER_RLC, Allocation, Category, Genesis, Validator, genesis_to_json
from protocols.ledger.transactions import Transfer

# A node starts (imports, key, store, host) in one or two seconds; this bounds a loaded CI machine.
START_TIMEOUT_S = 60.0
# One validator commits a transaction within its first round; the bound covers a loaded machine.
COMMIT_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
POLL_S = 0.05
POCNET = Path(sys.executable).parent / "pocnet"


def pocnet_command() -> list[str]:
    """The `pocnet` console script of this environment (what the operator types)."""
    return [str(POCNET)] if POCNET.exists() else [sys.executable, "-m", "node.cli"]


@dataclass
class SoloChain:
    """A genesis naming one validator, and that validator's data directory (key already in it)."""

    root: Path
    data_dir: Path
    genesis_path: Path
    keypair: Keypair

    @classmethod
    def create(cls, root: Path, chain_id: str = "operator-test") -> SoloChain:
        data_dir = root / "node"
        data_dir.mkdir(parents=True)
        keypair = Keypair.generate()
        write_key(data_dir / KEY_FILE, keypair)
        genesis_path = root / f"{chain_id}.json"
        write_solo_genesis(genesis_path, keypair, chain_id)
        return cls(root, data_dir, genesis_path, keypair)

    def node_args(self, *extra: str, data_dir: Path | None = None, genesis: Path | None = None) -> list[str]:
        return [
            *pocnet_command(), "node", "--role", "manager",
            "--data-dir", str(data_dir or self.data_dir), "--genesis", str(genesis or self.genesis_path), *extra,
        ]

    def start(self, *extra: str, data_dir: Path | None = None, prefix: tuple[str, ...] = ()) -> RunningNode:
        """Start the node and wait until it serves its control socket."""
        directory = data_dir or self.data_dir
        log_path = self.root / f"node-{time.monotonic_ns()}.log"
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                [*prefix, *self.node_args(*extra, data_dir=directory)],
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        node = RunningNode(process, directory, log_path)
        node.wait_ready()
        return node

    def run_refused(self, *extra: str, data_dir: Path | None = None, genesis: Path | None = None,
                    prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
        """Run `pocnet node` expecting it to exit by itself (refused at start)."""
        return subprocess.run(
            [*prefix, *self.node_args(*extra, data_dir=data_dir, genesis=genesis)],
            capture_output=True, text=True, timeout=START_TIMEOUT_S, stdin=subprocess.DEVNULL,
        )


def write_solo_genesis(path: Path, keypair: Keypair, chain_id: str) -> Genesis:
    genesis = Genesis(
        chain_id=chain_id,
        genesis_time_ms=int(time.time() * 1000),
        validators=(Validator(keypair.public_key, "solo"),),
        allocations=(Allocation(keypair.address, 1_000 * NRLC_PER_RLC),),
        categories=(Category(0, "XS", 5_000),),
        attestation_authorities=(),
        params=ChainParams(empty_block_interval_ms=1_000),
    )
    path.write_text(genesis_to_json(genesis))
    return genesis


@dataclass
class RunningNode:
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (self.data_dir / "node.addr").exists():
            if self.process.poll() is not None:
                raise AssertionError(f"the node exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the node did not start within {START_TIMEOUT_S:.0f} s:\n{self.log()[-3000:]}")
            time.sleep(POLL_S)

    def client(self) -> ControlClient:
        return ControlClient(self.data_dir, timeout_s=10)

    def status(self) -> NodeStatus:
        answer = self.client().call(StatusRequest())
        assert isinstance(answer, NodeStatus)
        return answer

    def submit_transfer(self, to: bytes) -> bytes:
        submitted = self.client().call(SubmitRequest(Transfer(to, NRLC_PER_RLC)))
        assert isinstance(submitted, TxSubmitted)
        return submitted.tx_id

    def result(self, tx_id: bytes) -> TxResultInfo:
        answer = self.client().call(TxResultRequest(tx_id))
        assert isinstance(answer, TxResultInfo)
        return answer

    def commit_transfer(self, to: bytes) -> tuple[bytes, int]:
        """A transfer committed: its id and the height of its block."""
        tx_id = self.submit_transfer(to)
        deadline = time.monotonic() + COMMIT_TIMEOUT_S
        while (result := self.result(tx_id)).height == 0:
            assert time.monotonic() < deadline, f"not committed after {COMMIT_TIMEOUT_S:.0f} s: {result.code}"
            time.sleep(POLL_S)
        return tx_id, result.height

    def wait_exit(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        return self.process.wait(timeout=timeout_s)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        assert self.process.returncode in (0, -signal.SIGTERM), self.log()[-3000:]


def assert_one_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Exit status 2 and exactly one line on stderr, with each needle in it; returns the line."""
    assert result.returncode == 2, f"exit {result.returncode}, stderr:\n{result.stderr[-3000:]}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{result.stderr[-3000:]}"
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def assert_final_line(code: int, output: str, *needles: str) -> str:
    """For a mistake found while running (the node had logged): exit status 2, no traceback, and the last
    line is ours with each needle in it; returns the line."""
    assert code == 2, f"exit {code}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    last = output.splitlines()[-1]
    assert last.startswith("pocnet: "), last
    for needle in needles:
        assert needle in last, last
    return last


def unlink_quietly(*paths: Path) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
