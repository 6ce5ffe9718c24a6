"""`/pocnet/sync/1`: decided blocks with their certificates, for a node that is behind (DESIGN.md section 5).

A request names the first height wanted; the answer holds consecutive decided blocks from there, as many as
fit the frame. The receiver trusts nothing but the certificates, which consensus checks block by block.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from node.net.streams import RequestHandler, RequestRejected
from node.storage import Store
from protocols.consensus.messages import DecidedBlock
from protocols.encoding import U64, DecodeError, MaxLen, Range, decode, encode, wire

SYNC_PROTOCOL = "/pocnet/sync/1"
# A response frame stays well under the stream's frame limit; blocks are at most ~900 KB each, so a
# response always holds at least one.
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
MAX_FRAME_BYTES = MAX_RESPONSE_BYTES + 64 * 1024
MAX_BLOCKS_PER_RESPONSE = 256
SYNC_TIMEOUT_S = 10.0


@wire(tag=110)
@dataclass(frozen=True)
class SyncRequest:
    from_height: Annotated[int, Range(1, (1 << 64) - 1)]
    max_blocks: Annotated[int, Range(1, MAX_BLOCKS_PER_RESPONSE)]


@wire(tag=111)
@dataclass(frozen=True)
class SyncResponse:
    blocks: Annotated[tuple[DecidedBlock, ...], MaxLen(MAX_BLOCKS_PER_RESPONSE)]
    tip_height: U64  # the server's height, so a client knows whether to ask again


def answer(store: Store, request_bytes: bytes) -> bytes:
    """Serve one request from the store (raises DecodeError on a malformed request)."""
    request = decode(SyncRequest, request_bytes, max_size=1024)
    tip = store.tip()
    blocks: list[DecidedBlock] = []
    size = 0
    height = request.from_height
    tip_height = tip.height if tip else 0
    while len(blocks) < request.max_blocks and height <= tip_height:  # (SQLite integers end at 2^63)
        found = store.decided_block(height)
        if found is None:
            break
        item = DecidedBlock(*found)
        item_size = len(encode(item))
        if blocks and size + item_size > MAX_RESPONSE_BYTES:
            break
        blocks.append(item)
        size += item_size
        height += 1
    return encode(SyncResponse(tuple(blocks), tip_height))


def sync_handler(store: Store) -> RequestHandler:
    """The `/pocnet/sync/1` request handler over `store`: a malformed request is refused with the reason."""

    async def serve_sync(peer: str, request: bytes) -> bytes:
        try:
            return answer(store, request)
        except DecodeError as exc:
            raise RequestRejected(f"malformed sync request: {exc.reason}") from None

    return serve_sync


def parse_response(data: bytes) -> SyncResponse:
    return decode(SyncResponse, data, max_size=MAX_FRAME_BYTES)
