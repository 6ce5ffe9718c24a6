"""Pure helpers of the protocol fuzzer (`pocnet fuzz`, node/fuzz/): scenes to start from and the oracles
every input is checked against. No IO, no clock: the shell in node/fuzz/ runs them."""
