"""A deterministic discrete-event network simulator for the consensus state machines.

Pure like the rest of `protocols/`: simulated time, a seeded `random.Random`, no clocks, no sockets.
The node shell will reuse it for its own tests.
"""
