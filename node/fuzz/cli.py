"""`pocnet fuzz`: list targets, generate seed corpora, run campaigns, replay crashes.

Registered by `add_parser(commands)` from node/cli.py. Operator mistakes (unknown target, bad numbers,
a corpus path that is a file, a crash file that is not one) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import IO

from node.fuzz.corpus import CorpusError, corpus_dir, read_crash, save_input
from node.fuzz.report import coverage_available, report_coverage
from node.fuzz.targets import TARGETS, UnknownTarget, target_class

EXIT_USAGE = 2
# Without --runs or --duration a campaign runs for this long.
DEFAULT_DURATION_S = 60.0
# Targets that run under atheris when it is installed. `network` drives real libp2p hosts from a thread:
# libFuzzer's coverage of that is noise, so it always runs the mutational engine.
ATHERIS_TARGETS = ("decode", "ledger", "matching", "consensus", "simulation", "node")
ACTIONS = ("list", "seeds", "replay")


class _Usage(Exception):
    """An operator mistake; the message is the one line to print."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    fuzz = commands.add_parser(
        "fuzz",
        help="fuzz the protocol: decoders, ledger, consensus, a node, the network",
        description="Fuzz a target: `pocnet fuzz list`, `pocnet fuzz TARGET|all [options]`, "
        "`pocnet fuzz seeds TARGET --corpus DIR`, `pocnet fuzz replay CRASH_FILE`.",
    )
    fuzz.add_argument("what", metavar="TARGET|all|list|seeds|replay", help="a target to fuzz (all: each in turn), or an action")
    fuzz.add_argument("arg", nargs="?", metavar="TARGET|FILE", help="seeds: the target; replay: the crash file")
    fuzz.add_argument("--duration", type=float, metavar="S", help=f"seconds to run (default {DEFAULT_DURATION_S:.0f} unless --runs)")
    fuzz.add_argument("--runs", type=int, metavar="N", help="executions to run, seeds included (split across jobs)")
    fuzz.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (job i uses N + i)")
    fuzz.add_argument("--corpus", metavar="DIR", help="corpus directory: read at start, grown inputs saved there (with all: one subdirectory per target)")
    fuzz.add_argument("--crash-dir", default="fuzz-crashes", metavar="DIR", help="where crash files go (default ./fuzz-crashes)")
    fuzz.add_argument("--jobs", type=int, default=1, metavar="N", help="parallel fuzzing processes (default 1)")
    fuzz.add_argument("--engine", choices=("auto", "atheris", "mutational"), default="auto",
                      help="auto: atheris (coverage-guided) if installed, else the pure-Python mutational engine")
    fuzz.add_argument("--no-coverage", action="store_true", help="skip the statement coverage report")
    fuzz.set_defaults(run=cmd_fuzz)


def cmd_fuzz(args: argparse.Namespace) -> int:
    try:
        if args.what == "list":
            return _list()
        if args.what == "seeds":
            return _seeds(args)
        if args.what == "replay":
            return _replay(args)
        return _campaign(args)
    except (_Usage, UnknownTarget, CorpusError) as exc:
        print(f"pocnet: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _list() -> int:
    for name in TARGETS:
        print(f"{name:<10} {target_class(name).summary()}")
    return 0


def _seeds(args: argparse.Namespace) -> int:
    if not args.arg:
        raise _Usage("seeds: name a target, e.g. `pocnet fuzz seeds decode --corpus corpus/decode`")
    if not args.corpus:
        raise _Usage("seeds: give --corpus DIR, the directory to write the seeds to")
    target = target_class(args.arg)()
    try:
        directory = corpus_dir(args.corpus)
        seeds = target.seeds()
        for seed in seeds:
            save_input(directory, seed)
    finally:
        target.close()
    print(f"{len(seeds)} seeds of {args.arg} written to {directory}")
    return 0


def _replay(args: argparse.Namespace) -> int:
    if not args.arg:
        raise _Usage("replay: give the crash file, e.g. `pocnet fuzz replay fuzz-crashes/crash-decode-....json`")
    crash = read_crash(args.arg)
    target = target_class(crash.target)()
    try:
        target.execute(crash.data)
    except Exception:
        traceback.print_exc()
        print(f"still fails: {crash.signature}", file=sys.stderr)
        return 1
    finally:
        target.close()
    print(f"{crash.target}: the input of {args.arg} runs clean now (was: {crash.signature})")
    return 0


def _engine(args: argparse.Namespace, target: str) -> str:
    has_atheris = importlib.util.find_spec("atheris") is not None
    if args.engine == "atheris" and not has_atheris:
        raise _Usage("--engine atheris: atheris is not installed; `pip install 'pocnet[fuzz]'` or use --engine mutational")
    if args.engine == "atheris" and target not in ATHERIS_TARGETS:
        if args.what != "all":
            raise _Usage(f"--engine atheris: the {target} target runs only with --engine mutational")
        return "mutational"
    if args.engine == "auto":
        return "atheris" if has_atheris and target in ATHERIS_TARGETS else "mutational"
    return str(args.engine)


def _check_numbers(args: argparse.Namespace) -> None:
    if args.runs is not None and args.runs < 1:
        raise _Usage(f"--runs {args.runs}: give a positive number of executions")
    if args.duration is not None and args.duration <= 0:
        raise _Usage(f"--duration {args.duration}: give a positive number of seconds")
    if args.jobs < 1:
        raise _Usage(f"--jobs {args.jobs}: give at least 1")
    if args.seed < 0:
        raise _Usage(f"--seed {args.seed}: give a non-negative integer")
    if args.arg:
        raise _Usage(f"unexpected argument {args.arg!r}: a campaign takes only the target name")


def _campaign(args: argparse.Namespace) -> int:
    """One target's campaign, or with `all` every target's in turn (each `--duration`, corpora in
    `--corpus`/TARGET), then statement coverage of them all together."""
    names = list(TARGETS) if args.what == "all" else [args.what]
    for name in names:
        target_class(name)  # an unknown target is an operator mistake, before anything starts
    _check_numbers(args)
    engines = {name: _engine(args, name) for name in names}
    crash_dir = Path(args.crash_dir)
    if crash_dir.exists() and not crash_dir.is_dir():
        raise _Usage(f"--crash-dir {crash_dir}: not a directory")
    corpus_root = corpus_dir(args.corpus) if args.corpus else None
    measure = not args.no_coverage and coverage_available()
    if not args.no_coverage and not measure:
        print("(no coverage report: the `coverage` package is not installed; `pip install 'pocnet[fuzz]'`)")
    duration = args.duration if args.duration is not None or args.runs is not None else DEFAULT_DURATION_S
    codes = []
    with tempfile.TemporaryDirectory(prefix="pocnet-fuzz-") as scratch:
        data_files = []
        for name in names:
            if corpus_root is None:  # without --corpus, a throw-away one
                corpus = corpus_dir(Path(scratch) / "corpus" / name)
            else:
                corpus = corpus_dir(corpus_root / name) if len(names) > 1 else corpus_root
            files = [Path(scratch) / f"coverage.{name}.{i}" for i in range(args.jobs)]
            data_files += files
            specs = [
                {
                    "target": name, "seed": args.seed + i, "duration_s": duration,
                    "runs": None if args.runs is None else max(1, args.runs // args.jobs),
                    "corpus": str(corpus), "crash_dir": str(crash_dir), "engine": engines[name],
                    "coverage_file": str(files[i]) if measure else "",
                }
                for i in range(args.jobs)
            ]
            print(f"fuzzing {name} with the {engines[name]} engine, {args.jobs} job(s)", flush=True)
            codes += _run_jobs(specs)
        if measure:
            report_coverage(data_files, sys.stdout)
    for name in names:
        crashes = sorted(crash_dir.glob(f"crash-{name}-*.json")) if crash_dir.is_dir() else []
        print(f"crash files of {name} in {crash_dir}: {len(crashes)}")
    return 1 if any(codes) else 0


def _run_jobs(specs: list[dict[str, object]]) -> list[int]:
    """Run each job in its own process; with several, prefix their lines with the job number."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "node.fuzz.job"]
    if len(specs) == 1:
        return [subprocess.run([*command, json.dumps(specs[0])], env=env, check=False).returncode]
    processes = [subprocess.Popen([*command, json.dumps(spec)], env=env, stdout=subprocess.PIPE, text=True) for spec in specs]
    pumps = [threading.Thread(target=_prefix, args=(i, p.stdout)) for i, p in enumerate(processes)]
    for pump in pumps:
        pump.start()
    codes = [p.wait() for p in processes]
    for pump in pumps:
        pump.join()
    return codes


def _prefix(job: int, stream: IO[str] | None) -> None:
    for line in stream or ():
        print(f"[job {job}] {line}", end="", flush=True)
