"""The node's networking layer: one py-libp2p host (TCP + Noise + Yamux, GossipSub v1.1) behind a small
trio API: gossip with validation before relay and publish batching, framed request/response and
multi-frame stream protocols, peer penalties, bounded shutdown. Start at `host.open_host`."""

from node.net.batching import BatchError, pack_batch, unpack_batch
from node.net.config import BatchConfig, GossipConfig, HostConfig
from node.net.framing import FramedStream, FrameError, FrameTimeout, FrameTooLarge, StreamClosed
from node.net.gossip import Rejected, SubscriptionStats
from node.net.host import P2PHost, open_host
from node.net.identity import PeerId, peer_id_of_seed, public_key_of
from node.net.streams import RemoteError, RequestError, RequestRejected, StreamLimits

__all__ = [
    "BatchConfig",
    "BatchError",
    "FrameError",
    "FrameTimeout",
    "FrameTooLarge",
    "FramedStream",
    "GossipConfig",
    "HostConfig",
    "P2PHost",
    "PeerId",
    "Rejected",
    "RemoteError",
    "RequestError",
    "RequestRejected",
    "StreamClosed",
    "StreamLimits",
    "SubscriptionStats",
    "open_host",
    "pack_batch",
    "peer_id_of_seed",
    "public_key_of",
    "unpack_batch",
]
