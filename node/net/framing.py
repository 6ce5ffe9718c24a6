"""Length-prefixed frames over a libp2p stream: unsigned varint length, then that many bytes.

The same framing as libp2p's own (`libp2p.utils.varint.encode_varint_prefixed`), so a frame is readable by
any libp2p tool. Our reader differs from libp2p's in what it refuses: the length prefix is checked against
the protocol's limit before a byte of the body is buffered, every read has a deadline, and every failure
(a malformed prefix, an oversize frame, a reset, a timeout, a stream ended mid-frame) is one `FrameError`
with a reason, so handlers of untrusted peers have exactly one exception to catch.
"""

from __future__ import annotations

import logging
from typing import Protocol

import trio

log = logging.getLogger(__name__)

# A uvarint for a 64-bit length takes at most 10 bytes; anything longer is malformed (as in libp2p).
MAX_VARINT_BYTES = 10
# Bytes asked of the muxer per read. Yamux hands back what it has buffered, up to this; 64 KiB matches
# its window increments, so bulk transfer does not degrade into many tiny reads.
READ_CHUNK_BYTES = 64 * 1024


class FrameError(Exception):
    """The stream cannot deliver a valid frame: malformed, too large, timed out, reset or ended."""


class FrameTimeout(FrameError):
    """No complete frame within the deadline."""


class FrameTooLarge(FrameError):
    """The peer announced (or we tried to send) a frame above the protocol's limit."""


class StreamClosed(FrameError):
    """The peer closed the stream cleanly between frames (no partial frame was pending)."""


class RawStream(Protocol):
    """The part of libp2p's `INetStream` we use (a test can pass an in-memory fake)."""

    async def read(self, n: int | None = None) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...

    async def reset(self) -> None: ...


def encode_uvarint(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"a varint length cannot be negative: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_uvarint(buffer: bytes | bytearray) -> tuple[int, int] | None:
    """Decode a uvarint at the start of `buffer`: (value, bytes used), or None if more bytes are needed.

    Raises FrameError for a varint longer than MAX_VARINT_BYTES or with a redundant trailing zero byte
    (non-minimal encodings would let one length have several encodings).
    """
    value = 0
    for index in range(min(len(buffer), MAX_VARINT_BYTES)):
        byte = buffer[index]
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index > 0:
                raise FrameError("non-minimal varint length prefix")
            return value, index + 1
    if len(buffer) >= MAX_VARINT_BYTES:
        raise FrameError(f"varint length prefix longer than {MAX_VARINT_BYTES} bytes")
    return None


def encode_frame(payload: bytes, max_frame_bytes: int) -> bytes:
    if len(payload) > max_frame_bytes:
        raise FrameTooLarge(f"frame of {len(payload)} bytes exceeds the limit of {max_frame_bytes}")
    return encode_uvarint(len(payload)) + payload


class FramedStream:
    """A libp2p stream carrying length-prefixed frames, with limits and deadlines.

    `receive()` returns the next frame or raises FrameError; after any FrameError other than StreamClosed the
    stream is unusable and has been reset, so the caller only has to stop. `send()` writes one frame.
    The object is not safe for two concurrent readers or two concurrent writers (one of each is fine).
    """

    def __init__(
        self,
        raw: RawStream,
        peer_id: str,
        protocol_id: str,
        max_frame_bytes: int,
        read_timeout_s: float,
    ) -> None:
        self.raw = raw
        self.peer_id = peer_id
        self.protocol_id = protocol_id
        self.max_frame_bytes = max_frame_bytes
        self.read_timeout_s = read_timeout_s
        self._buffer = bytearray()
        self._broken = False
        self._closed = False

    @property
    def usable(self) -> bool:
        return not (self._broken or self._closed)

    async def send(self, payload: bytes) -> None:
        """Write one frame. Raises FrameTooLarge without writing if it exceeds the limit, FrameError if the
        stream is broken."""
        frame = encode_frame(payload, self.max_frame_bytes)
        if not self.usable:
            raise FrameError(f"stream to peer={self.peer_id} protocol={self.protocol_id} is closed")
        try:
            with trio.fail_after(self.read_timeout_s):
                await self.raw.write(frame)
        except trio.TooSlowError:
            await self.reset()
            raise FrameTimeout(f"writing a frame of {len(payload)} bytes took over {self.read_timeout_s}s") from None
        except Exception as exc:  # libp2p raises a zoo of stream/muxer/connection errors
            await self.reset()
            raise FrameError(f"write failed: {type(exc).__name__}: {exc}") from exc

    @property
    def mid_frame(self) -> bool:
        """Part of a frame has arrived and the rest has not."""
        return bool(self._buffer)

    async def receive(self, timeout_s: float | None = None) -> bytes:
        """The next frame. The deadline (default: the protocol's read timeout) covers the whole frame."""
        if not self.usable:
            raise FrameError(f"stream from peer={self.peer_id} protocol={self.protocol_id} is closed")
        try:
            with trio.fail_after(self.read_timeout_s if timeout_s is None else timeout_s):
                return await self._receive()
        except trio.TooSlowError:
            await self.reset()
            raise FrameTimeout(
                f"no complete frame within {self.read_timeout_s if timeout_s is None else timeout_s}s"
            ) from None
        except StreamClosed:
            self._closed = True
            raise
        except FrameError:
            await self.reset()
            raise

    async def _receive(self) -> bytes:
        while True:
            header = decode_uvarint(self._buffer)
            if header is not None:
                length, used = header
                if length > self.max_frame_bytes:
                    raise FrameTooLarge(f"peer announced a frame of {length} bytes, limit {self.max_frame_bytes}")
                if len(self._buffer) >= used + length:
                    frame = bytes(self._buffer[used : used + length])
                    del self._buffer[: used + length]
                    return frame
            await self._fill(partial=bool(self._buffer))

    async def _fill(self, partial: bool) -> None:
        try:
            chunk = await self.raw.read(READ_CHUNK_BYTES)
        except trio.Cancelled:
            raise
        except Exception as exc:
            name = type(exc).__name__
            if "EOF" in name and not partial:
                raise StreamClosed("peer closed the stream") from exc
            raise FrameError(f"read failed after {len(self._buffer)} buffered bytes: {name}: {exc}") from exc
        if not chunk:
            if partial:
                raise FrameError(f"stream ended inside a frame ({len(self._buffer)} bytes buffered)")
            raise StreamClosed("peer closed the stream")
        self._buffer += chunk

    async def close(self) -> None:
        """Close our side cleanly (the peer reads EOF after our last frame). Never raises."""
        if self._closed or self._broken:
            return
        self._closed = True
        try:
            with trio.move_on_after(self.read_timeout_s):
                await self.raw.close()
        except Exception as exc:
            log.debug("event=stream-close-failed peer=%s protocol=%s error=%r", self.peer_id, self.protocol_id, exc)

    async def reset(self) -> None:
        """Abort the stream (both directions). Never raises."""
        if self._broken:
            return
        self._broken = True
        try:
            with trio.move_on_after(self.read_timeout_s):
                await self.raw.reset()
        except Exception as exc:
            log.debug("event=stream-reset-failed peer=%s protocol=%s error=%r", self.peer_id, self.protocol_id, exc)
