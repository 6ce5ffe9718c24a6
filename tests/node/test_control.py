"""The control socket: typed requests answered, bad input answered with an error, never a crash."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import trio

from node.control import (
    AccountInfo,
    AccountRequest,
    ControlClient,
    ControlError,
    ControlRejected,
    ControlResponse,
    StatusRequest,
    serve,
    socket_path,
)
from protocols.encoding import decode, encode


async def handler(request: object) -> object:
    if isinstance(request, AccountRequest):
        return AccountInfo(request.address or b"\x01" * 20, 5, 0, 1, 0)
    if isinstance(request, StatusRequest):
        raise ControlRejected("status is not available in this test")
    raise RuntimeError("boom")


async def test_requests_errors_and_garbage(tmp_path: Path) -> None:
    path = socket_path(tmp_path)
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, path, handler)
        assert path.stat().st_mode & 0o777 == 0o600
        client = ControlClient(tmp_path, timeout_s=5)
        info = await trio.to_thread.run_sync(client.call, AccountRequest(b""))
        assert info == AccountInfo(b"\x01" * 20, 5, 0, 1, 0)
        with pytest.raises(ControlRejected, match="not available"):
            await trio.to_thread.run_sync(client.call, StatusRequest())
        # garbage on the socket gets an error answer and the server keeps serving
        stream = await trio.open_unix_socket(str(path))
        await stream.send_all(struct.pack(">I", 3) + b"\xc1\xc1\xc1")
        header = await stream.receive_some(4)
        (length,) = struct.unpack(">I", header)
        body = b""
        while len(body) < length:
            body += await stream.receive_some(length - len(body))
        answer = decode(ControlResponse, body)
        assert isinstance(answer, ControlError) and "malformed" in answer.message
        await stream.aclose()
        info = await trio.to_thread.run_sync(client.call, AccountRequest(b"\x02" * 20))
        assert info.address == b"\x02" * 20
        nursery.cancel_scope.cancel()
    assert not path.exists()


def test_client_without_a_node_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConnectionError, match="no node is running"):
        ControlClient(tmp_path).call(StatusRequest())


async def test_a_client_that_vanishes_mid_call_does_not_stop_the_server(tmp_path: Path) -> None:
    """A CLI killed during a call resets its connection; that ends that connection only (it used to
    escape the connection handler and stop the node)."""
    path = socket_path(tmp_path)
    request = encode(AccountRequest(b""))
    async with trio.open_nursery() as nursery:
        await nursery.start(serve, path, handler)
        for _ in range(5):
            sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
            await sock.connect(str(path))
            await sock.send(struct.pack(">I", len(request)) + request)
            await trio.sleep(0.01)  # the answer is waiting unread when the client goes: a reset
            sock.close()
        await trio.sleep(0.05)
        client = ControlClient(tmp_path, timeout_s=5)
        info = await trio.to_thread.run_sync(client.call, AccountRequest(b"\x03" * 20))
        assert info.address == b"\x03" * 20
        nursery.cancel_scope.cancel()


def test_every_request_type_has_one_entry_in_the_handler_table() -> None:
    from typing import get_args

    from node.control import ControlRequest
    from node.control_handlers import HANDLERS

    assert set(HANDLERS) == set(get_args(ControlRequest))


async def test_a_request_type_without_a_handler_is_refused_by_name() -> None:
    from node.control_handlers import handle_control

    class Unheard:
        pass

    with pytest.raises(ControlRejected, match="unsupported request Unheard"):
        await handle_control(None, Unheard())  # type: ignore[arg-type]
