"""The coverage-guided engine: libFuzzer through atheris (the optional extra `pocnet[fuzz]`).

atheris instruments the bytecode of `protocols` and `node` as they are imported, so libFuzzer keeps an
input when it reaches new branches of our Python code (not of msgspec's or msgpack's C code: the
differential oracle of the `decode` target covers those). Mutation stays structure-aware: half of the
mutations are the target's own (msgpack trees), half libFuzzer's byte-level ones.

libFuzzer stops at the first exception and owns the process's exit. We keep our own crash handling
instead (a failing input is minimised, written as a crash file with its replay command, and the campaign
goes on), and stop the process ourselves when the runs or the duration are spent, after saving coverage.
"""

from __future__ import annotations

import os
import random
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Inputs kept for splicing in the custom mutator: the most recent ones libFuzzer handed us.
RECENT_INPUTS = 64
# libFuzzer's cap on input length (the default, 4096, would cut consensus schedules and big blocks).
MAX_LEN = 64 * 1024
# How often (executions) the engine checks its duration.
CLOCK_EVERY = 64


def run_atheris(spec: dict[str, Any], on_exit: Callable[[], None]) -> None:
    """Run a campaign described by `Campaign`'s fields under libFuzzer; exits the process at the end."""
    import atheris

    # The fuzzer's own modules are imported before instrumenting: their coverage says nothing of pocnet's.
    from node.fuzz.corpus import corpus_dir, save_input, write_crash
    from node.fuzz.minimise import minimise, signature
    from node.fuzz.runner import initial_inputs
    from node.fuzz.targets import target_class

    with atheris.instrument_imports(include=["protocols", "node"]):
        target = target_class(spec["target"])()
    corpus = corpus_dir(spec["corpus"])  # libFuzzer keeps its corpus in a directory: the CLI always gives one
    initial_inputs(target, corpus)  # seeds the directory if it is empty
    crash_dir = Path(spec["crash_dir"])
    recent: list[bytes] = []
    seen: set[str] = set()
    counters = {"runs": 0, "crashes": 0}
    started = time.monotonic()
    runs, duration = spec.get("runs"), spec.get("duration_s")

    def finish() -> None:
        elapsed = time.monotonic() - started
        print(f"#{counters['runs']} DONE exec/s {counters['runs'] / max(elapsed, 1e-9):.0f} crashes {counters['crashes']} "
              f"({len(seen)} unique) time {elapsed:.0f}s", flush=True)
        target.close()
        on_exit()
        sys.stdout.flush()
        os._exit(1 if seen else 0)  # libFuzzer's own exit would skip Python's cleanup, coverage included

    def test_one_input(data: bytes) -> None:
        counters["runs"] += 1
        recent.append(data)
        del recent[:-RECENT_INPUTS]
        try:
            target.execute(data)
        except Exception as exc:
            counters["crashes"] += 1
            sig = signature(exc)
            if sig not in seen:
                seen.add(sig)
                small = minimise(target, data, sig, spec.get("minimise_s", 10.0))
                path = write_crash(crash_dir, target.name, small, sig, "".join(traceback.format_exception(exc)))
                save_input(corpus, small)
                print(f"  crash: {sig}\n  replay: pocnet fuzz replay {path}", flush=True)
        if runs is not None and counters["runs"] >= runs:
            finish()
        if duration is not None and counters["runs"] % CLOCK_EVERY == 0 and time.monotonic() - started >= duration:
            finish()

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5 or not data:
            return atheris.Mutate(data, max_size)
        donors = [rng.choice(recent)] if recent else []
        return target.mutate(rng, data, donors)[:max_size]

    argv = [sys.argv[0], str(corpus), f"-seed={spec.get('seed', 0) + 1}", f"-max_len={MAX_LEN}", "-rss_limit_mb=4096"]
    atheris.Setup(argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()
    finish()
