"""Starting the node's role plugins and feeding them committed blocks and ticks (DESIGN.md section 1)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import trio

from node.config import NodeConfig
from node.roles.authority import AuthorityRole
from node.roles.base import NodeAPI, Role
from node.roles.manager import ManagerRole
from node.roles.passive import PassiveRole
from node.roles.provider import ProviderRole
from node.roles.worker import WorkerRole
from protocols.chain import CommittedBlock

log = logging.getLogger(__name__)

# How often roles get a tick for time-driven work (a manager's matching turn).
ROLE_TICK_S = 0.25
# Committed blocks waiting for the roles; beyond this a block is not shown to them (logged: roles-lagging).
MAX_WAITING_BLOCKS = 1000


def make_role(name: str, config: NodeConfig) -> Role:
    if name == "manager":
        return ManagerRole()
    if name == "provider":
        return ProviderRole(config.data_dir)
    if name == "worker":
        return WorkerRole(config.data_dir, config.manager, config.dishonest)
    if name == "authority":
        return AuthorityRole()
    return PassiveRole(name)


class RoleRunner:
    """Roles see blocks in order and a tick every ROLE_TICK_S, one call at a time. Blocks are kept for them
    from `open` on: the node opens the runner once its start-up catch-up is over, and the roles never see
    the blocks of the catch-up."""

    def __init__(self, roles: list[Role]) -> None:
        self.roles = roles
        self._send, self._receive = trio.open_memory_channel[tuple[int, CommittedBlock]](MAX_WAITING_BLOCKS)
        self.opened = False

    def open(self) -> None:
        self.opened = True

    def committed(self, height: int, committed: CommittedBlock) -> None:
        """After each block (never waits: a role that lags loses blocks, not the node its pace)."""
        if not self.opened:
            return
        try:
            self._send.send_nowait((height, committed))
        except trio.WouldBlock:
            log.warning("event=roles-lagging height=%d", height)

    async def run(self, api: NodeAPI) -> None:
        for role in self.roles:
            await role.start(api)
        while True:
            event = None
            with trio.move_on_after(ROLE_TICK_S):  # only the wait: a role's work is never cut short
                event = await self._receive.receive()
            if event is not None:
                height, committed = event
                for role in self.roles:
                    await _guarded(role.name, role.on_block(api, height, committed))
            for role in self.roles:
                await _guarded(role.name, role.tick(api, trio.current_time()))


async def _guarded(role: str, call: Awaitable[None]) -> None:
    try:
        await call
    except Exception:  # a role's bug must not stop the node or the other roles
        log.exception("event=role-failed role=%s", role)
