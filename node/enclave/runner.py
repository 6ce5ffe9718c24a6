"""Running one task in an emulated enclave (DESIGN.md section 7, reference/poco.md section 6).

`run_enclave` verifies the bundle against the measurement the deal names, lays out a fresh enclave
directory, extracts the bundle, provides the inputs, runs the entrypoint in the sandbox (`sandbox.py`) with
the iExec environment, and turns IEXEC_OUT into a result digest and a deterministic archive. It never
raises for anything the iApp or its inputs did: every failure is an `EnclaveOutcome` with a reason code.

The enclave key is an ephemeral Ed25519 key. The worker needs its public half before the run (the quote
names it, and a dataset key is released sealed to it), so the caller may create it with `new_enclave_key()`
and pass it in; otherwise it is made here. Either way it is returned so the worker can sign
(resultHash, resultSeal) with it; the runner deletes the enclave directory afterwards, plaintext included.

Layout (host side): `<workdir>/enclave-*/` (0700, the runner's) holds `stdout`, `stderr` and `sandbox/`,
owned by the enclave's uid, which holds `app/` (the bundle), `iexec_in/`, `iexec_out/`, `home/`, `tmp/`.
Confined, the iApp sees `sandbox/` at `sandbox.CONFINED_ROOT`.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

import trio

from node.enclave import sandbox
from node.enclave.bundle import BundleError, load_manifest, measurement, safe_extract
from node.enclave.outputs import (
    OutputError,
    read_output_path,
    result_archive,
    result_digest,
)
from node.enclave.sandbox import Confinement, Limits
from node.enclave.sealing import SealError, decrypt_dataset, open_key_in_enclave
from protocols.crypto import Keypair

log = logging.getLogger(__name__)

OK = "ok"
FAILED = "failed"
# Markers the process leaves on stderr when a limit stopped it: there are no cgroups to ask, so memory and
# file-size exhaustion are recognised by what the runtime prints (Python raises MemoryError on RLIMIT_AS
# and OSError EFBIG on RLIMIT_FSIZE, since it ignores SIGXFSZ; C programs die of the signal).
MEMORY_MARKERS = (b"MemoryError", b"Cannot allocate memory", b"std::bad_alloc", b"out of memory")
FILE_SIZE_MARKERS = (b"File too large",)
# Interpreters an iApp may name by bare name; resolved on the sandbox PATH, else to this Python.
PYTHON_NAMES = frozenset({"python3", "python"})
SANDBOX_DIR_MODE = 0o700


@dataclass(frozen=True)
class InputFile:
    """An input file of the task (iExec's IEXEC_INPUT_FILE_NAME_<n>), already downloaded and checked."""

    name: str
    content: bytes


@dataclass(frozen=True)
class SealedDataset:
    """A protected dataset as the enclave receives it: the encrypted blob and its key sealed to the enclave."""

    blob: bytes
    sealed_key: bytes


@dataclass(frozen=True)
class TaskSpec:
    """One task's inputs. At most one of `dataset_plaintext` (decrypted by the caller) and `sealed_dataset`
    (opened here with the enclave key) is given; either is written to IEXEC_IN/`dataset_filename`."""

    task_id: bytes
    deal_id: bytes
    index: int
    args: tuple[str, ...] = ()
    dataset_filename: str = ""
    dataset_plaintext: bytes | None = None
    sealed_dataset: SealedDataset | None = None
    input_files: tuple[InputFile, ...] = ()


# Failures that come from the iApp itself: every honest worker would meet them again with the same inputs,
# so a scheduler stops handing the task out once workers agree on one (the others are the worker's
# environment: a bundle or key it could not get, a sandbox it could not set up).
APP_FAULTS = frozenset({
    "timeout", "cpu-limit", "memory-limit", "file-size-limit", "exit-code", "missing-computed-json",
    "bad-computed-json", "output-outside-iexec-out", "missing-output", "bad-output", "output-too-large",
})


@dataclass(frozen=True)
class EnclaveOutcome:
    """What happened. `digest` and `archive` are set only when `status` is "ok"; `reason` names a failure:
    bad-measurement, bad-bundle, bad-task, dataset-key, sandbox-setup-failed, timeout, cpu-limit,
    memory-limit, file-size-limit, exit-code, missing-computed-json, bad-computed-json,
    output-outside-iexec-out, missing-output, bad-output, output-too-large."""

    status: str
    reason: str
    detail: str
    enclave_key: Keypair
    measurement: bytes
    confinement: Confinement
    digest: bytes = b""
    archive: bytes = b""
    exit_code: int | None = None  # negative: killed by that signal
    stdout: bytes = b""  # the last Limits.output_tail_bytes
    stderr: bytes = b""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == OK


class _Failure(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


@dataclass
class _Layout:
    root: Path
    sandbox: Path
    inside: Path  # how the iApp sees `sandbox`
    uid: int | None  # the enclave's throw-away uid when confined
    stdout: Path = field(init=False)
    stderr: Path = field(init=False)

    def __post_init__(self) -> None:
        self.stdout, self.stderr = self.root / "stdout", self.root / "stderr"

    def seen(self, name: str) -> str:
        return str(self.inside / name)


def new_enclave_key() -> Keypair:
    return Keypair.generate()


async def run_enclave(
    bundle: bytes,
    expected_measurement: bytes,
    task: TaskSpec,
    limits: Limits,
    workdir: Path,
    *,
    enclave_key: Keypair | None = None,
    keep_directory: bool = False,
) -> EnclaveOutcome:
    """Run `task` with the iApp `bundle`, which must hash to `expected_measurement` (the deal's app)."""
    key = enclave_key or new_enclave_key()
    confinement = await trio.to_thread.run_sync(sandbox.probe)
    started = time.monotonic()
    workdir = workdir.resolve()  # the sandbox enters it from another mount namespace: relative paths break
    workdir.mkdir(parents=True, exist_ok=True)
    layout = _new_layout(workdir, confinement)
    context = f"task=0x{task.task_id.hex()} enclave={key.public_key.hex()[:16]}"
    try:
        outcome = await _run(bundle, expected_measurement, task, limits, layout, key, confinement)
    except _Failure as failure:
        outcome = EnclaveOutcome(FAILED, failure.reason, failure.detail, key, expected_measurement, confinement)
    finally:
        if not keep_directory:
            shutil.rmtree(layout.root, ignore_errors=True)
    duration = time.monotonic() - started
    outcome = _with(outcome, duration_s=duration)
    if outcome.ok:
        log.info("event=enclave-done %s status=ok digest=%s archive_bytes=%d seconds=%.2f", context,
                 outcome.digest.hex(), len(outcome.archive), duration)
    else:
        log.warning("event=enclave-done %s status=failed reason=%s exit=%s detail=%r seconds=%.2f", context,
                    outcome.reason, outcome.exit_code, outcome.detail[:200], duration)
    return outcome


def _with(outcome: EnclaveOutcome, **changes: object) -> EnclaveOutcome:
    return replace(outcome, **changes)  # type: ignore[arg-type]


def _new_layout(workdir: Path, confinement: Confinement) -> _Layout:
    root = Path(tempfile.mkdtemp(prefix="enclave-", dir=workdir))  # 0700: logs and the sandbox's parent
    sandbox_dir = root / "sandbox"
    sandbox_dir.mkdir(mode=SANDBOX_DIR_MODE)
    if confinement.filesystem_confined:
        return _Layout(root, sandbox_dir, Path(sandbox.CONFINED_ROOT), sandbox.new_sandbox_uid())
    return _Layout(root, sandbox_dir, sandbox_dir, None)


async def _run(
    bundle: bytes,
    expected: bytes,
    task: TaskSpec,
    limits: Limits,
    layout: _Layout,
    key: Keypair,
    confinement: Confinement,
) -> EnclaveOutcome:
    if measurement(bundle) != expected:
        raise _Failure("bad-measurement", f"bundle hashes to {measurement(bundle).hex()}, expected {expected.hex()}")
    app = layout.sandbox / "app"
    try:
        safe_extract(bundle, app)
        manifest = load_manifest(app)
    except BundleError as exc:
        raise _Failure("bad-bundle", str(exc)) from None
    _write_inputs(task, layout, key)
    for name in ("iexec_out", "home", "tmp"):
        (layout.sandbox / name).mkdir()
    if layout.uid is not None:
        _chown_tree(layout.sandbox, layout.uid)
    env = sandbox.deterministic_environment(layout.seen("home"), layout.seen("tmp")) | _iexec_environment(task, layout)
    argv = [*_resolve_entrypoint(manifest.entrypoint), *task.args]
    if layout.uid is not None:  # the launcher enters the app directory as the iApp sees it
        command, cwd = sandbox.wrap_command(argv, layout.sandbox, layout.uid, layout.seen("app")), str(layout.root)
    else:
        command, cwd = argv, str(app)
    exit_code, timed_out = await _execute(command, cwd, env, limits, layout)
    stdout, stderr = _tail(layout.stdout, limits), _tail(layout.stderr, limits)
    base = EnclaveOutcome(FAILED, "", "", key, expected, confinement, exit_code=exit_code, stdout=stdout, stderr=stderr)
    failure = _classify(exit_code, timed_out, stderr, limits)
    if failure is not None:
        return _with(base, reason=failure[0], detail=failure[1])
    iexec_out = layout.sandbox / "iexec_out"
    try:
        digest = result_digest(read_output_path(iexec_out, layout.seen("iexec_out")))
        archive = result_archive(iexec_out, limits.max_result_bytes)
    except OutputError as exc:
        return _with(base, reason=exc.reason, detail=exc.detail)
    return _with(base, status=OK, digest=digest, archive=archive)


def _write_inputs(task: TaskSpec, layout: _Layout, key: Keypair) -> None:
    iexec_in = layout.sandbox / "iexec_in"
    iexec_in.mkdir()
    if task.dataset_plaintext is not None and task.sealed_dataset is not None:
        raise _Failure("bad-task", "give the dataset either in plaintext or sealed, not both")
    dataset = task.dataset_plaintext
    if task.sealed_dataset is not None:
        try:
            dataset = decrypt_dataset(open_key_in_enclave(task.sealed_dataset.sealed_key, key), task.sealed_dataset.blob)
        except SealError as exc:
            raise _Failure("dataset-key", str(exc)) from None
    files = [(f.name, f.content) for f in task.input_files]
    if dataset is not None:
        files.append((task.dataset_filename, dataset))
    for name, content in files:
        if not name or name in (".", "..") or len(PurePosixPath(name).parts) != 1 or "/" in name or "\0" in name:
            raise _Failure("bad-task", f"input file name {name!r} must be a plain file name")
        path = iexec_in / name
        if path.exists():
            raise _Failure("bad-task", f"two inputs are named {name!r}")
        path.write_bytes(content)


def _chown_tree(root: Path, uid: int) -> None:
    """Hand the sandbox to the enclave's uid: its files are its own and, at 0700, nobody else's."""
    for directory, dirnames, filenames in os.walk(root):
        os.chown(directory, uid, uid)
        for name in dirnames + filenames:
            os.chown(os.path.join(directory, name), uid, uid, follow_symlinks=False)


def _iexec_environment(task: TaskSpec, layout: _Layout) -> dict[str, str]:
    """iExec's variables (reference/poco.md section 6), pointing at the enclave's paths as the iApp sees them."""
    env = {
        "IEXEC_IN": layout.seen("iexec_in"),
        "IEXEC_OUT": layout.seen("iexec_out"),
        "IEXEC_TASK_ID": "0x" + task.task_id.hex(),
        "IEXEC_DEAL_ID": "0x" + task.deal_id.hex(),
        "IEXEC_TASK_INDEX": str(task.index),
        "IEXEC_DATASET_FILENAME": task.dataset_filename,
        "IEXEC_INPUT_FILES_FOLDER": layout.seen("iexec_in"),
        "IEXEC_INPUT_FILES_NUMBER": str(len(task.input_files)),
    }
    for n, input_file in enumerate(task.input_files, start=1):
        env[f"IEXEC_INPUT_FILE_NAME_{n}"] = input_file.name
    return env


def _resolve_entrypoint(entrypoint: tuple[str, ...]) -> list[str]:
    """A bare program name is looked up on the sandbox PATH; a bare Python name falls back to this Python."""
    program, *rest = entrypoint
    if "/" not in program:
        found = shutil.which(program, path=sandbox.SANDBOX_PATH)
        if found is None and program in PYTHON_NAMES:
            found = sys.executable
        program = found or program
    return [program, *rest]


async def _execute(command: list[str], cwd: str, env: dict[str, str], limits: Limits, layout: _Layout) -> tuple[int, bool]:
    """Run to completion or to the wall clock; returns (exit code, timed out).

    Whatever happens, including cancellation of the caller, the process group is killed and reaped, and
    when confined so is every process left with the enclave's uid (a daemon that left the group)."""
    with layout.stdout.open("wb") as out, layout.stderr.open("wb") as err:
        try:
            process = await trio.lowlevel.open_process(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=cwd, env=env,
                start_new_session=True, preexec_fn=sandbox.resource_limiter(limits),
            )
        except OSError as exc:
            raise _Failure("bad-bundle", f"cannot start {command[0]!r}: {exc}") from None
    try:
        with trio.move_on_after(limits.wall_clock_seconds) as scope:
            await process.wait()
    finally:
        sandbox.kill_group(process.pid)
        if layout.uid is not None:
            leftovers = sandbox.kill_uid(layout.uid)
            if leftovers:
                log.info("event=enclave-leftovers-killed uid=%d processes=%d", layout.uid, leftovers)
        with trio.CancelScope(shield=True):
            returncode = await process.wait()
    if scope.cancelled_caught:
        return -signal.SIGKILL, True
    return returncode, False


def _classify(exit_code: int, timed_out: bool, stderr: bytes, limits: Limits) -> tuple[str, str] | None:
    if timed_out:
        return "timeout", f"still running after {limits.wall_clock_seconds} s of wall clock: killed"
    if exit_code == 0:
        return None
    if exit_code == sandbox.SETUP_FAILED_EXIT and sandbox.SETUP_FAILED_MARKER in stderr:
        return "sandbox-setup-failed", stderr.decode(errors="replace").strip()[-300:]
    if exit_code == -signal.SIGXCPU:
        return "cpu-limit", f"used its {limits.cpu_seconds} s of CPU"
    if exit_code == -signal.SIGXFSZ or any(m in stderr for m in FILE_SIZE_MARKERS):
        return "file-size-limit", f"wrote a file over {limits.file_size_bytes} bytes"
    if any(m in stderr for m in MEMORY_MARKERS):
        return "memory-limit", f"ran out of its {limits.memory_bytes} bytes of address space"
    if exit_code == -signal.SIGKILL:
        return "exit-code", "killed by SIGKILL (the CPU hard limit, or the kernel out of memory)"
    if exit_code < 0:
        return "exit-code", f"killed by signal {signal.Signals(-exit_code).name}"
    return "exit-code", f"exited with code {exit_code}"


def _tail(path: Path, limits: Limits) -> bytes:
    with path.open("rb") as stream:
        size = stream.seek(0, os.SEEK_END)
        stream.seek(max(0, size - limits.output_tail_bytes))
        return stream.read()
