"""Framed stream protocols: request/response on reusable streams, and free-form multi-frame streams.

Two kinds of handlers:
- a request handler `async (peer_id, request) -> response`: one frame in, one frame out, repeated on the
  same stream, because opening a stream costs more than a round trip (reference/py-libp2p.md: ~1,100
  round trips/s on a reused stream, ~250/s with a stream per request). The client keeps idle streams in a
  small pool per (peer, protocol).
- a stream handler `async (FramedStream) -> None`: the handler owns the stream and may send many frames
  (block sync, blob transfer); the client side is `open_stream`.

A response frame starts with a status byte, so a server can refuse one request (`RequestRejected`) without
killing the stream. Every inbound stream is untrusted: frame sizes are capped per protocol, every read has
a deadline, the number of concurrent inbound streams per protocol is capped, and any malformed input ends
only that stream (and costs the peer penalty points), never the host.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from node.net.framing import FramedStream, FrameError, FrameTimeout, FrameTooLarge, StreamClosed

log = logging.getLogger(__name__)

# Default limits of a protocol; each protocol should pass its own (DESIGN.md section 8).
DEFAULT_MAX_FRAME_BYTES = 1 << 20  # one blob chunk or one block with its certificate
DEFAULT_READ_TIMEOUT_S = 10.0  # a frame of 1 MiB takes ~10 ms on loopback; 10 s covers a slow WAN peer
# A server closes a reused request stream after this long without a request (frees the peer's slot).
DEFAULT_IDLE_TIMEOUT_S = 30.0
# Concurrent inbound streams per protocol; beyond this a new stream is reset at once (a peer cannot make
# us hold unbounded tasks and buffers).
DEFAULT_MAX_INBOUND_STREAMS = 64
# The client drops a pooled stream idle longer than this, well before the server's idle timeout closes it,
# so a request never goes out on a stream the server is about to close.
CLIENT_IDLE_EXPIRY_S = DEFAULT_IDLE_TIMEOUT_S / 3
# Idle streams kept per (peer, protocol): concurrent requests beyond this open (and then close) extra ones.
MAX_POOLED_PER_KEY = 4
# Time to open a stream on an existing connection (multistream negotiation: one round trip on loopback).
OPEN_TIMEOUT_S = 5.0
# Failed requests cost the peer this many penalty points (garbage, oversize, wrong status byte).
MALFORMED_PENALTY = 1.0

STATUS_OK = 0
STATUS_ERROR = 1
# An error reason travels back to the client truncated to this, so a server cannot be made to echo much.
MAX_REASON_BYTES = 200


@dataclass(frozen=True)
class StreamLimits:
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S
    max_inbound_streams: int = DEFAULT_MAX_INBOUND_STREAMS


class RequestError(Exception):
    """A request failed: no stream, timeout, reset, oversize or malformed response."""


class RemoteError(RequestError):
    """The peer answered the request with an error (its handler raised `RequestRejected`, or failed)."""


class RequestRejected(Exception):
    """Raised by a request handler to answer with an error reason instead of a response."""


RequestHandler = Callable[[str, bytes], Awaitable[bytes]]
StreamHandler = Callable[[FramedStream], Awaitable[None]]
Misbehaviour = Callable[[str, str], None]  # (peer_id, reason)
OpenRaw = Callable[[str, str], Awaitable[Any]]  # (peer_id, protocol_id) -> libp2p INetStream


@dataclass
class _Registration:
    limits: StreamLimits
    request_handler: RequestHandler | None
    stream_handler: StreamHandler | None
    active: int = 0


def _error_frame(reason: str) -> bytes:
    return bytes([STATUS_ERROR]) + reason.encode("utf-8", "replace")[:MAX_REASON_BYTES]


class StreamService:
    """Serves and opens framed streams for one host. `on_inbound` is what libp2p calls for a new stream."""

    def __init__(self, open_raw: OpenRaw, report: Misbehaviour) -> None:
        self._open_raw = open_raw
        self._report = report
        self._registrations: dict[str, _Registration] = {}
        self._pool: dict[tuple[str, str], list[tuple[FramedStream, float]]] = {}
        # Closing or resetting a stream awaits the muxer; where we cannot wait (a cancelled request, a full
        # pool) the stream is handed to this nursery, which the host sets while it runs.
        self.nursery: trio.Nursery | None = None

    def _spawn(self, action: Callable[[], Awaitable[None]]) -> None:
        if self.nursery is not None:
            self.nursery.start_soon(action)

    def limits_for(self, protocol_id: str) -> StreamLimits:
        registration = self._registrations.get(protocol_id)
        return registration.limits if registration else StreamLimits()

    def register(
        self,
        protocol_id: str,
        limits: StreamLimits,
        request_handler: RequestHandler | None = None,
        stream_handler: StreamHandler | None = None,
    ) -> None:
        if not protocol_id.startswith("/"):
            raise ValueError(f"a protocol id starts with '/', got {protocol_id!r}")
        if (request_handler is None) == (stream_handler is None):
            raise ValueError("give exactly one of request_handler and stream_handler")
        self._registrations[protocol_id] = _Registration(limits, request_handler, stream_handler)

    # --- serving ----------------------------------------------------------------------------------

    async def on_inbound(self, raw: Any, peer_id: str, protocol_id: str) -> None:
        """Serve one inbound stream. Never raises (libp2p runs this inside the connection's task group,
        so an exception here would tear down the connection)."""
        registration = self._registrations.get(protocol_id)
        if registration is None:
            await _quiet_reset(raw)
            return
        limits = registration.limits
        stream = FramedStream(raw, peer_id, protocol_id, limits.max_frame_bytes, limits.read_timeout_s)
        if registration.active >= limits.max_inbound_streams:
            log.warning(
                "event=inbound-stream-refused peer=%s protocol=%s active=%d", peer_id, protocol_id, registration.active
            )
            await stream.reset()
            return
        registration.active += 1
        try:
            if registration.request_handler is not None:
                await self._serve_requests(stream, registration.request_handler, limits)
            else:
                assert registration.stream_handler is not None
                await registration.stream_handler(stream)
                await stream.close()
        except FrameError as exc:
            self._misbehaved(stream, exc)
        except Exception:
            log.exception("event=stream-handler-failed peer=%s protocol=%s", peer_id, protocol_id)
            await stream.reset()
        finally:
            registration.active -= 1

    async def _serve_requests(self, stream: FramedStream, handler: RequestHandler, limits: StreamLimits) -> None:
        while True:
            try:
                request = await stream.receive(timeout_s=limits.idle_timeout_s)
            except StreamClosed:
                await stream.close()
                return
            except FrameTimeout:
                if stream.mid_frame:
                    raise  # a request that started and never finished: the peer's fault
                return  # an idle pooled stream the client no longer uses (receive has reset it): not a fault
            try:
                response = bytes([STATUS_OK]) + await handler(stream.peer_id, request)
            except RequestRejected as exc:
                response = _error_frame(str(exc))
            except Exception as exc:
                log.exception("event=request-handler-failed peer=%s protocol=%s", stream.peer_id, stream.protocol_id)
                response = _error_frame(f"internal error: {type(exc).__name__}")
            if len(response) > stream.max_frame_bytes:
                log.error(
                    "event=response-too-large peer=%s protocol=%s bytes=%d limit=%d",
                    stream.peer_id,
                    stream.protocol_id,
                    len(response),
                    stream.max_frame_bytes,
                )
                response = _error_frame("response too large")
            await stream.send(response)

    def _misbehaved(self, stream: FramedStream, exc: FrameError) -> None:
        log.info(
            "event=stream-protocol-error peer=%s protocol=%s reason=%r", stream.peer_id, stream.protocol_id, str(exc)
        )
        self._report(stream.peer_id, f"{stream.protocol_id}: {exc}")

    # --- client -----------------------------------------------------------------------------------

    async def open_stream(self, peer_id: str, protocol_id: str, limits: StreamLimits | None = None) -> FramedStream:
        limits = limits or self.limits_for(protocol_id)
        try:
            with trio.fail_after(OPEN_TIMEOUT_S):
                raw = await self._open_raw(peer_id, protocol_id)
        except trio.TooSlowError:
            raise RequestError(f"opening {protocol_id} to peer={peer_id} took over {OPEN_TIMEOUT_S}s") from None
        except Exception as exc:
            raise RequestError(f"cannot open {protocol_id} to peer={peer_id}: {type(exc).__name__}: {exc}") from exc
        return FramedStream(raw, peer_id, protocol_id, limits.max_frame_bytes, limits.read_timeout_s)

    def _take_pooled(self, key: tuple[str, str]) -> FramedStream | None:
        streams = self._pool.get(key)
        now = trio.current_time()
        while streams:
            stream, last_used = streams.pop()
            if stream.usable and now - last_used < CLIENT_IDLE_EXPIRY_S:
                return stream
            self._spawn(stream.close)
        return None

    def _give_back(self, key: tuple[str, str], stream: FramedStream) -> None:
        streams = self._pool.setdefault(key, [])
        if stream.usable and len(streams) < MAX_POOLED_PER_KEY:
            streams.append((stream, trio.current_time()))
        else:
            self._spawn(stream.close)

    def forget_peer(self, peer_id: str) -> None:
        """Drop pooled streams to a peer (it disconnected: its streams are dead)."""
        for key in [k for k in self._pool if k[0] == peer_id]:
            del self._pool[key]

    async def request(
        self, peer_id: str, protocol_id: str, payload: bytes, timeout_s: float, limits: StreamLimits | None = None
    ) -> bytes:
        key = (peer_id, protocol_id)
        limits = limits or self.limits_for(protocol_id)
        if len(payload) > limits.max_frame_bytes:
            raise RequestError(
                f"request of {len(payload)} bytes exceeds the {protocol_id} limit of {limits.max_frame_bytes}"
            )
        stream: FramedStream | None = None
        done = False
        try:
            with trio.fail_after(timeout_s):
                stream = self._take_pooled(key)
                if stream is not None:
                    try:
                        await stream.send(payload)
                    except FrameError:
                        # A pooled stream can die unnoticed (the peer restarted or dropped the connection);
                        # the request was not sent, so sending it on a fresh stream is safe.
                        stream = None
                if stream is None:
                    stream = await self.open_stream(peer_id, protocol_id, limits)
                    await stream.send(payload)
                response = await stream.receive(timeout_s=timeout_s)
            done = True
        except trio.TooSlowError:
            raise RequestError(f"{protocol_id} request to peer={peer_id} took over {timeout_s}s") from None
        except FrameTooLarge as exc:
            self._report(peer_id, f"{protocol_id}: {exc}")
            raise RequestError(str(exc)) from None
        except FrameError as exc:
            raise RequestError(f"{protocol_id} request to peer={peer_id} failed: {exc}") from None
        finally:
            if stream is not None and not done:
                self._spawn(stream.reset)
        assert stream is not None
        if not response or response[0] not in (STATUS_OK, STATUS_ERROR):
            self._spawn(stream.reset)
            self._report(peer_id, f"{protocol_id}: malformed response status")
            raise RequestError(f"malformed {protocol_id} response from peer={peer_id}")
        self._give_back(key, stream)
        if response[0] == STATUS_ERROR:
            raise RemoteError(response[1:].decode("utf-8", "replace"))
        return response[1:]


async def _quiet_reset(raw: Any) -> None:
    try:
        with trio.move_on_after(1):
            await raw.reset()
    except Exception as exc:  # the stream may already be gone: nothing left to do
        log.debug("event=stream-reset-failed error=%r", exc)
