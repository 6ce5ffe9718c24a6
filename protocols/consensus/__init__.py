"""BFT consensus among workerpool managers (DESIGN.md section 5): Tendermint, sans-IO.

- `messages`: the wire types (tags 60-65): blocks, certificates, signed proposals and votes, evidence.
- `validators`: the validator set, quorum sizes and the round-robin proposer.
- `config`: one node's timeouts and re-broadcast interval (the chain's rules are `protocols.chain_params`).
- `blocks`: block ids, block validity (the paper's valid(v)) and commit certificates.
- `votes`: per-height bookkeeping of received proposals and votes, bounded.
- `mempool`: pending transactions, deduplicated, checked, bounded.
- `evidence`: checking proof that a validator signed two different votes.
- `application`: the interface the ledger implements for consensus.
- `actions`: what the state machine asks its shell to do, and its timer types.
- `tendermint`: the state machine of Algorithm 1 of "The latest gossip on BFT consensus".
- `rebroadcast`, `idle`, `restore`: what a real network needs beside the algorithm: re-sending what gossip
  lost, idle heights that wait for something to put in a block, and the write-ahead log after a restart.
"""
