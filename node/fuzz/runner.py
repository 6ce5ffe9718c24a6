"""The mutational engine: a corpus, a mutation loop, progress lines and crash files.

A campaign starts from the corpus directory (or, if it is empty or not given, from the target's seeds,
written there), then repeatedly picks an input, mutates it with the target's mutator and executes it. An
input that shows a feature no input showed before joins the corpus (and the directory). An exception is
a crash: its input is minimised, written to a crash file with its replay command, and the campaign goes
on; a second crash with the same signature is counted, not written again.

With a fixed seed and `runs` (not a duration) a campaign of a deterministic target is repeatable, which
is how the test suite runs every target.
"""

from __future__ import annotations

import random
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from node.fuzz.corpus import corpus_dir, load_corpus, save_input, write_crash
from node.fuzz.minimise import minimise, signature
from node.fuzz.targets import target_class
from node.fuzz.targets.base import Target

# Progress goes out at most this often (and at each crash), like libFuzzer's status lines.
REPORT_EVERY_S = 2.0
# Half the picks come from the newest entries: what just found something new is likeliest to again.
RECENT = 64
# Donors offered to a mutation for splicing.
DONORS = 2


@dataclass(frozen=True)
class Campaign:
    target: str
    seed: int = 0
    runs: int | None = None  # executions, seeds included; None: until the duration ends
    duration_s: float | None = None  # None: until `runs`
    corpus: Path | None = None
    crash_dir: Path = Path("fuzz-crashes")
    minimise_s: float = 10.0


@dataclass
class Stats:
    target: str
    executions: int = 0
    elapsed_s: float = 0.0
    corpus: int = 0
    features: int = 0
    grown: int = 0  # mutated inputs that showed something new (the seeds not counted)
    crashes: int = 0  # every failing execution
    crash_files: list[Path] = field(default_factory=list)  # one per signature

    @property
    def rate(self) -> float:
        return self.executions / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self, event: str) -> str:
        return (
            f"#{self.executions} {event:<6} exec/s {self.rate:.0f} corpus {self.corpus} (+{self.grown}) "
            f"features {self.features} crashes {self.crashes} ({len(self.crash_files)} unique) "
            f"time {self.elapsed_s:.0f}s"
        )


class _Loop:
    """One campaign's state; `run_campaign` is its only user."""

    def __init__(self, campaign: Campaign, target: Target, out: TextIO) -> None:
        self.campaign = campaign
        self.target = target
        self.out = out
        self.rng = random.Random(campaign.seed)
        self.corpus: list[bytes] = []
        self.seen: set[str] = set()
        self.signatures: set[str] = set()
        self.stats = Stats(campaign.target)
        self.started = time.monotonic()
        self.reported = self.started

    def done(self) -> bool:
        c = self.campaign
        if c.runs is not None and self.stats.executions >= c.runs:
            return True
        return c.duration_s is not None and time.monotonic() - self.started >= c.duration_s

    def run_one(self, data: bytes, mutated: bool = True) -> None:
        self.stats.executions += 1
        try:
            features = self.target.execute(data)
        except Exception as exc:
            self.crashed(data, exc)
            return
        new = features - self.seen
        if new:
            self.seen |= new
            self.corpus.append(data)
            self.stats.grown += mutated
            if self.campaign.corpus is not None:
                save_input(self.campaign.corpus, data)
        self.report("NEW" if new else "", force=False)

    def crashed(self, data: bytes, exc: Exception) -> None:
        self.stats.crashes += 1
        sig = signature(exc)
        if sig in self.signatures:
            return
        self.signatures.add(sig)
        small = minimise(self.target, data, sig, self.campaign.minimise_s)
        path = write_crash(self.campaign.crash_dir, self.target.name, small, sig, "".join(traceback.format_exception(exc)))
        self.stats.crash_files.append(path)
        self.report("CRASH", force=True)
        print(f"  crash: {sig}\n  input: {len(data)} bytes, minimised to {len(small)}\n  replay: pocnet fuzz replay {path}",
              file=self.out, flush=True)

    def report(self, event: str, force: bool) -> None:
        now = time.monotonic()
        if force or now - self.reported >= REPORT_EVERY_S:
            self.reported = now
            self.sync_stats(now)
            print(self.stats.line(event or "pulse"), file=self.out, flush=True)

    def sync_stats(self, now: float) -> None:
        self.stats.elapsed_s = now - self.started
        self.stats.corpus = len(self.corpus)
        self.stats.features = len(self.seen)

    def pick(self) -> bytes:
        pool = self.corpus[-RECENT:] if self.rng.random() < 0.5 else self.corpus
        return self.rng.choice(pool)


def initial_inputs(target: Target, corpus: Path | None) -> list[bytes]:
    """The corpus directory's inputs; if it has none (or there is none), the target's seeds, saved there."""
    inputs = load_corpus(corpus_dir(corpus)) if corpus is not None else []
    if inputs:
        return inputs
    seeds = target.seeds()
    if corpus is not None:
        for seed in seeds:
            save_input(corpus, seed)
    return seeds


def run_campaign(campaign: Campaign, out: TextIO | None = None) -> Stats:
    """Run one campaign to its end (runs or duration, or Ctrl-C) and return its figures; progress goes to
    `out` (default: standard output)."""
    out = out if out is not None else sys.stdout
    target = target_class(campaign.target)()
    try:
        loop = _Loop(campaign, target, out)
        print(f"fuzzing {campaign.target}: seed {campaign.seed}, engine mutational", file=out, flush=True)
        try:
            _run(loop, target, initial_inputs(target, campaign.corpus))
        except KeyboardInterrupt:
            print("interrupted", file=out, flush=True)
        loop.sync_stats(time.monotonic())
        print(loop.stats.line("DONE"), file=out, flush=True)
        try:
            lines = target.report()
        except Exception as exc:
            loop.crashed(b"", exc)
            lines = []
        for line in lines:
            print(line, file=out, flush=True)
        return loop.stats
    finally:
        target.close()


def _run(loop: _Loop, target: Target, inputs: list[bytes]) -> None:
    for data in inputs:
        if loop.done():
            return
        loop.run_one(data, mutated=False)
    loop.report("INITED", force=True)
    if not loop.corpus:  # every initial input crashed: nothing to mutate
        return
    while not loop.done():
        parent = loop.pick()
        donors = [loop.rng.choice(loop.corpus) for _ in range(DONORS)]
        loop.run_one(target.mutate(loop.rng, parent, donors))
