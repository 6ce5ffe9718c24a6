"""Bundles: deterministic bytes and measurement, strict manifests, and extraction that refuses evil tars."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from node.enclave.bundle import (
    BundleError,
    build_bundle,
    deterministic_tar,
    measurement,
    parse_manifest,
    safe_extract,
)

APPS = Path(__file__).resolve().parents[2] / "devnet" / "apps"


def make_app(root: Path, files: dict[str, str], order: list[str] | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "iapp.toml").write_text('name = "t"\nversion = "1"\nentrypoint = ["python3", "app.py"]\n')
    for name in order or sorted(files):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[name])
    return root


def test_same_directory_same_measurement_whatever_the_mtimes_order_and_umask(tmp_path: Path) -> None:
    files = {"app.py": "print(1)\n", "lib/a.py": "A = 1\n", "lib/b.py": "B = 2\n", "data/x.txt": "x"}
    first = make_app(tmp_path / "one", files)
    second = make_app(tmp_path / "two", files, order=sorted(files, reverse=True))
    for i, path in enumerate(sorted(second.rglob("*"))):
        os.utime(path, (1_000_000 + i, 2_000_000 + i))
    (second / "lib" / "a.py").chmod(0o600)  # no exec bit either way: normalised to 0644
    (second / "__pycache__").mkdir()
    (second / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"junk")
    assert deterministic_tar(first) == deterministic_tar(second)
    (second / "app.py").chmod(0o755)  # the exec bit is part of what runs, so it counts
    assert measurement(deterministic_tar(first)) != measurement(deterministic_tar(second))


def test_sample_apps_bundle_and_round_trip(tmp_path: Path) -> None:
    for name in ("hello", "word-count"):
        bundle, manifest = build_bundle(APPS / name)
        assert manifest.name == name and manifest.entrypoint == ("python3", "app.py")
        safe_extract(bundle, tmp_path / name)
        assert deterministic_tar(tmp_path / name) == bundle


def test_bundle_members_have_no_times_or_owners(tmp_path: Path) -> None:
    bundle, _ = build_bundle(APPS / "hello")
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        for member in tar:
            assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (0, 0, 0, "", "")
            assert member.mode in (0o644, 0o755)


@pytest.mark.parametrize("text, error", [
    ('name = "a"\nversion = "1"\n', "missing ['entrypoint']"),
    ('name = "a"\nversion = "1"\nentrypoint = ["x"]\nextra = 1\n', "unknown ['extra']"),
    ('name = "a"\nversion = 1\nentrypoint = ["x"]\n', "version must be a string"),
    ('name = "a"\nversion = "1"\nentrypoint = "python3 app.py"\n', "entrypoint must be a list"),
    ('name = "a"\nversion = "1"\nentrypoint = []\n', "entrypoint must be a list"),
    ('name = "a"\nversion = "1"\nentrypoint = ["python3", ""]\n', "entrypoint must be a list"),
    ('name = = "a"\n', "not valid TOML"),
])
def test_manifest_is_strict(text: str, error: str) -> None:
    with pytest.raises(BundleError, match=error.replace("[", r"\[").replace("]", r"\]")):
        parse_manifest(text)


def test_escaping_symlinks_are_not_bundled(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app", {"app.py": ""})
    (app / "inside").symlink_to("app.py")
    deterministic_tar(app)  # a link that points down is fine
    (app / "escape").symlink_to("../../etc/passwd")
    with pytest.raises(BundleError, match="must be relative"):
        deterministic_tar(app)


def evil_tar(*members: tuple[str, str, bytes | str]) -> bytes:
    """A tar with members (name, kind, content or link target) exactly as given."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                assert isinstance(payload, bytes)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            else:
                info.type = {"sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE, "dir": tarfile.DIRTYPE,
                             "fifo": tarfile.FIFOTYPE, "dev": tarfile.CHRTYPE}[kind]
                info.linkname = str(payload)
                tar.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize("members, error", [
    ([("/etc/evil", "file", b"x")], "absolute"),
    ([("../evil", "file", b"x")], "'..'"),
    ([("a/../../evil", "file", b"x")], "'..'"),
    ([("link", "sym", "/etc")], "must be relative"),
    ([("link", "sym", "../..")], "must be relative"),
    ([("hard", "hard", "/etc/passwd")], "hard link"),
    ([("fifo", "fifo", "")], "hard link, device or fifo"),
    ([("dev", "dev", "")], "hard link, device or fifo"),
    ([("a", "file", b"1"), ("a", "file", b"2")], "twice"),
    # a link that points down, then a member written through it
    ([("d", "dir", ""), ("l", "sym", "d"), ("l/x", "file", b"x")], "not a directory"),
])
def test_safe_extract_refuses_evil_tars(tmp_path: Path, members: list[tuple[str, str, bytes | str]], error: str) -> None:
    target = tmp_path / "out"
    with pytest.raises(BundleError, match=error):
        safe_extract(evil_tar(*members), target)
    assert not (tmp_path / "evil").exists()


def test_safe_extract_refuses_garbage_oversize_and_a_used_directory(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a valid tar"):
        safe_extract(b"not a tar at all" * 100, tmp_path / "a")
    with pytest.raises(BundleError, match="more than 100"):
        safe_extract(evil_tar(("f", "file", b"x" * 100)), tmp_path / "b", max_bytes=100)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "old").write_text("x")
    with pytest.raises(BundleError, match="not empty"):
        safe_extract(evil_tar(("f", "file", b"x")), tmp_path / "c")


def test_extracted_files_get_normalised_modes(tmp_path: Path) -> None:
    app = make_app(tmp_path / "app", {"run.sh": "#!/bin/sh\n", "data": "d"})
    (app / "run.sh").chmod(0o700)
    safe_extract(deterministic_tar(app), tmp_path / "out")
    assert (tmp_path / "out" / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "out" / "data").stat().st_mode & 0o777 == 0o644
    shutil.rmtree(tmp_path / "out")
