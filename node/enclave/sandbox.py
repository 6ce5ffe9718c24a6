"""The process sandbox that emulates an enclave's isolation (DESIGN.md section 7).

When this machine allows it (root, `unshare` and `setpriv` from util-linux), an iApp runs:
- in a new network namespace: it sees only a loopback interface, and that one is down;
- in a new mount namespace where a fresh tmpfs covers /tmp, the enclave directory is bind-mounted at
  `CONFINED_ROOT`, and every other mount is remounted read-only: it can write only inside its enclave;
- as a throw-away uid with no capabilities, no supplementary groups and `no_new_privs`, so it cannot undo
  those mounts, and the files of other enclaves (owned by other uids, mode 0700) are closed to it;
- with resource limits (CPU seconds, address space, file size, processes) and a wall clock enforced by the
  runner, which kills the process group and then every process left with the enclave's uid.

Otherwise (not root, or the probe fails) it degrades to resource limits, a cleared environment and a working
directory inside the enclave, and logs `event=sandbox-degraded` once: the network is open and the iApp can
write wherever the worker's user can.

What the emulation cannot do, even confined: hide what the host's files say (the root file system is
readable, read-only), stop side channels or a root-level attacker on the worker, bound memory other than
by address space (no cgroups: a process may map more than it touches), or prove anything to a remote
party beyond the platform key's signature. Trust rests on the platform key, not on hardware.
"""

from __future__ import annotations

import functools
import logging
import os
import resource
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Inside the mount namespace the enclave directory appears here, under a private tmpfs: the host path of
# the worker's directory may have ancestors the sandbox uid cannot traverse (0700), this one never does.
CONFINED_ROOT = "/tmp/enclave"
# The private /tmp only holds the mount point for CONFINED_ROOT; it is read-only afterwards.
PRIVATE_TMP_OPTIONS = "size=64k,mode=755"
# Throw-away uids for iApps: far above ordinary system and user ids, one per enclave, so RLIMIT_NPROC
# counts only that enclave's processes and the runner can find and kill every one of them afterwards.
SANDBOX_UID_BASE = 2_000_000
SANDBOX_UID_SPAN = 1_000_000
# An iApp's PATH: system locations only, nothing of the worker's environment.
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
# The launcher exits with this code (and says so on stderr) when it could not set up the confinement.
SETUP_FAILED_EXIT = 125
SETUP_FAILED_MARKER = b"pocnet-sandbox:"
PROBE_TIMEOUT_S = 10

# Runs as root inside the new namespaces: private /tmp, bind the enclave (from the shell's working
# directory, which stays reachable after /tmp is covered), make every other mount read-only, then
# enter the working directory and drop to the enclave's uid for good and exec the iApp.
# Arguments: source, uid, working directory (as seen inside), argv...
LAUNCHER = f"""
set -eu
src=$1; uid=$2; cwd=$3; shift 3
fail() {{ echo "pocnet-sandbox: $1" >&2; exit {SETUP_FAILED_EXIT}; }}
cd "$src" || fail "cannot enter the enclave directory"
mount -t tmpfs -o {PRIVATE_TMP_OPTIONS} pocnet-enclave /tmp || fail "cannot mount a private /tmp"
mkdir {CONFINED_ROOT} && mount --no-canonicalize --bind . {CONFINED_ROOT} || fail "cannot bind the enclave directory"
cd /
for mp in $(cut -d' ' -f2 /proc/self/mounts | sort -u); do
  case "$mp" in
    {CONFINED_ROOT}) continue ;;  # the enclave itself stays writable
    /tmp/*) continue ;;  # the host's mounts beneath /tmp: the private /tmp covers them, no path reaches them
  esac
  mount -o remount,bind,ro "$mp" 2>/dev/null || fail "cannot make $mp read-only"
done
cd "$cwd" || fail "cannot enter $cwd"
exec setpriv --reuid="$uid" --regid="$uid" --clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all -- "$@"
"""


@dataclass(frozen=True)
class Limits:
    """Per-task resource limits. The defaults suit the devnet's short categories."""

    cpu_seconds: int = 60
    memory_bytes: int = 1 << 30  # address space (RLIMIT_AS): Python itself maps ~30 MB before running any code
    file_size_bytes: int = 64 << 20  # any one file, stdout and stderr included
    processes: int = 64
    wall_clock_seconds: float = 120.0
    max_result_bytes: int = 16 << 20  # the result archive, sealed and served to the beneficiary
    output_tail_bytes: int = 64 << 10  # how much of stdout and stderr is kept for debugging


@dataclass(frozen=True)
class Confinement:
    """What the sandbox can do on this machine, from `probe()`."""

    network_cut: bool
    filesystem_confined: bool
    detail: str

    @property
    def full(self) -> bool:
        return self.network_cut and self.filesystem_confined


@functools.cache
def probe() -> Confinement:
    """Try the launcher once (blocking, ~50 ms) and remember the answer for the life of the process."""
    if os.geteuid() != 0:
        result = Confinement(False, False, "not root: no namespaces, mounts or uid switch")
    elif not (shutil.which("unshare") and shutil.which("setpriv")):
        result = Confinement(False, False, "util-linux unshare or setpriv not found")
    else:
        result = _probe_launcher()
    if result.full:
        log.info("event=sandbox-probe network=cut filesystem=confined")
    else:
        log.warning("event=sandbox-degraded network=%s filesystem=%s reason=%r",
                    "cut" if result.network_cut else "open",
                    "confined" if result.filesystem_confined else "unconfined", result.detail)
    return result


def _probe_launcher() -> Confinement:
    with tempfile.TemporaryDirectory(prefix="pocnet-sandbox-probe-") as tmp:
        uid = new_sandbox_uid()
        os.chown(tmp, uid, uid)
        try:
            done = subprocess.run(
                [*wrap_command(["sh", "-c", f"touch {CONFINED_ROOT}/ok"], Path(tmp), uid)],
                capture_output=True, timeout=PROBE_TIMEOUT_S, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Confinement(False, False, f"launcher probe failed: {exc}")
        if done.returncode == 0 and (Path(tmp) / "ok").exists():
            return Confinement(True, True, "unshare --net --mount, read-only mounts, throw-away uid")
        net_only = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False).returncode == 0
        reason = done.stderr.decode(errors="replace").strip()[-200:]
        return Confinement(net_only, False, f"launcher probe exited {done.returncode}: {reason}")


def new_sandbox_uid() -> int:
    return SANDBOX_UID_BASE + secrets.randbelow(SANDBOX_UID_SPAN)


def wrap_command(argv: list[str], enclave_root: Path, uid: int, cwd: str = CONFINED_ROOT) -> list[str]:
    """The command that runs `argv` confined, with `enclave_root` visible at CONFINED_ROOT, in `cwd`."""
    return ["unshare", "--net", "--mount", "--propagation", "private", "--",
            "sh", "-c", LAUNCHER, "pocnet-sandbox", str(enclave_root), str(uid), cwd, *argv]


def resource_limiter(limits: Limits) -> Callable[[], None]:
    """The preexec function that applies `limits` in the child before exec (they survive exec and setpriv).

    CPU gets a one-second grace between the soft limit (SIGXCPU, reported as cpu-limit) and the hard
    limit (SIGKILL). Core dumps are off: they would land in the enclave and cost time."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_size_bytes, limits.file_size_bytes))
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def deterministic_environment(home: str, tmpdir: str) -> dict[str, str]:
    """The environment every iApp starts from, the same on every worker (iExec variables are added on top)."""
    return {
        "PATH": SANDBOX_PATH,
        "HOME": home,
        "TMPDIR": tmpdir,
        "PYTHONHASHSEED": "0",  # dict and set order of str keys would otherwise differ between runs
        "PYTHONDONTWRITEBYTECODE": "1",
        "TZ": "UTC",
        "LC_ALL": "C",
        "LANG": "C",
    }


def kill_group(pid: int) -> None:
    """SIGKILL the iApp's process group (it was started in its own session, so the group id is its pid)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_uid(uid: int) -> int:
    """SIGKILL every process running as the enclave's throw-away uid (those that left the group included)."""
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        uids = next((line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")), [])
        if str(uid) in uids:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed
