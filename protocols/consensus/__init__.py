"""BFT consensus among workerpool managers (DESIGN.md section 5): Tendermint, sans-IO.

- `messages`: the signed wire types (proposals, votes) and blocks, certificates, evidence.
- `validators`: the validator set, quorum sizes and the round-robin proposer.
- `blocks`: block ids, block validity and commit certificates.
- `votes`: per-height bookkeeping of received votes, bounded.
- `mempool`: pending transactions, deduplicated, checked, bounded.
- `application`: the interface the ledger implements for consensus.
- `tendermint`: the state machine of Algorithm 1 of "The latest gossip on BFT consensus".
"""
