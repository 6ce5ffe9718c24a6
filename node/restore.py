"""A node's ledger at start: the committed state and tip from its store, or the genesis on first start."""

from __future__ import annotations

from node.storage import Store
from protocols.chain import LedgerApplication
from protocols.consensus.blocks import ChainTip, genesis_tip
from protocols.genesis import Genesis
from protocols.ledger.ledger import Ledger, genesis_state
from protocols.ledger.state import LedgerState


def restore_ledger(genesis: Genesis, store: Store) -> tuple[LedgerApplication, ChainTip]:
    """The ledger application over the stored state, and the tip it follows. On first start the genesis
    state is written to the store, so a restart reads it back like any other."""
    ledger = Ledger.from_genesis(genesis)
    ledger.state = _load_state(genesis, store)
    tip = store.tip() or genesis_tip(genesis.genesis_hash, genesis.genesis_time_ms)
    return LedgerApplication(ledger, last_block_time=tip.time, max_tx_bytes=genesis.params.max_tx_bytes), tip


def _load_state(genesis: Genesis, store: Store) -> LedgerState:
    stored = dict(store.load_state())
    if stored or store.tip() is not None:
        return LedgerState(stored)
    state = genesis_state(genesis)
    store.write_genesis_state(state.items())
    return state
