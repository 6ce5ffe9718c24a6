"""Serving the explorer from the node's trio process: hypercorn's trio worker running a starlette app.

The HTTP side shares the node's one thread with consensus, so every request must stay cheap and bounded:
- request heads over `MAX_HEAD_BYTES` are refused by hypercorn's parser (400), paths and queries over
  `MAX_PATH_BYTES`/`MAX_QUERY_BYTES` get 414 before any work, and only GET and HEAD are served (405);
- at most `MAX_IN_FLIGHT` requests are answered at once; more get 503 at once instead of queueing, so a
  crowd of clients costs a few microseconds each, not a backlog of work;
- idle connections close after `KEEP_ALIVE_S`; slow readers after `READ_TIMEOUT_S`.
Every page is a few dictionary lookups over the in-memory ledger and a few SQLite point reads.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.types import ASGIApp, Receive, Scope, Send

from node.http.app import build_app
from node.http.views import Explorer
from node.operator_errors import OperatorError
from node.trio_compat import TaskStatus

log = logging.getLogger(__name__)

# A request line and headers fit in a few hundred bytes; browsers send ~1-2 KiB of headers.
MAX_HEAD_BYTES = 8 * 1024
# The longest legitimate path is /api/task/0x + 64 hex digits; queries are a handful of filters.
MAX_PATH_BYTES = 256
MAX_QUERY_BYTES = 1024
# A page costs ~1 ms of the node's thread; 8 at once bounds what the explorer can take from consensus.
MAX_IN_FLIGHT = 8
KEEP_ALIVE_S = 5
READ_TIMEOUT_S = 10
ALLOWED_METHODS = ("GET", "HEAD")


class Guard:
    """ASGI middleware: the limits above, checked before the app does any work."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            status, reason = refusal
            await _plain(send, status, reason)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1

    def _refusal(self, scope: Scope) -> tuple[int, str] | None:
        if scope["method"] not in ALLOWED_METHODS:
            return 405, "this explorer is read-only: GET only (the control socket is the only way to act)"
        if len(scope.get("raw_path") or scope["path"].encode()) > MAX_PATH_BYTES:
            return 414, f"path longer than {MAX_PATH_BYTES} bytes"
        if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
            return 414, f"query longer than {MAX_QUERY_BYTES} bytes"
        if self.in_flight >= MAX_IN_FLIGHT:
            return 503, "busy: too many requests at once, retry in a moment"
        return None


async def _plain(send: Send, status: int, reason: str) -> None:
    body = reason.encode() + b"\n"
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    if status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def hypercorn_config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.h11_max_incomplete_size = MAX_HEAD_BYTES
    config.keep_alive_timeout = KEEP_ALIVE_S
    config.read_timeout = READ_TIMEOUT_S
    config.accesslog = None
    config.errorlog = logging.getLogger("node.http.hypercorn")
    config.include_server_header = False
    config.alpn_protocols = ["http/1.1"]
    return config


async def serve_http(
    explorer: Explorer, address: tuple[str, int], task_status: TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve until cancelled; `task_status.started` gets the base URL (the real port when 0 was asked).
    An address that cannot be bound is the operator's mistake: an OperatorError saying what to do."""
    host, port = address
    app: Callable[..., Awaitable[None]] = Guard(build_app(explorer))
    try:
        async with trio.open_nursery() as nursery:
            binds: list[str] = await nursery.start(partial(serve, app, hypercorn_config(host, port), mode="asgi"))
            url = binds[0]
            log.info("event=http-listening url=%s", url)
            task_status.started(url)
    except* OSError as group:
        error = group.exceptions[0]
        raise OperatorError(
            f"--http {host}:{port}: cannot listen: {getattr(error, 'strerror', None) or error} "
            "(choose another port, or port 0 for any free one)"
        ) from None
