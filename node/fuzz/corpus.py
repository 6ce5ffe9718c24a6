"""Corpora on disk and crash files.

A corpus directory holds one input per file, named by the SHA-1 of its content, as libFuzzer does (so an
atheris run and a mutational run can share a directory). A crash file is JSON: the target, the input in
hex, what failed, the traceback, and the one-line command that replays it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

# Files above this size are not inputs of ours (every target bounds its inputs far below).
MAX_CORPUS_FILE_BYTES = 1 << 20


class CorpusError(Exception):
    """An operator mistake about a corpus or crash path; the message says what to do."""


def corpus_dir(path: str | Path) -> Path:
    """`path` as a usable corpus directory (created if missing), or CorpusError."""
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise CorpusError(f"--corpus {directory}: not a directory; give a directory (it is created if missing)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CorpusError(f"--corpus {directory}: cannot create it ({exc.strerror}); choose a writable directory") from None
    return directory


def load_corpus(directory: Path) -> list[bytes]:
    """Every input in the directory, in name order (so a campaign that loads it is repeatable)."""
    inputs = []
    for path in sorted(directory.iterdir()):
        if path.is_file() and not path.name.startswith(("crash-", ".")) and path.stat().st_size <= MAX_CORPUS_FILE_BYTES:
            inputs.append(path.read_bytes())
    return inputs


def save_input(directory: Path, data: bytes) -> Path:
    path = directory / hashlib.sha1(data).hexdigest()
    if not path.exists():
        path.write_bytes(data)
    return path


@dataclass(frozen=True)
class Crash:
    """What a crash file holds."""

    target: str
    input_hex: str
    signature: str  # exception type, message and place: crashes with one signature are one bug
    traceback: str
    replay: str

    @property
    def data(self) -> bytes:
        return bytes.fromhex(self.input_hex)


def crash_path(directory: Path, target: str, data: bytes) -> Path:
    return directory / f"crash-{target}-{hashlib.sha256(data).hexdigest()[:16]}.json"


def write_crash(directory: Path, target: str, data: bytes, signature: str, traceback: str) -> Path:
    """Write a crash file and return its path; its `replay` field is the command that reruns it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = crash_path(directory, target, data)
    crash = Crash(target, data.hex(), signature, traceback, f"pocnet fuzz replay {path}")
    path.write_text(json.dumps(asdict(crash), indent=1) + "\n")
    return path


def read_crash(path: str | Path) -> Crash:
    """The crash in `path`, or CorpusError saying why it is not a crash file."""
    file = Path(path)
    try:
        fields = json.loads(file.read_text())
        crash = Crash(**fields)
        bytes.fromhex(crash.input_hex)
    except OSError as exc:
        raise CorpusError(f"cannot read {file}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise CorpusError(f"{file} is not a crash file written by `pocnet fuzz` ({exc})") from None
    return crash
