"""A devnet whose nodes each live in their own network namespace, as on separate hosts (`up --netns`).

Each node gets a namespace `pocnet-<tag>-<i>` holding its end of a veth pair (renamed `eth0`, address
10.77.0.<i+1>/24) and its loopback; the other ends join one bridge `pnbr<tag>` in the root namespace. The
bridge has no address and the root namespace no route to 10.77.0.0/24, so node traffic never leaves the
bridge and nothing of the host's network changes; the devnet command reaches the nodes through their
control sockets (Unix sockets are not network-namespaced). `<tag>` is random per devnet, so two netns
devnets on one machine never share a name.

Everything created is written to `netns.json` in the devnet directory *before* it is created, so
`python -m devnet down` removes it all even after the command that created it crashed halfway. The
namespaces also make two faults easy and exact: a partition (the node's bridge port goes down) and
random packet loss (iptables' `statistic` match inside the node's namespace, so no other rule moves).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

from devnet.network import DEVNET_CATEGORIES, Devnet, DevnetError, NodeSpec
from protocols.genesis import Category

STATE_FILE = "netns.json"
SUBNET = "10.77.0"
PREFIX_LEN = 24
NAMESPACE_PREFIX = "pocnet-"
# Interface names are at most 15 characters (IFNAMSIZ - 1): "pnbr" + 4 hex, "pnv" + 4 hex + 2 digits.
TAG_HEX = 4
MAX_NODES = 99


class NetnsDevnet(Devnet):
    """A `Devnet` whose nodes run each in its own network namespace on a private bridge."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._state = self._load_state()
        self._beside: dict[str, str] = {}  # extra node -> the node whose namespace it shares

    def share_namespace(self, extra: str, host: str) -> None:
        """Run node `extra` (not created with the devnet: a twin) in `host`'s namespace, on its address."""
        self._beside[extra] = host

    # --- names and addresses ---------------------------------------------------------------------

    def _load_state(self) -> dict[str, object]:
        path = self.root / STATE_FILE
        return json.loads(path.read_text()) if path.exists() else {"tag": "", "nodes": [], "bridge": ""}

    def _save_state(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / STATE_FILE).write_text(json.dumps(self._state, indent=2))

    @property
    def tag(self) -> str:
        return str(self._state["tag"])

    def namespace(self, node: NodeSpec) -> str:
        return self._namespace_at(self._index(node))

    def _namespace_at(self, index: int) -> str:
        return f"{NAMESPACE_PREFIX}{self.tag}-{index}"

    def host_interface(self, node: NodeSpec) -> str:
        """The node's port on the bridge (down: the node is partitioned from every other)."""
        return f"pnv{self.tag}{self._index(node):02d}"

    def ip_of(self, node: NodeSpec) -> str:
        return f"{SUBNET}.{self._index(node) + 1}"

    def _node_names(self) -> list[str]:
        return [str(name) for name in self._state["nodes"]]  # type: ignore[attr-defined]

    def _index(self, node: NodeSpec) -> int:
        return self._node_names().index(self._beside.get(node.name, node.name))

    # --- Devnet hooks ------------------------------------------------------------------------------

    def command_prefix(self, node: NodeSpec) -> list[str]:
        return ["ip", "netns", "exec", self.namespace(node)]  # `ip netns exec` execs: the pid is the node's

    def listen_address(self, node: NodeSpec) -> str:
        return f"/ip4/{self.ip_of(node)}/tcp/0"

    def create(
        self, managers: int, followers: int, extra: list[NodeSpec] | None = None,
        categories: tuple[Category, ...] = DEVNET_CATEGORIES,
    ) -> list[NodeSpec]:
        """Keys and genesis as `Devnet.create`, then one namespace per node on a fresh bridge (any left
        by an earlier netns devnet in this directory are removed first)."""
        require_root()
        nodes = super().create(managers, followers, extra, categories)  # refuses while a devnet runs here
        self.remove_network()
        if len(nodes) > MAX_NODES:
            raise DevnetError(f"a netns devnet holds at most {MAX_NODES} nodes, not {len(nodes)}")
        self._state = {"tag": secrets.token_hex(TAG_HEX // 2), "nodes": [n.name for n in nodes], "bridge": ""}
        self._state["bridge"] = f"pnbr{self.tag}"
        self._save_state()  # first: whatever is created below, `down` can find
        bridge = str(self._state["bridge"])
        _ip("link", "add", bridge, "type", "bridge")
        _ip("link", "set", bridge, "up")
        for node in nodes:
            namespace, outside = self.namespace(node), self.host_interface(node)
            _ip("netns", "add", namespace)
            _ip("link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", namespace)
            _ip("link", "set", outside, "master", bridge, "up")
            _ip("-n", namespace, "addr", "add", f"{self.ip_of(node)}/{PREFIX_LEN}", "dev", "eth0")
            _ip("-n", namespace, "link", "set", "eth0", "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
        return nodes

    # --- faults ---------------------------------------------------------------------------------------

    def partition(self, node: NodeSpec, cut: bool) -> None:
        """Cut the node off from every other (its bridge port down), or heal it."""
        _ip("link", "set", self.host_interface(node), "down" if cut else "up")

    def set_loss(self, node: NodeSpec, probability: float | None) -> None:
        """Drop this fraction of the packets the node receives and sends (None: none). The rules live in
        the node's namespace and go with it."""
        if shutil.which("iptables") is None:
            raise DevnetError("packet loss needs iptables (Debian: apt-get install iptables)")
        namespace = self.namespace(node)
        for chain in ("INPUT", "OUTPUT"):
            _run(["ip", "netns", "exec", namespace, "iptables", "-F", chain])
            if probability is not None:
                _run(["ip", "netns", "exec", namespace, "iptables", "-A", chain, "-m", "statistic",
                      "--mode", "random", "--probability", f"{probability:.3f}", "-j", "DROP"])

    # --- teardown -----------------------------------------------------------------------------------------

    def remove_network(self) -> list[str]:
        """Remove every namespace and the bridge this directory's state file names (each only if it still
        exists and has our prefix); returns what was removed."""
        removed = []
        tag = self.tag
        existing = set(_output(["ip", "netns", "list"]).split())
        for index in range(len(self._node_names())):
            namespace = self._namespace_at(index)
            if tag and namespace in existing:
                _ip("netns", "del", namespace)  # takes the veth pair with it
                removed.append(namespace)
        bridge = str(self._state["bridge"])
        if bridge.startswith("pnbr") and _run(["ip", "link", "show", bridge], check=False) == 0:
            _ip("link", "del", bridge)
            removed.append(bridge)
        (self.root / STATE_FILE).unlink(missing_ok=True)
        self._state = {"tag": "", "nodes": [], "bridge": ""}
        return removed


def is_netns_devnet(root: Path) -> bool:
    return (root.resolve() / STATE_FILE).exists()


def require_root() -> None:
    if os.geteuid() != 0:
        raise DevnetError("--netns needs root (it creates network namespaces and a bridge): run it as root, or without --netns")
    if shutil.which("ip") is None:
        raise DevnetError("--netns needs the `ip` command (Debian: apt-get install iproute2)")


def _ip(*args: str) -> None:
    _run(["ip", *args])


def _run(command: list[str], check: bool = True) -> int:
    result = subprocess.run(command, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise DevnetError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
    return result.returncode


def _output(command: list[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout


def devnet_at(root: Path, netns: bool = False) -> Devnet:
    """The devnet in `root`: in namespaces if asked to be, or if one made there earlier still has some."""
    return NetnsDevnet(root) if netns or is_netns_devnet(root) else Devnet(root)
