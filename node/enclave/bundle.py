"""iApp bundles: a directory made into a deterministic tar, its measurement, and safe extraction (DESIGN.md 7).

The measurement is the SHA-256 of the bundle bytes and stands in for MRENCLAVE, so every worker must get the
same bytes from the same directory: names are sorted, times, owners and owner names are zero, modes are
normalised to 0755/0644, and nothing of the build machine (mtimes, umask, uid, file system order) leaks in.

A bundle arrives from the network, so extraction trusts nothing: no absolute names, no `..`, no hard links,
devices or fifos, no duplicate names, no writing through links, and bounded member count and sizes.
Symbolic links are allowed only with a relative target without `..` components: such a link resolves below
its own directory, and since no member may be written through a link, no chain of links can leave the tree.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import stat
import tarfile
import tomllib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

log = logging.getLogger(__name__)

MANIFEST_NAME = "iapp.toml"
# A bundle travels over the blob stream protocol and sits in every worker's cache; sample apps are a few
# kilobytes, and a Python app with vendored pure-Python dependencies fits well within this.
MAX_BUNDLE_BYTES = 32 * 1024 * 1024
# Bounds the work of listing and extracting an untrusted tar (each member costs a syscall or two).
MAX_BUNDLE_MEMBERS = 10_000
# Build by-products that differ between machines and runs; they would change the measurement.
EXCLUDED_NAMES = frozenset({"__pycache__", ".git"})
# The manifest's limits: a name and version are labels, the entrypoint a short argv.
MAX_MANIFEST_BYTES = 16 * 1024
MAX_LABEL_LEN = 128
MAX_ENTRYPOINT_ARGS = 64
MANIFEST_KEYS = frozenset({"name", "version", "entrypoint"})
DIR_MODE, EXEC_MODE, FILE_MODE, LINK_MODE = 0o755, 0o755, 0o644, 0o777
TAR_FORMAT = tarfile.PAX_FORMAT  # no 100-character name limit; with integer mtimes it adds no headers of its own


class BundleError(ValueError):
    """A directory that cannot be bundled, a manifest that is not valid, or a tar that is not a safe bundle."""


@dataclass(frozen=True)
class Manifest:
    """The parsed `iapp.toml`."""

    name: str
    version: str
    entrypoint: tuple[str, ...]


def parse_manifest(text: str) -> Manifest:
    """Parse `iapp.toml` strictly: exactly `name`, `version` (strings) and `entrypoint` (a list of strings)."""
    if len(text.encode()) > MAX_MANIFEST_BYTES:
        raise BundleError(f"{MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BundleError(f"{MANIFEST_NAME} is not valid TOML: {exc}") from None
    missing, unknown = MANIFEST_KEYS - doc.keys(), doc.keys() - MANIFEST_KEYS
    if missing or unknown:
        raise BundleError(
            f"{MANIFEST_NAME} must have exactly the keys {sorted(MANIFEST_KEYS)}; "
            f"missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    for key in ("name", "version"):
        value = doc[key]
        if not isinstance(value, str) or not 0 < len(value) <= MAX_LABEL_LEN:
            raise BundleError(f"{MANIFEST_NAME}: {key} must be a string of 1 to {MAX_LABEL_LEN} characters, got {value!r}")
    entrypoint = doc["entrypoint"]
    if (
        not isinstance(entrypoint, list)
        or not 0 < len(entrypoint) <= MAX_ENTRYPOINT_ARGS
        or not all(isinstance(arg, str) and arg and "\0" not in arg for arg in entrypoint)
    ):
        raise BundleError(
            f"{MANIFEST_NAME}: entrypoint must be a list of 1 to {MAX_ENTRYPOINT_ARGS} non-empty strings, "
            f'e.g. ["python3", "app.py"]; got {entrypoint!r}'
        )
    return Manifest(doc["name"], doc["version"], tuple(entrypoint))


def load_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST_NAME
    if not path.is_file():
        raise BundleError(f"{directory} has no {MANIFEST_NAME}: an iApp directory needs one")
    return parse_manifest(path.read_text())


def measurement(bundle: bytes) -> bytes:
    """The MRENCLAVE analogue: SHA-256 of the bundle bytes."""
    return hashlib.sha256(bundle).digest()


# --- building -------------------------------------------------------------------------------------


def check_link_target(name: str, target: str) -> None:
    """A link may only point down: relative, and no `..` component (see the module docstring)."""
    parts = PurePosixPath(target).parts
    if not target or target.startswith("/") or ".." in parts or "\0" in target:
        raise BundleError(f"symbolic link {name!r} -> {target!r} must be relative and must not use '..'")


def deterministic_tar(directory: Path, max_bytes: int = MAX_BUNDLE_BYTES) -> bytes:
    """A tar of the tree under `directory` whose bytes depend only on names, contents, links and exec bits.

    Also used for result archives (the tar of IEXEC_OUT). Raises BundleError for special files, escaping
    links, or when the tar would exceed `max_bytes`."""
    if not directory.is_dir():
        raise BundleError(f"{directory} is not a directory")
    buffer = io.BytesIO()
    members = 0
    with tarfile.open(fileobj=buffer, mode="w", format=TAR_FORMAT, encoding="utf-8") as tar:
        for path in _walk_sorted(directory):
            members += 1
            if members > MAX_BUNDLE_MEMBERS:
                raise BundleError(f"{directory} has more than {MAX_BUNDLE_MEMBERS} entries")
            name = path.relative_to(directory).as_posix()
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink(path)
                check_link_target(name, target)
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, LINK_MODE
                tar.addfile(info)
            elif stat.S_ISDIR(mode):
                info.type, info.mode = tarfile.DIRTYPE, DIR_MODE
                tar.addfile(info)
            elif stat.S_ISREG(mode):
                info.size, info.mode = path.stat().st_size, EXEC_MODE if mode & 0o111 else FILE_MODE
                if buffer.tell() + info.size > max_bytes:
                    raise BundleError(f"{directory} is larger than {max_bytes} bytes as a tar")
                with path.open("rb") as content:
                    tar.addfile(info, content)
            else:
                raise BundleError(f"{name!r} in {directory} is neither a file, a directory nor a link")
    data = buffer.getvalue()
    if len(data) > max_bytes:
        raise BundleError(f"{directory} is {len(data)} bytes as a tar, more than {max_bytes}")
    return data


def _walk_sorted(directory: Path) -> list[Path]:
    """Every entry below `directory` (not following links) in the order of their tar names' bytes."""
    found: list[Path] = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name.encode()):
        if entry.name in EXCLUDED_NAMES:
            continue
        path = Path(entry.path)
        found.append(path)
        if entry.is_dir(follow_symlinks=False):
            found.extend(_walk_sorted(path))
    return found


def build_bundle(directory: Path) -> tuple[bytes, Manifest]:
    """Bundle an iApp directory after checking its manifest; the measurement is `measurement(bundle)`."""
    manifest = load_manifest(directory)
    bundle = deterministic_tar(directory)
    log.info("event=bundle-built app=%s version=%s bytes=%d measurement=%s", manifest.name, manifest.version,
             len(bundle), measurement(bundle).hex())
    return bundle, manifest


# --- extracting -----------------------------------------------------------------------------------


def safe_extract(bundle: bytes, destination: Path, max_bytes: int = MAX_BUNDLE_BYTES) -> None:
    """Extract an untrusted tar into the empty or new directory `destination`, or raise BundleError.

    Writes every member itself (no `extractall`): regular files with O_EXCL|O_NOFOLLOW and normalised modes,
    directories, and down-pointing links; a parent that is not a real directory stops extraction."""
    if len(bundle) > max_bytes:
        raise BundleError(f"bundle is {len(bundle)} bytes, more than {max_bytes}")
    destination.mkdir(parents=True, exist_ok=True)
    if any(destination.iterdir()):
        raise BundleError(f"{destination} is not empty")
    try:
        with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:") as tar:
            for member in _checked_members(tar, max_bytes):
                _extract_member(tar, member, destination)
    except tarfile.TarError as exc:
        raise BundleError(f"bundle is not a valid tar: {exc}") from None
    except OSError as exc:  # e.g. a member that collides with a directory made for an earlier one
        raise BundleError(f"bundle cannot be extracted: {exc}") from None


def _checked_members(tar: tarfile.TarFile, max_bytes: int) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    seen: set[str] = set()
    total = 0
    for member in tar:
        if len(members) >= MAX_BUNDLE_MEMBERS:
            raise BundleError(f"bundle has more than {MAX_BUNDLE_MEMBERS} members")
        name = member.name
        parts = PurePosixPath(name).parts
        if not name or name.startswith("/") or ".." in parts or "\0" in name or name != PurePosixPath(name).as_posix():
            raise BundleError(f"bundle member name {name!r} is absolute, not normalised or uses '..'")
        if name in seen:
            raise BundleError(f"bundle has {name!r} twice")
        seen.add(name)
        if member.issym():
            check_link_target(name, member.linkname)
        elif not (member.isreg() or member.isdir()):
            raise BundleError(f"bundle member {name!r} is a hard link, device or fifo, which bundles may not hold")
        total += member.size
        if total > max_bytes:
            raise BundleError(f"bundle content exceeds {max_bytes} bytes")
        members.append(member)
    return members


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, destination: Path) -> None:
    path = destination.joinpath(*PurePosixPath(member.name).parts)
    _require_real_directories(destination, path.parent)
    if member.isdir():
        if not path.is_dir() or path.is_symlink():
            path.mkdir(mode=DIR_MODE)
        return
    if member.issym():
        os.symlink(member.linkname, path)
        return
    mode = EXEC_MODE if member.mode & 0o111 else FILE_MODE
    source = tar.extractfile(member)
    assert source is not None  # a regular member always has content
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(1 << 16):
            out.write(chunk)
    os.chmod(path, mode)  # the umask may have cleared bits


def _require_real_directories(root: Path, directory: Path) -> None:
    """Every component from `root` down to `directory` must be a directory, not a link to one."""
    current = root
    for part in directory.relative_to(root).parts:
        current = current / part
        try:
            mode = current.lstat().st_mode
        except FileNotFoundError:
            current.mkdir(mode=DIR_MODE)  # a tar may list a file before (or without) its directory
            continue
        if not stat.S_ISDIR(mode):
            raise BundleError(f"bundle writes through {current.relative_to(root)}, which is not a directory")
