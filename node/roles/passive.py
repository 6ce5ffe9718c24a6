"""Roles that, for now, act only through the CLI: requester and provider publish orders and register
assets with `pocnet order publish` and friends; a worker idles until execution arrives."""

from __future__ import annotations

import logging

from node.roles.base import NodeAPI
from protocols.chain import CommittedBlock

log = logging.getLogger(__name__)


class PassiveRole:
    def __init__(self, name: str) -> None:
        self.name = name

    async def start(self, api: NodeAPI) -> None:
        log.info("event=role-started role=%s", self.name)

    async def on_block(self, api: NodeAPI, height: int, committed: CommittedBlock) -> None:
        return None

    async def tick(self, api: NodeAPI, now: float) -> None:
        return None

    async def run(self, api: NodeAPI) -> None:
        return None

    def request_handlers(self, api: NodeAPI) -> dict[str, object]:
        return {}

    def notes(self, api: NodeAPI) -> list[str]:
        return []
