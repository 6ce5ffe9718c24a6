"""Fixtures of the integration tests: a cluster of real nodes in the test's own trio run."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.integration.support import Cluster


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: a multi-node scenario taking several seconds (runs by default; deselect with -m 'not slow')",
    )


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[Cluster]:
    """Four managers and two followers, all started and meshed; stopped (cancelled) after the test."""
    async with trio.open_nursery() as nursery:
        cluster = Cluster(nursery, tmp_path, managers=4, followers=2)
        await cluster.start_all()
        yield cluster
        nursery.cancel_scope.cancel()
