"""GossipSub as the v1.1 spec has it, where py-libp2p 0.8.1 departs from it.

Flood publishing. The spec has a node send the messages it publishes itself to every peer subscribed to
the topic (above the publish score threshold), not only to its mesh. py-libp2p sends them to the mesh only,
and a node whose mesh for the topic is empty for a while (it was pruned, the peers back it off) publishes
to nobody, silently: in a 30-node devnet followers' transactions stopped reaching the managers for half a
minute. Relayed messages still go through the mesh only.

Three departures in mesh maintenance made meshes churn without end: in a 30-node devnet about 50 GRAFTs
a second were refused and thousands of "GRAFT flood" penalties were logged, while the chain stalled.

- Opportunistic grafting runs on every heartbeat and grafts two more peers whenever the mesh is at least
  `degree_low`, whatever the scores. The spec does it only when the mesh's median score is poor, every
  minute or so. Here the mesh then grows past `degree_high` within a heartbeat or two and is pruned back:
  a PRUNE and two GRAFTs per topic per second per node. We do not use it: it is off.
- Pruning in the heartbeat does not put the pruned peer in our own backoff table (the spec: "both the
  pruning and the pruned peer add a backoff period"). The pruned peer backs us off, we GRAFT it again at
  once, it refuses with another PRUNE. We add the backoff.
- "GRAFT flood" protection stamps the time a peer PRUNEd *us* and punishes that peer (a penalty and a PRUNE
  back) for GRAFTing us within 10 s. The spec's rule is the other way round (a peer *we* pruned must not
  come back within our backoff), which the library also enforces, correctly, through its backoff table.
  The inverted check is off.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import GossipSub


class SpecMeshGossipSub(GossipSub):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.graft_flood_threshold = 0.0  # the inverted check compares against min(this, backoff): never

    def _perform_opportunistic_grafting(self, topic: str, peers_to_graft: defaultdict[ID, list[str]]) -> int:
        return 0

    def mesh_heartbeat(self) -> tuple[defaultdict[ID, list[str]], defaultdict[ID, list[str]]]:
        peers_to_graft, peers_to_prune = super().mesh_heartbeat()
        for peer, topics in peers_to_prune.items():
            for topic in topics:
                self._add_back_off(peer, topic, False)
        return peers_to_graft, peers_to_prune

    def _get_peers_to_send(
        self, topic_ids: Iterable[str], msg_forwarder: ID, origin: ID, msg_id: bytes | None = None
    ) -> Iterable[ID]:
        topics = list(topic_ids)
        peers = set(super()._get_peers_to_send(topics, msg_forwarder, origin, msg_id))
        if self.pubsub is not None and origin == self.pubsub.my_id:  # our own message: flood publish
            for topic in topics:
                peers.update(p for p in self.pubsub.peer_topics.get(topic, ()) if self._is_gossipsub_peer(p))
            peers.discard(origin)
        return peers
