"""A trio world in a background thread, for targets that fuzz a node (which lives in trio) from the
synchronous fuzz loop: `call(fn, *args)` runs `await fn(*args)` in it and returns or raises what it does.

A node's background tasks (the consensus driver, its timers) run between calls as they would in a real
node. If one of them crashes, the world ends; the next `call` raises `WorldDied` with the cause, which
the target reports as a crash (a node must never crash).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Any

import trio

# Starting a node (store, ledger, consensus state) takes well under a second; this only bounds a hang.
START_TIMEOUT_S = 60.0


class WorldDied(Exception):
    """The trio world ended: a background task raised (the cause is chained) or it was stopped."""


class TrioThread:
    """Runs `setup(nursery)` in a new trio world and keeps the world alive until `stop()`."""

    def __init__(self, setup: Callable[[trio.Nursery], Awaitable[None]]) -> None:
        self._setup = setup
        self._token: trio.lowlevel.TrioToken | None = None
        self._stopping: trio.Event | None = None
        self._ready = threading.Event()
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fuzz-trio", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_S):
            raise WorldDied(f"the trio world did not start within {START_TIMEOUT_S:.0f} s")
        if self.failure is not None:
            raise WorldDied(f"the trio world failed to start: {self.failure!r}") from self.failure

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:
            self.failure = exc
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stopping = trio.Event()
        async with trio.open_nursery() as nursery:
            await self._setup(nursery)
            self._ready.set()
            await self._stopping.wait()
            nursery.cancel_scope.cancel()

    def call(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        if self.failure is not None or self._token is None or not self._thread.is_alive():
            raise WorldDied(f"the node's trio world ended: {self.failure!r}") from self.failure
        try:
            return trio.from_thread.run(fn, *args, trio_token=self._token)
        except trio.RunFinishedError:
            raise WorldDied(f"the node's trio world ended: {self.failure!r}") from self.failure

    def stop(self) -> None:
        if self._token is not None and self._stopping is not None and self._thread.is_alive():
            try:
                trio.from_thread.run_sync(self._stopping.set, trio_token=self._token)
            except trio.RunFinishedError:
                pass
        self._thread.join()
