"""A network of real nodes in one trio run, for integration tests.

`Cluster` makes the keys and a genesis naming its managers as validators (every node funded), then starts
and stops nodes one by one, each with its own data directory and an ephemeral port on 127.0.0.1, each
joined to one or two nodes started before it. Waits are driven by commits (every node's
`driver.committed` condition wakes the waiters) and bounded by `trio.fail_after`, so a broken run fails
with a message that says what it waited for, instead of hanging.
"""

from __future__ import annotations

import os
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from node.config import NodeConfig
from node.keys import KEY_FILE, write_key
from node.node import Node, run_node
from protocols.chain_params import ChainParams
from protocols.crypto import Keypair
from protocols.genesis import NRLC_PER_RLC, Allocation, Category, Genesis, Validator
from protocols.ledger.transactions import Transaction, Transfer, TxBody

START_BALANCE = 1_000_000 * NRLC_PER_RLC
# Short categories (T = 5 s), like the devnet's: no test here lets a task deadline pass.
CATEGORIES = (Category(0, "XS", 5_000), Category(1, "S", 20_000))
EMPTY_BLOCK_INTERVAL_MS = 1_000
# A loopback network commits a transaction in well under a second; the bound covers a loaded 2-core CI
# machine shared with other jobs (a round change costs ~1.5 s, and under load rounds fail) without letting a broken run hang.
COMMIT_TIMEOUT_S = 45.0
# Nodes connect and build their gossip meshes within a second or two on loopback.
MESH_TIMEOUT_S = 15.0
# Stopping a node and closing its sockets takes milliseconds; this only bounds a hung shutdown.
STOP_TIMEOUT_S = 10.0
# Waiters re-check their condition at least this often even without a commit (order books, penalties).
POLL_S = 0.05


def chain_topic(node: Node) -> str:
    """Where a node hears the chain: validators vote on the consensus topic, followers take decided blocks."""
    return node.topics.consensus if node.is_validator else node.topics.blocks


@dataclass
class Member:
    """One participant: its key and data directory, and while it runs, its `Node` and cancel scope."""

    name: str
    roles: tuple[str, ...]
    keypair: Keypair
    data_dir: Path
    node: Node | None = None
    scope: trio.CancelScope | None = None
    stopped: trio.Event = field(default_factory=trio.Event)

    @property
    def address(self) -> bytes:
        return self.keypair.address


def leaf_errors(exc: BaseException) -> list[str]:
    """The innermost exceptions of nested exception groups, as `Type: message`."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaf_errors(inner)]
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    return [
        f"{type(exc).__name__}: {exc}"
        + (f" at {where.filename}:{where.lineno}" if where else "")
    ]


class Cluster:
    """Managers `m0..m{n-1}` (validators) and followers `f0..` (requester/provider roles, not validators)."""

    def __init__(
        self,
        nursery: trio.Nursery,
        root: Path,
        managers: int,
        followers: int,
        seed: int = 0,
    ) -> None:
        self.nursery = nursery
        self.rng = random.Random(seed)
        self.members: dict[str, Member] = {}
        for i in range(managers):
            self._add(root, f"m{i}", ("manager",))
        for i in range(followers):
            self._add(root, f"f{i}", ("requester", "provider"))
        self.genesis = Genesis(
            chain_id=f"it-{os.urandom(4).hex()}",
            genesis_time_ms=int(time.time() * 1000),
            validators=tuple(
                Validator(m.keypair.public_key, m.name)
                for m in self.members.values()
                if "manager" in m.roles
            ),
            allocations=tuple(
                Allocation(m.address, START_BALANCE) for m in self.members.values()
            ),
            categories=CATEGORIES,
            attestation_authorities=(),
            params=ChainParams(empty_block_interval_ms=EMPTY_BLOCK_INTERVAL_MS),
        )
        self.changed = (
            trio.Event()
        )  # set (and replaced) whenever any running node commits a block

    def _add(self, root: Path, name: str, roles: tuple[str, ...]) -> None:
        data_dir = root / name
        data_dir.mkdir(parents=True)
        keypair = Keypair.generate()
        write_key(
            data_dir / KEY_FILE, keypair
        )  # so the genesis can name it before it starts
        self.members[name] = Member(name, roles, keypair, data_dir)

    # --- running nodes ------------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Node:
        node = self.members[name].node
        assert node is not None, f"{name} is not running"
        return node

    @property
    def running(self) -> list[Node]:
        return [m.node for m in self.members.values() if m.node is not None]

    def addrs(self, name: str) -> list[str]:
        return self[name].host.addrs[:1]

    async def start(self, name: str, join: tuple[str, ...] | None = None, byzantine: str | None = None) -> Node:
        """Start `name` joined to `join` (default: one or two random running nodes); returns once it serves.
        `byzantine`: a manager misbehaving in consensus (node/byzantine.py)."""
        member = self.members[name]
        assert member.node is None, f"{name} already runs"
        if join is None:
            others = [m.name for m in self.members.values() if m.node is not None]
            join = tuple(self.rng.sample(others, min(2, len(others))))
        config = NodeConfig(
            roles=member.roles,
            data_dir=member.data_dir,
            genesis=self.genesis,
            listen="/ip4/127.0.0.1/tcp/0",
            join=tuple(a for peer in join for a in self.addrs(peer)),
            byzantine=byzantine,
        )
        member.stopped = trio.Event()
        node: Node = await self.nursery.start(self._run, member, config)
        return node

    async def _run(
        self, member: Member, config: NodeConfig, task_status: trio.TaskStatus[Node]
    ) -> None:
        try:
            with trio.CancelScope() as member.scope:
                async with trio.open_nursery() as watchers:

                    async def ready(node: Node) -> None:
                        member.node = node
                        watchers.start_soon(self._watch_commits, node)
                        task_status.started(node)

                    await run_node(config, ready)
        except Exception as exc:  # a node must never crash: say which one and why, past the nested groups
            raise AssertionError(
                f"node {member.name} crashed: {'; '.join(leaf_errors(exc))}"
            ) from exc
        finally:
            member.node = None
            member.scope = None
            member.stopped.set()

    async def _watch_commits(self, node: Node) -> None:
        """Wake the cluster's waiters on every commit of `node` (runs as long as the node)."""
        while True:
            async with node.driver.committed:
                await node.driver.committed.wait()
            self.changed.set()
            self.changed = trio.Event()

    async def stop(self, name: str) -> None:
        """Cancel `name` (like SIGTERM), wait until its store is closed, then clean up what a process exit
        would: leaving `open_host` leaves the listener and the connections open
        (test_hostile_peers.py::test_a_stopped_host_closes_its_sockets), so peers would keep a dead
        connection to this identity and never mesh with it again after a restart."""
        member = self.members[name]
        assert member.scope is not None and member.node is not None, (
            f"{name} is not running"
        )
        network = member.node.host._host.get_network()
        peer_id = member.node.host.peer_id
        member.scope.cancel()
        with trio.fail_after(STOP_TIMEOUT_S):
            await member.stopped.wait()
            for listener in list(network.listeners.values()):
                await listener.close()
            for other in self.running:
                await other.host.disconnect(peer_id)

    async def start_all(self) -> None:
        """Start every member in order, each joined to one or two earlier ones, then wait for the mesh."""
        for name in self.members:
            await self.start(name)
        await self.wait_for_mesh()

    # --- waiting --------------------------------------------------------------------------------------

    async def wait_until(
        self,
        predicate: Callable[[], bool],
        what: str,
        timeout_s: float = COMMIT_TIMEOUT_S,
    ) -> None:
        """Until `predicate()` holds, re-checked after every commit anywhere (and every POLL_S)."""
        try:
            with trio.fail_after(timeout_s):
                while not predicate():
                    with trio.move_on_after(POLL_S):
                        await self.changed.wait()
        except trio.TooSlowError:
            raise AssertionError(
                f"timed out after {timeout_s} s waiting for {what}; {self.describe()}"
            ) from None

    def describe(self) -> str:
        return ", ".join(
            f"{m.name}: height {m.node.height} round {m.node.driver.machine.round} "
            f"step {m.node.driver.machine.step} mempool {len(m.node.mempool)} "
            f"peers {len(m.node.host.connected_peers())} mesh {len(m.node.host.mesh_peers(chain_topic(m.node)))}"
            for m in self.members.values()
            if m.node is not None
        )

    async def wait_for_mesh(self) -> None:
        """Every running node has a mesh peer for the chain (validators: the consensus topic, followers: the
        blocks topic) and for transactions: gossip from anyone reaches everyone."""
        nodes = self.running
        await self.wait_until(
            lambda: all(
                n.host.mesh_peers(chain_topic(n))
                and n.host.mesh_peers(n.topics.txs)
                for n in nodes
            ),
            "gossip meshes",
            MESH_TIMEOUT_S,
        )

    async def commit(
        self, via: str, body: TxBody, on: list[str] | None = None
    ) -> Transaction:
        """Submit `body` through node `via` and wait until it is committed (successfully) on every node of
        `on` (default: all running ones)."""
        tx = await self[via].submit(body)
        names = (
            on
            if on is not None
            else [m.name for m in self.members.values() if m.node is not None]
        )

        def committed_everywhere() -> bool:
            # Also wait until `via` has dropped it from its pending list: between storing a block and running
            # its commit hook, `Outbox.submit` would pick a nonce too high (test_hostile_peers.py::
            # test_submit_right_after_a_commit_gets_the_right_nonce).
            pending = self[via].outbox.is_pending(tx.tx_id)
            return not pending and all(
                self[n].store.tx_result(tx.tx_id) is not None for n in names
            )

        await self.wait_until(
            committed_everywhere,
            f"{type(body).__name__} {tx.tx_id.hex()[:12]} on {names}",
        )
        for n in names:
            result = self[n].store.tx_result(tx.tx_id)
            assert result is not None and result.code == "ok", (
                f"{n}: {type(body).__name__} failed: {result}"
            )
        return tx

    async def transfer(
        self, via: str, to: str, amount: int = NRLC_PER_RLC, on: list[str] | None = None
    ) -> Transaction:
        return await self.commit(via, Transfer(self.members[to].address, amount), on)

    async def wait_for_height(self, height: int, names: list[str]) -> None:
        await self.wait_until(
            lambda: all(self[n].height >= height for n in names),
            f"height {height} on {names}",
        )

    def assert_agree(self, names: list[str] | None = None) -> None:
        """Every node of `names` (default: all running) has the same block hash at every height it holds,
        and those at the same height have the same ledger state."""
        nodes = [self[n] for n in names] if names else self.running
        chains = {n.host.peer_id: dict(n.store.block_hashes()) for n in nodes}
        reference = max(chains.values(), key=len)
        for peer, chain in chains.items():
            assert chain, f"{peer} has no blocks"
            assert list(chain) == list(range(1, len(chain) + 1)), (
                f"{peer} has gaps: {sorted(chain)}"
            )
            for height, block in chain.items():
                assert reference[height] == block, f"{peer} differs at height {height}"
        by_height: dict[int, set[bytes]] = {}
        for n in nodes:
            by_height.setdefault(n.height, set()).add(n.app.state_digest())
        assert all(len(d) == 1 for d in by_height.values()), (
            f"state digests diverge at one height: {by_height}"
        )
