"""The replicated ledger: records, state, transactions and the transition function."""
