"""One handler per gossip topic (DESIGN.md section 8, "a shell that stays thin").

Each is a `TopicHandler`: `validate` runs in py-libp2p's relay path and returns the value it decoded (or
`Rejected` with the reason: the message is then neither delivered nor relayed), and `handle` receives that
value in the subscription's task (node/net/gossip.py): each message is decoded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

from node.net.gossip import Rejected
from node.topic_handlers.blocks import BlockTopic
from node.topic_handlers.consensus import ConsensusTopic
from node.topic_handlers.orders import OrderTopic
from node.topic_handlers.peers import PeerRecordTopic
from node.topic_handlers.txs import TxTopic

__all__ = ["BlockTopic", "ConsensusTopic", "OrderTopic", "PeerRecordTopic", "TopicHandler", "TopicHandlers", "TxTopic"]

T = TypeVar("T")


class TopicHandler(Protocol[T]):
    # Whether the topic's messages are batches of items (`P2PHost.publish_item`).
    batched: bool

    def validate(self, peer: str, data: bytes) -> T | Rejected: ...

    async def handle(self, peer: str, value: T) -> None: ...


@dataclass(frozen=True)
class TopicHandlers:
    """The node's handler of each topic of `node.topics.Topics`, under the same names."""

    consensus: ConsensusTopic
    blocks: BlockTopic
    txs: TxTopic
    orders: OrderTopic
    peers: PeerRecordTopic
