"""The `ledger` target: mutated transactions, re-signed so that they reach the ledger's rules."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from node.fuzz.targets.base import Target, feature
from protocols.crypto import sign
from protocols.encoding import DecodeError, encode
from protocols.fuzz.market import ACTORS, CHAIN_ID, KEYS, SCENE_BODIES, scene, sign_next
from protocols.fuzz.oracles import check_apply, checked_decode
from protocols.ledger.transactions import CancelOrder, MatchOrders, Transaction

# Whose key signed an order, by public key: a mutated order is re-signed by the same actor.
_ACTOR_BY_KEY = {KEYS[name].public_key: name for name in ACTORS}


def resigned_order(order: Any) -> Any:
    """The order signed again by the actor whose key signed it (if it is one of ours), so a mutated
    price or restriction is judged by the matching rules, not refused for its signature."""
    if order is None:
        return None
    actor = _ACTOR_BY_KEY.get(order.signature.public_key)
    return sign(KEYS[actor], CHAIN_ID, order) if actor is not None else order


def resigned_body(body: Any) -> Any:
    """`body` with the orders it carries re-signed by their signers."""
    if isinstance(body, MatchOrders):
        return MatchOrders(*(resigned_order(o) for o in (body.app_order, body.dataset_order, body.workerpool_order, body.request_order)))
    if isinstance(body, CancelOrder):
        return replace(body, order=resigned_order(body.order))
    return body


class LedgerTarget(Target):
    """Ledger `apply` on a realistic state: registered assets, deals with tasks in every state, contributions.

    Input: a byte choosing the sender among the scene's actors, a byte choosing the block time among the
    deadlines' edges, then a signed transaction. The scene (protocols/fuzz/market.py) has a deal whose task
    is REVEALING, one whose task is ACTIVE with a contribution, and a fresh one of volume 2. Each input is
    applied twice to a fresh copy of it: as received (almost always a bad signature or nonce once mutated),
    then with its orders re-signed by their signers and the whole re-signed by the chosen sender with the
    nonce the ledger expects, which drives the mutated body through its handler.
    Oracles, on every input and both applications:
    - `apply` returns an outcome, never raises, and does not modify the state it is given;
    - the ledger's outcome equals the pure function's (code and created id);
    - a rejected transaction writes nothing and leaves the state digest unchanged;
    - the total supply (balances plus frozen funds) never changes;
    - no order named by a match is consumed beyond its volume.
    """

    name = "ledger"
    header = 2
    focus = (3,)  # Transaction = [tag, version, nonce, body, signature]: mutate the body, it gets re-signed

    def seeds(self) -> list[bytes]:
        s = scene()
        seeds = []
        for sender, _, make_body in SCENE_BODIES:
            tx = encode(sign_next(s.ledger(), sender, make_body(s)))
            seeds += [bytes([ACTORS.index(sender), time]) + tx for time in range(len(s.block_times))]
        return seeds

    def execute(self, data: bytes) -> set[str]:
        s = scene()
        head = data[: self.header].ljust(self.header, b"\0")
        sender = ACTORS[head[0] % len(ACTORS)]
        block_time = s.block_times[head[1] % len(s.block_times)]
        tx = checked_decode(Transaction, data[self.header :])
        if isinstance(tx, DecodeError):
            return {feature("undecodable", tx.reason.split(":")[0])}
        ledger = s.ledger()
        kind = type(tx.body).__name__
        received = check_apply(ledger, tx, block_time)
        resigned = check_apply(ledger, sign_next(ledger, sender, resigned_body(tx.body)), block_time)
        return {feature(kind, "as-received", received.code), feature(kind, "re-signed", resigned.code, resigned.detail)}
