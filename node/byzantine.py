"""A Byzantine manager, for tests and chaos runs (`pocnet node --byzantine MODE`), like the worker's
`--dishonest`.

The node runs its real consensus state machine; what it publishes on the consensus topic goes through
`ByzantineHost`, which corrupts it with the simulator's `ByzantineSender` (protocols/sim/byzantine.py) and
signs the corruption with the node's real key, so it passes every signature check: it is what a validator
that controls its key can do. On gossip a message reaches every peer, so where the simulator sends two
conflicting messages to two halves of the peers, this node publishes both: every validator sees the
equivocation and can prove it. Modes:

- `equivocate`: two different proposals and two different votes each time;
- `double-vote`: two different votes each time (proposals are honest);
- `unknown-blocks`: votes for blocks nobody proposed, also in later rounds;
- `garbage`: undecodable bytes instead of every consensus message (the peers penalise and ban it);
- `silent`: nothing at all;
- `chaos`: any of the first four, chosen per message.

Everything else (sync, blocks, transactions, orders, the control socket) is the honest node's.
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any

from protocols.consensus.messages import decode_message
from protocols.crypto import Keypair
from protocols.encoding import encode
from protocols.sim.byzantine import ByzantineSender
from protocols.sim.scenario import Behaviour

log = logging.getLogger(__name__)

GARBAGE = "garbage"
MODES = (*(b.value for b in Behaviour), GARBAGE)
# Garbage messages are about the size of a vote, so they cost the peers what a vote would.
GARBAGE_BYTES = 160
# The simulator addresses peers by index; gossip has one audience, seen as two halves for the split.
HALVES = [0, 1]


class ByzantineHost:
    """Stands in for the node's `P2PHost` in the consensus driver: the same object in every respect
    (attributes are looked up on the real host) except what `publish` sends on the consensus topic."""

    def __init__(self, host: Any, mode: str, keypair: Keypair, chain_id: str, consensus_topic: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown Byzantine mode {mode!r}: choose from {', '.join(MODES)}")
        self._host = host
        self._mode = mode
        self._topic = consensus_topic
        rng = random.Random(os.urandom(8))
        self._rng = rng
        self._sender = None if mode == GARBAGE else ByzantineSender(Behaviour(mode), keypair, chain_id, rng)
        log.warning("event=byzantine-mode mode=%s", mode)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._host, name)

    async def publish(self, topic: str, data: bytes, *, urgent: bool = False) -> None:
        if topic != self._topic:
            await self._host.publish(topic, data, urgent=urgent)
            return
        if self._sender is None:
            await self._host.publish(topic, self._rng.randbytes(GARBAGE_BYTES), urgent=urgent)
            return
        sent: list[bytes] = []
        for _, message in self._sender.corrupt(decode_message(data), HALVES):
            encoded = encode(message)
            if encoded not in sent:
                sent.append(encoded)
                await self._host.publish(topic, encoded, urgent=urgent)
