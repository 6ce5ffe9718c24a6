"""A local multi-process pocnet network (DESIGN.md section 10).

`create` makes a directory per node with its key, and one genesis naming the managers as validators, the
`authority-0` node as the attestation authority, and funding every node; `start` launches each node as
its own `pocnet node` process on 127.0.0.1 with an ephemeral port, the first manager as the bootstrap peer
and each later node joining a few of the ones before it (a random graph, no hub); `wait_for_height` polls
the nodes' control sockets. Workers are certified as a person would do it, through the `pocnet worker
certify` control request to their node, which asks the authority over the network. A `devnet.json` file
in the network directory records names, roles and pids, so `status`, `logs` and `down` work from another
shell.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from devnet.cpulimit import CpuLimit
from node.control import CertifyPlatformRequest, ControlClient, ControlRejected, NodeStatus, StatusRequest
from node.keys import KEY_FILE, write_key
from node.node import ADDRESS_FILE
from protocols.chain_params import ChainParams
from protocols.crypto import Keypair
from protocols.genesis import NRLC_PER_RLC, Allocation, Category, Genesis, Validator, genesis_to_json

log = logging.getLogger(__name__)

STATE_FILE = "devnet.json"
GENESIS_FILE = "genesis.json"
# The attestation authority of the devnet: a node of its own, like the service a TEE vendor runs.
AUTHORITY_NODE = "authority-0"
# How long `start` keeps asking for a worker's certificate (the authority may still be starting).
CERTIFY_TIMEOUT_S = 30.0
LOG_FILE = "node.log"
START_BALANCE = 1_000_000 * NRLC_PER_RLC
# Short categories so a devnet demo finishes in seconds: T is the base of every task deadline (7T, 10T).
DEVNET_CATEGORIES = (Category(0, "XS", 5_000), Category(1, "S", 20_000), Category(2, "M", 60_000))
EMPTY_BLOCK_INTERVAL_MS = 1_000
# Each node joins this many earlier nodes: more than gossipsub's degree_low keeps the mesh connected.
JOIN_FANOUT = 4
# A node has this long after SIGTERM to exit, counted again each time another node exits or those left use
# CPU meanwhile: nodes stopping together share the machine (31 on 2 cores each logged node-stopped within
# 2.3 s, and several were still exiting 5 s after the signal), so only nodes that stop making progress are
# killed.
STOP_GRACE_S = 5.0
# ... and whatever still runs this long after the SIGTERM, progress or not (a node spinning in its shutdown
# is a bug; a slow one stops within a few seconds of CPU).
STOP_MAX_S = 60.0


@dataclass
class NodeSpec:
    name: str
    roles: str
    pid: int = 0
    args: list[str] = field(default_factory=list)  # extra `pocnet node` options (a worker's --manager)


class DevnetError(Exception):
    """Something the user can fix (an existing network, a node that did not start); the message says what."""


class Devnet:
    def __init__(self, root: Path, cpu_limit: CpuLimit | None = None) -> None:
        self.root = root.resolve()
        self.cpu_limit = cpu_limit  # every node process started by `launch` runs under it

    # --- files ----------------------------------------------------------------------------------

    @property
    def genesis_path(self) -> Path:
        return self.root / GENESIS_FILE

    def node_dir(self, name: str) -> Path:
        return self.root / name

    def address_of(self, name: str) -> bytes:
        """A node's account address, from its key file (known before the node starts)."""
        return Keypair((self.node_dir(name) / KEY_FILE).read_bytes()).address

    def load(self) -> list[NodeSpec]:
        path = self.root / STATE_FILE
        if not path.exists():
            raise DevnetError(f"no devnet in {self.root} (start one with `python -m devnet up`)")
        return [NodeSpec(**n) for n in json.loads(path.read_text())["nodes"]]

    def save(self, nodes: list[NodeSpec]) -> None:
        (self.root / STATE_FILE).write_text(json.dumps({"nodes": [asdict(n) for n in nodes]}, indent=2))

    # --- lifecycle --------------------------------------------------------------------------------

    def create(
        self, managers: int, followers: int, extra: list[NodeSpec] | None = None,
        categories: tuple[Category, ...] = DEVNET_CATEGORIES,
    ) -> list[NodeSpec]:
        """Keys, genesis and node directories for `managers` validators, `followers` plain nodes and any
        `extra` nodes, and the attestation authority's node.
        `categories` go into the genesis (a test of deadlines passes a shorter T than the demo's).
        Refuses to overwrite a running network."""
        if (self.root / STATE_FILE).exists() and any(_alive(n.pid) for n in self.load()):
            raise DevnetError(f"a devnet is already running in {self.root}: `python -m devnet down` first")
        if managers < 1:
            raise DevnetError("a devnet needs at least one manager (validator)")
        nodes = [NodeSpec(f"manager-{i}", "manager") for i in range(managers)]
        nodes += [NodeSpec(AUTHORITY_NODE, "authority")]
        nodes += [NodeSpec(f"follower-{i}", "requester") for i in range(followers)]
        nodes += extra or []
        self.root.mkdir(parents=True, exist_ok=True)
        keys: dict[str, Keypair] = {}
        for node in nodes:
            directory = self.node_dir(node.name)
            if directory.exists():
                _remove_tree(directory)
            directory.mkdir(parents=True)
            keys[node.name] = Keypair.generate()
            write_key(directory / KEY_FILE, keys[node.name])
        chain_id = f"devnet-{random.randrange(16**6):06x}"
        for node in nodes:
            if "worker" in node.roles and "--manager" not in node.args:  # by default workers join manager-0's pool
                node.args += ["--manager", "0x" + keys[nodes[0].name].address.hex()]
        genesis = Genesis(
            chain_id=chain_id,
            genesis_time_ms=int(time.time() * 1000),
            validators=tuple(Validator(keys[n.name].public_key, n.name) for n in nodes if "manager" in n.roles),
            allocations=tuple(Allocation(keys[n.name].address, START_BALANCE) for n in nodes),
            categories=categories,
            attestation_authorities=(keys[AUTHORITY_NODE].public_key,),
            params=ChainParams(empty_block_interval_ms=EMPTY_BLOCK_INTERVAL_MS),
        )
        self.genesis_path.write_text(genesis_to_json(genesis))
        self.save(nodes)
        return nodes

    def start(
        self, nodes: list[NodeSpec], timeout_s: float = 30.0, running: list[NodeSpec] | None = None,
        also_join: tuple[str, ...] = (),
    ) -> None:
        """Start every node process, in waves: each wave joins nodes of the earlier ones (up to JOIN_FANOUT,
        the least joined first, ties at random), and a wave is as large as JOIN_FANOUT times what runs
        already, so ten nodes start in three waves instead of ten sequential starts (each costs about a
        second of imports). Spreading the joins keeps the first nodes (the managers) from becoming hubs:
        with uniform picks each manager of a 30-node devnet held 20 connections."""
        started: list[str] = [n.name for n in running or []]
        joined = dict.fromkeys(started, 0)
        pending = list(nodes)
        while pending:
            wave, pending = pending[: max(1, JOIN_FANOUT * len(started))], pending[max(1, JOIN_FANOUT * len(started)):]
            for node in wave:
                joins: list[str] = []
                peers = sorted(started, key=lambda name: (joined[name], random.random()))[:JOIN_FANOUT]
                for peer in peers:
                    joined[peer] += 1
                for peer in peers + [name for name in also_join if name not in peers]:
                    joins += self.addresses(peer)[:1]
                node.pid = self.launch(node, joins)
            self.save(list(running or []) + nodes)
            for node in wave:
                self.wait_for_address(node, timeout_s)
            started += [node.name for node in wave]
            joined.update(dict.fromkeys((node.name for node in wave), 0))
        for node in nodes:
            if "worker" in node.roles.split(","):
                self.certify(node)

    def certify(self, node: NodeSpec, timeout_s: float = CERTIFY_TIMEOUT_S) -> None:
        """`pocnet worker certify` on a worker's node: its node asks the devnet's authority."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                ControlClient(self.node_dir(node.name)).call(CertifyPlatformRequest(b""))
                return
            except (ControlRejected, ConnectionError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise DevnetError(f"{node.name} was not certified within {timeout_s:.0f} s: {exc}") from None
            time.sleep(0.2)

    def launch(self, node: NodeSpec, joins: list[str]) -> int:
        directory = self.node_dir(node.name)
        (directory / ADDRESS_FILE).unlink(missing_ok=True)
        command = [
            *self.command_prefix(node), sys.executable, "-m", "node.cli", "node",
            "--role", node.roles,
            "--data-dir", str(directory),
            "--genesis", str(self.genesis_path),
            "--listen", self.listen_address(node),
            "--http", "127.0.0.1:0",  # every devnet node serves its explorer, on a free port
        ]
        for address in joins:
            command += ["--join", address]
        command += node.args
        with open(directory / LOG_FILE, "ab") as log_file:
            process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        if self.cpu_limit is not None:
            self.cpu_limit.add(process.pid)  # while the interpreter is still importing: before any node work
        return process.pid

    def command_prefix(self, node: NodeSpec) -> list[str]:
        """What the node's command runs under (devnet/netns.py: its network namespace)."""
        return []

    def listen_address(self, node: NodeSpec) -> str:
        """Where the node listens: an ephemeral port on loopback (devnet/netns.py: its own address)."""
        return "/ip4/127.0.0.1/tcp/0"

    def addresses(self, name: str) -> list[str]:
        path = self.node_dir(name) / ADDRESS_FILE
        return path.read_text().split() if path.exists() else []

    def wait_for_address(self, node: NodeSpec, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.addresses(node.name):
            if not _alive(node.pid):
                raise DevnetError(f"{node.name} exited at start; its log ends with:\n{self.tail(node.name, 15)}")
            if time.monotonic() > deadline:
                raise DevnetError(f"{node.name} did not start listening within {timeout_s:.0f} s")
            time.sleep(0.05)

    def status(self, name: str, timeout_s: float = 2.0) -> NodeStatus | None:
        try:
            answer = ControlClient(self.node_dir(name), timeout_s=timeout_s).call(StatusRequest())
        except (ConnectionError, OSError):
            return None
        return answer if isinstance(answer, NodeStatus) else None

    def wait_for_height(self, nodes: list[NodeSpec], height: int, timeout_s: float) -> None:
        """Until every node reports at least `height`, or raise naming the ones behind."""
        deadline = time.monotonic() + timeout_s
        while True:
            behind = [n.name for n in nodes if (s := self.status(n.name)) is None or s.height < height]
            if not behind:
                return
            dead = [n.name for n in nodes if not _alive(n.pid)]
            if dead:
                raise DevnetError(f"node(s) exited: {', '.join(dead)}; see `python -m devnet logs {dead[0]}`")
            if time.monotonic() > deadline:
                raise DevnetError(f"not at height {height} after {timeout_s:.0f} s: {', '.join(behind)}")
            time.sleep(0.2)

    def stop(self, nodes: list[NodeSpec]) -> list[str]:
        """SIGTERM every node and wait while they make progress: one exits, or those left use CPU (nodes
        stopping together on a slow or CPU-limited machine are slow, not stuck: eleven at once inside
        `bench.devnet --cpu-limit 0.5` took over STOP_GRACE_S before the first one exited, and were all
        killed). SIGKILL what made no progress for STOP_GRACE_S, or is still there after STOP_MAX_S;
        return the names that had to be killed."""
        for node in nodes:
            if _alive(node.pid):
                os.kill(node.pid, signal.SIGTERM)
        started = time.monotonic()
        deadline = started + STOP_GRACE_S
        alive = [n for n in nodes if _alive(n.pid)]
        used = sum(cpu_ticks(n.pid) for n in alive)
        while alive and time.monotonic() < min(deadline, started + STOP_MAX_S):
            time.sleep(0.05)
            still = [n for n in alive if _alive(n.pid)]
            still_used = sum(cpu_ticks(n.pid) for n in still)
            if len(still) < len(alive) or still_used > used:
                deadline = time.monotonic() + STOP_GRACE_S
            alive, used = still, still_used
        killed = []
        for node in nodes:
            if _alive(node.pid):
                os.kill(node.pid, signal.SIGKILL)
                killed.append(node.name)
        return killed

    def tail(self, name: str, lines: int) -> str:
        path = self.node_dir(name) / LOG_FILE
        if not path.exists():
            return "(no log yet)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass  # not our child (started by another `devnet` command): fall back to a signal probe
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _zombie(pid)


def cpu_ticks(pid: int) -> int:
    """User plus system CPU of a process so far, in clock ticks (fields 14 and 15 of proc(5)); 0 if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _zombie(pid: int) -> bool:
    """An exited process nobody has reaped yet: a node started by an earlier `devnet` command belongs to
    init, and an init that does not reap (some containers') leaves it a zombie that signals still reach."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"  # the state follows the command name in parentheses


def _remove_tree(directory: Path) -> None:
    for path in sorted(directory.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
    directory.rmdir()
