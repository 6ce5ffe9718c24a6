"""Roles that act only through the CLI: a requester publishes its requests and follows its tasks with
`pocnet app run` and friends; the node's other parts serve it."""

from __future__ import annotations

from node.roles.base import BaseRole


class PassiveRole(BaseRole):
    def __init__(self, name: str) -> None:
        self.name = name
