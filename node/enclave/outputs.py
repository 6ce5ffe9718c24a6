"""What an iApp leaves in IEXEC_OUT: `computed.json`, the result digest and the result archive.

Follows iExec's conventions (reference/poco.md section 6) with SHA-256 throughout: `computed.json` names the
`deterministic-output-path`; the digest of a file is its SHA-256, of a folder the SHA-256 of the
concatenated digests of its entries sorted by name (iExec hashes a folder's files this way; here an entry
that is itself a folder contributes its own folder digest, so nested outputs are covered too). The path may
be absolute under IEXEC_OUT, relative to it, or use iExec's literal `/iexec_out` prefix; after resolving
links it must stay inside IEXEC_OUT.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path, PurePosixPath

from node.enclave.bundle import BundleError, deterministic_tar

COMPUTED_FILE = "computed.json"
OUTPUT_PATH_KEY = "deterministic-output-path"
ISOLATED_OUT = "/iexec_out"  # where iExec mounts IEXEC_OUT; apps written for iExec use it literally
# computed.json is a few lines of JSON; anything bigger is a broken or hostile app.
MAX_COMPUTED_JSON_BYTES = 64 * 1024
HASH_CHUNK = 1 << 16


class OutputError(ValueError):
    """IEXEC_OUT does not hold a usable result; `reason` is the short code the runner reports."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def read_output_path(iexec_out: Path, seen_as: str = "") -> Path:
    """The resolved `deterministic-output-path` of `iexec_out/computed.json`, checked to stay inside.

    `seen_as` is IEXEC_OUT as the iApp saw it (a sandbox may show it at another path); like iExec's
    `/iexec_out`, a path under it is taken relative to IEXEC_OUT."""
    computed = iexec_out / COMPUTED_FILE
    try:
        if computed.is_symlink() or not computed.is_file():
            raise OutputError("missing-computed-json", f"{COMPUTED_FILE} is not a regular file in IEXEC_OUT")
        if computed.stat().st_size > MAX_COMPUTED_JSON_BYTES:
            raise OutputError("bad-computed-json", f"{COMPUTED_FILE} is larger than {MAX_COMPUTED_JSON_BYTES} bytes")
        doc = json.loads(computed.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OutputError("bad-computed-json", f"{COMPUTED_FILE} is not readable JSON: {exc}") from None
    raw = doc.get(OUTPUT_PATH_KEY) if isinstance(doc, dict) else None
    if not isinstance(raw, str) or not raw:
        raise OutputError("bad-computed-json", f"{COMPUTED_FILE} has no string {OUTPUT_PATH_KEY!r}")
    for alias in (ISOLATED_OUT, seen_as.rstrip("/")):
        if alias and (raw == alias or raw.startswith(alias + "/")):
            raw = raw[len(alias):].lstrip("/") or "."
            break
    candidate = Path(raw) if PurePosixPath(raw).is_absolute() else iexec_out / raw
    root = iexec_out.resolve()
    resolved = candidate.resolve()
    if resolved != root and root not in resolved.parents:
        raise OutputError("output-outside-iexec-out", f"{OUTPUT_PATH_KEY} {raw!r} is not inside IEXEC_OUT")
    if not resolved.exists():
        raise OutputError("missing-output", f"{OUTPUT_PATH_KEY} {raw!r} does not exist")
    return resolved


def result_digest(path: Path) -> bytes:
    """iExec's result digest with SHA-256: a file's hash, or a folder's hash of sorted entry hashes."""
    mode = path.lstat().st_mode
    if stat.S_ISREG(mode):
        sha = hashlib.sha256()
        with path.open("rb") as content:
            while chunk := content.read(HASH_CHUNK):
                sha.update(chunk)
        return sha.digest()
    if stat.S_ISDIR(mode):
        names = sorted(os.listdir(path), key=str.encode)
        return hashlib.sha256(b"".join(result_digest(path / name) for name in names)).digest()
    raise OutputError("bad-output", f"{path.name!r} in the output is neither a file nor a folder")


def result_archive(iexec_out: Path, max_bytes: int) -> bytes:
    """The deterministic tar of IEXEC_OUT: what gets sealed to the beneficiary."""
    try:
        return deterministic_tar(iexec_out, max_bytes)
    except BundleError as exc:
        raise OutputError("bad-output", str(exc)) from None
