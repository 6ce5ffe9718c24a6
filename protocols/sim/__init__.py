"""A deterministic discrete-event network simulator for the consensus state machines.

Pure like the rest of `protocols/`: simulated time, a seeded `random.Random`, no clocks, no sockets.
The node shell will reuse it for its own tests.

- `scenario`: what a run is made of (network, faults, load), and `random_scenario(seed, ...)`.
- `simulation`: the event loop, the validators, safety checks at every commit.
- `byzantine`: how Byzantine validators corrupt what they send.
- `kvapp`: a small deterministic application with invalid transactions and deadlines.
- `report`: liveness summaries (heights and rounds after a heal).
"""
