"""The enclave runner: sample iApps, limits, confinement, sealing and the digest rule."""

from __future__ import annotations

import hashlib
import json
import socket
import tarfile
import tempfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest

from node.enclave.bundle import build_bundle, deterministic_tar, measurement
from node.enclave.outputs import result_digest
from node.enclave.runner import (
    EnclaveOutcome,
    SealedDataset,
    TaskSpec,
    new_enclave_key,
    run_enclave,
)
from node.enclave.sandbox import Limits, _probe_launcher, probe
from node.enclave.sealing import (
    SealError,
    decrypt_dataset,
    encrypt_dataset,
    open_key_in_enclave,
    open_result,
    seal_key_to_enclave,
    seal_result,
)
from protocols.crypto import Keypair

APPS = Path(__file__).resolve().parents[2] / "devnet" / "apps"
TASK = TaskSpec(task_id=b"\x01" * 32, deal_id=b"\x02" * 32, index=0)
FAST = Limits(cpu_seconds=10, memory_bytes=512 << 20, wall_clock_seconds=20)
TEXT = b"the quick brown fox jumps over the lazy dog the end\n"


def app_dir(tmp_path: Path, code: str) -> Path:
    root = tmp_path / "app-src"
    root.mkdir(parents=True)
    (root / "iapp.toml").write_text('name = "t"\nversion = "1"\nentrypoint = ["python3", "app.py"]\n')
    (root / "app.py").write_text(code)
    return root


async def run_dir(directory: Path, tmp_path: Path, task: TaskSpec = TASK, limits: Limits = FAST, **kw: object) -> EnclaveOutcome:
    bundle, _ = build_bundle(directory)
    return await run_enclave(bundle, measurement(bundle), task, limits, tmp_path / "work", **kw)  # type: ignore[arg-type]


def members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


WRITE_COMPUTED = """
import json, os
def done(name):
    json.dump({"deterministic-output-path": os.path.join(os.environ["IEXEC_OUT"], name)},
              open(os.path.join(os.environ["IEXEC_OUT"], "computed.json"), "w"))
"""


# Sample apps --------------------------------------------------------------------------------------


async def test_hello(tmp_path: Path) -> None:
    task = TaskSpec(TASK.task_id, TASK.deal_id, 3, args=("Alice", "and", "Bob"))
    outcome = await run_dir(APPS / "hello", tmp_path, task)
    assert outcome.ok, (outcome.reason, outcome.detail, outcome.stderr)
    result = members(outcome.archive)["result.txt"]
    assert result == b"Hello, Alice and Bob!\n"
    assert outcome.digest == hashlib.sha256(result).digest()
    assert not list((tmp_path / "work").iterdir())  # the enclave directory is gone


async def test_hello_is_deterministic_across_runs(tmp_path: Path) -> None:
    first = await run_dir(APPS / "hello", tmp_path)
    second = await run_dir(APPS / "hello", tmp_path)
    assert first.ok and second.ok
    assert (first.digest, first.archive) == (second.digest, second.archive)
    assert first.enclave_key.public_key != second.enclave_key.public_key  # ephemeral


async def test_word_count_with_a_protected_dataset(tmp_path: Path) -> None:
    """Provider encrypts; the key is released sealed to the enclave key; the enclave opens it inside."""
    key, blob = encrypt_dataset(TEXT)
    enclave = new_enclave_key()
    sealed = SealedDataset(blob, seal_key_to_enclave(key, enclave.public_key))
    task = TaskSpec(TASK.task_id, TASK.deal_id, 0, dataset_filename="0xdataset", sealed_dataset=sealed)
    outcome = await run_dir(APPS / "word-count", tmp_path, task, enclave_key=enclave)
    assert outcome.ok, (outcome.reason, outcome.detail, outcome.stderr)
    assert outcome.enclave_key is enclave
    result = json.loads(members(outcome.archive)["result.json"])
    assert result["words"] == 11 and result["top"][0] == ["the", 3]
    # the same dataset decrypted by the caller gives the same result
    plain = TaskSpec(TASK.task_id, TASK.deal_id, 0, dataset_filename="0xdataset", dataset_plaintext=decrypt_dataset(key, blob))
    again = await run_dir(APPS / "word-count", tmp_path, plain)
    assert again.digest == outcome.digest


async def test_a_key_sealed_to_another_enclave_is_refused(tmp_path: Path) -> None:
    key, blob = encrypt_dataset(TEXT)
    sealed = SealedDataset(blob, seal_key_to_enclave(key, new_enclave_key().public_key))
    task = TaskSpec(TASK.task_id, TASK.deal_id, 0, dataset_filename="d", sealed_dataset=sealed)
    outcome = await run_dir(APPS / "word-count", tmp_path, task)
    assert outcome.reason == "dataset-key"


async def test_a_bundle_that_does_not_match_the_measurement_is_not_run(tmp_path: Path) -> None:
    bundle, _ = build_bundle(APPS / "hello")
    outcome = await run_enclave(bundle, b"\x00" * 32, TASK, FAST, tmp_path)
    assert not outcome.ok and outcome.reason == "bad-measurement"


# Failures reported cleanly ------------------------------------------------------------------------


async def test_over_the_memory_limit(tmp_path: Path) -> None:
    code = "hog = bytearray(1 << 30)\n"
    outcome = await run_dir(app_dir(tmp_path, code), tmp_path, limits=Limits(memory_bytes=256 << 20, wall_clock_seconds=20))
    assert (outcome.status, outcome.reason) == ("failed", "memory-limit"), outcome.stderr
    assert b"MemoryError" in outcome.stderr


async def test_over_the_wall_clock(tmp_path: Path) -> None:
    code = "import subprocess, time\nsubprocess.Popen(['sleep', '60'])\ntime.sleep(60)\n"
    outcome = await run_dir(app_dir(tmp_path, code), tmp_path, limits=Limits(wall_clock_seconds=1.0))
    assert (outcome.status, outcome.reason) == ("failed", "timeout")
    assert outcome.duration_s < 10


async def test_a_failing_app_and_a_missing_computed_json(tmp_path: Path) -> None:
    failing = await run_dir(app_dir(tmp_path / "a", "import sys\nprint('boom', file=sys.stderr)\nsys.exit(3)\n"), tmp_path)
    assert (failing.reason, failing.exit_code) == ("exit-code", 3) and b"boom" in failing.stderr
    silent = await run_dir(app_dir(tmp_path / "b", "print('no result')\n"), tmp_path)
    assert silent.reason == "missing-computed-json" and silent.stdout == b"no result\n"


async def test_output_path_must_stay_inside_iexec_out(tmp_path: Path) -> None:
    code = WRITE_COMPUTED + "import os\nos.symlink('/etc/passwd', os.environ['IEXEC_OUT'] + '/leak')\ndone('leak')\n"
    outcome = await run_dir(app_dir(tmp_path, code), tmp_path)
    assert outcome.reason == "output-outside-iexec-out"


async def test_output_is_bounded(tmp_path: Path) -> None:
    code = "import sys\nsys.stdout.write('x' * 200_000)\n"
    outcome = await run_dir(app_dir(tmp_path, code), tmp_path, limits=Limits(output_tail_bytes=1000))
    assert len(outcome.stdout) == 1000


# Confinement --------------------------------------------------------------------------------------

CONFINED = probe()
needs_confinement = pytest.mark.skipif(
    not CONFINED.filesystem_confined, reason=f"sandbox cannot confine the file system here: {CONFINED.detail}"
)
needs_network_cut = pytest.mark.skipif(
    not CONFINED.network_cut, reason=f"unshare --net is unavailable here: {CONFINED.detail}"
)


@needs_confinement
def test_a_mount_beneath_tmp_does_not_break_the_sandbox(tmp_path: Path) -> None:
    """A host mount under /tmp (a test's tmpfs, a container's) is covered by the private /tmp: the launcher
    must not fail trying to remount it read-only (it did, and every enclave ran unconfined meanwhile)."""
    import subprocess

    mountpoint = tmp_path / "mounted"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "pocnet-test", str(mountpoint)], check=True)
    try:
        assert _probe_launcher().full
    finally:
        subprocess.run(["umount", str(mountpoint)], check=True)


@pytest.fixture
def outside_dirs(tmp_path: Path) -> Iterator[list[Path]]:
    """World-writable directories outside the enclave: one under /tmp, one elsewhere (/var/tmp)."""
    dirs = [tmp_path / "outside", Path(tempfile.mkdtemp(prefix="pocnet-outside-", dir="/var/tmp"))]
    for d in dirs:
        d.mkdir(exist_ok=True)
        d.chmod(0o777)
    yield dirs
    for d in dirs[1:]:
        for f in d.iterdir():
            f.unlink()
        d.rmdir()


@needs_confinement
async def test_the_app_cannot_write_outside_its_enclave(tmp_path: Path, outside_dirs: list[Path]) -> None:
    """Every write outside fails (read-only mounts; the host's /tmp is not even visible), none lands."""
    targets = [str(d / "pwned") for d in outside_dirs] + ["/root/pwned", "/var/tmp/pwned-direct"]
    code = WRITE_COMPUTED + f"""
import os
targets = {targets!r}
targets.append(os.path.join(os.path.dirname(os.environ["IEXEC_OUT"]), "..", "pwned"))
report = {{}}
for t in targets:
    try:
        open(t, "w").write("x")
        report[t] = "written"
    except OSError as e:
        report[t] = e.strerror
open(os.path.join(os.environ["IEXEC_OUT"], "report.json"), "w").write(json.dumps(report))
open(os.path.join(os.environ["HOME"], "ok"), "w").write("home is writable")
done("report.json")
"""
    outcome = await run_dir(app_dir(tmp_path, code), tmp_path)
    assert outcome.ok, (outcome.reason, outcome.stderr)
    report = json.loads(members(outcome.archive)["report.json"])
    assert "written" not in report.values(), report
    for d in outside_dirs:
        assert not (d / "pwned").exists()
    assert not Path("/var/tmp/pwned-direct").exists()


@needs_network_cut
async def test_no_network_inside(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        code = WRITE_COMPUTED + f"""
import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=2)
    result = "connected"
except OSError as e:
    result = "refused: " + str(e)
interfaces = [line.split(":")[0].strip() for line in open("/proc/net/dev").read().splitlines()[2:]]
open(os.environ["IEXEC_OUT"] + "/net.json", "w").write(json.dumps({{"result": result, "interfaces": interfaces}}))
done("net.json")
"""
        outcome = await run_dir(app_dir(tmp_path, code), tmp_path)
    assert outcome.ok, (outcome.reason, outcome.stderr)
    report = json.loads(members(outcome.archive)["net.json"])
    assert report["result"].startswith("refused"), report
    assert report["interfaces"] == ["lo"]


# Sealing and the digest rule ----------------------------------------------------------------------


def test_a_sealed_result_opens_only_for_the_beneficiary() -> None:
    requester, worker, provider = (Keypair.from_name(n) for n in ("requester", "w1", "provider"))
    sealed = seal_result(b"archive bytes", requester.public_key)
    assert open_result(sealed, requester.seed) == b"archive bytes"
    for other in (worker, provider):
        with pytest.raises(SealError):
            open_result(sealed, other.seed)
    with pytest.raises(SealError):
        open_result(sealed[:-1], requester.seed)


def test_dataset_encryption_and_key_release() -> None:
    key, blob = encrypt_dataset(TEXT)
    assert TEXT not in blob and decrypt_dataset(key, blob) == TEXT
    with pytest.raises(SealError):
        decrypt_dataset(bytes(32), blob)
    enclave, other = Keypair.generate(), Keypair.generate()
    sealed = seal_key_to_enclave(key, enclave.public_key)
    assert open_key_in_enclave(sealed, enclave) == key
    with pytest.raises(SealError):
        open_key_in_enclave(sealed, other)


def test_digest_rule_for_a_file_and_a_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"abc")
    assert result_digest(tmp_path / "file") == hashlib.sha256(b"abc").digest()
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, content in (("b", b"2"), ("a", b"1"), ("c", b"3")):
        (folder / name).write_bytes(content)
    expected = hashlib.sha256(b"".join(hashlib.sha256(c).digest() for c in (b"1", b"2", b"3"))).digest()
    assert result_digest(folder) == expected
    (folder / "sub").mkdir()
    (folder / "sub" / "x").write_bytes(b"x")
    nested = hashlib.sha256(hashlib.sha256(b"x").digest()).digest()
    assert result_digest(folder) == hashlib.sha256(
        b"".join([hashlib.sha256(b"1").digest(), hashlib.sha256(b"2").digest(), hashlib.sha256(b"3").digest(), nested])
    ).digest()


async def test_folder_output_digest_through_the_runner(tmp_path: Path) -> None:
    code = WRITE_COMPUTED + """
out = os.path.join(os.environ["IEXEC_OUT"], "results")
os.mkdir(out)
for name in ("z", "a"):
    open(os.path.join(out, name), "w").write(name * 3)
done("results")
"""
    outcome = await run_dir(app_dir(tmp_path, code), tmp_path)
    assert outcome.ok, outcome.stderr
    assert outcome.digest == hashlib.sha256(hashlib.sha256(b"aaa").digest() + hashlib.sha256(b"zzz").digest()).digest()
    assert outcome.archive == deterministic_tar_of(members(outcome.archive), tmp_path)


def deterministic_tar_of(files: dict[str, bytes], tmp_path: Path) -> bytes:
    """Rebuild IEXEC_OUT from an archive's files: the archive is the deterministic tar of it."""
    root = tmp_path / "rebuilt"
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return deterministic_tar(root)
