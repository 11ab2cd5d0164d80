"""
The terminal tool's sandbox: the bubblewrap command line a command runs in, the rlimits
around it, the probe that tells whether bubblewrap works here, and per-session scratch
directories.

Inside, a command sees read-only /usr, a fresh /proc, a read-only /dev and a /tmp of its
own (sized, as tmpfs is memory), and its session's scratch directory as cwd and HOME; it runs
as uid/gid 65534 in new user, pid, ipc, uts, net and mount namespaces, with PATH, HOME, LANG
and TZ as its only environment.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..conf import setting

logger = logging.getLogger(__name__)

#: Where bubblewrap and util-linux's prlimit are; tests point BWRAP_PATH elsewhere.
BWRAP_PATH = "/usr/bin/bwrap"
PRLIMIT_PATH = "/usr/bin/prlimit"
#: The uid/gid a command has inside the sandbox, and (when the gateway runs as root) the
#: unprivileged uid bwrap itself runs as, so root-owned files never match by owner and
#: RLIMIT_NPROC (counted per real uid, never enforced for root) bounds the sandboxes.
SANDBOX_UID = 65534
SANDBOX_GID = 65534
#: The scratch directory's path inside the sandbox.
SANDBOX_HOME = "/home/sandbox"
SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
MODES = ("bwrap", "none")
#: Only with TERMINAL_NETWORK: what name resolution and TLS need from /etc.
_NETWORK_ETC = ("/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/ssl")
_PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """The TERMINAL_* options a command runs under."""

    mode: str = "bwrap"
    network: bool = False
    max_processes: int = 256
    max_memory_bytes: int = 1024**3
    max_file_bytes: int = 64 * 1024**2

    @classmethod
    def from_settings(cls) -> SandboxConfig:
        return cls(
            mode=setting("TERMINAL_SANDBOX"),
            network=setting("TERMINAL_NETWORK"),
            max_processes=setting("TERMINAL_MAX_PROCESSES"),
            max_memory_bytes=setting("TERMINAL_MAX_MEMORY_BYTES"),
            max_file_bytes=setting("TERMINAL_MAX_FILE_BYTES"),
        )


def command_env(home: str) -> dict[str, str]:
    """The whole environment of a command: PATH, HOME, LANG and TZ, never the gateway's secrets."""
    env = {"PATH": SANDBOX_PATH, "HOME": home, "LANG": os.environ.get("LANG") or "C.UTF-8"}
    if os.environ.get("TZ"):
        env["TZ"] = os.environ["TZ"]
    return env


def rlimit_argv(config: SandboxConfig) -> list[str]:
    """``prlimit`` setting the process, memory and file-size limits, then exec'ing the rest."""
    return [
        PRLIMIT_PATH,
        f"--nproc={config.max_processes}",
        f"--as={config.max_memory_bytes}",
        f"--fsize={config.max_file_bytes}",
        "--",
    ]


def bwrap_argv(
    command: str, scratch: Path, config: SandboxConfig, info_fd: int | None
) -> list[str]:
    """The bubblewrap command line running ``command`` with ``/bin/sh -c`` in the sandbox."""
    argv = [BWRAP_PATH, "--unshare-all", "--unshare-user"]
    if config.network:
        argv.append("--share-net")
    argv += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_GID)]
    argv += ["--ro-bind", "/usr", "/usr"]
    # Debian's merged /usr: /bin, /lib, /lib64 and /sbin are symlinks into it.
    for link in ("bin", "lib", "lib64", "sbin"):
        target = os.readlink(f"/{link}") if os.path.islink(f"/{link}") else None
        if target is not None:
            argv += ["--symlink", target, f"/{link}"]
        elif os.path.isdir(f"/{link}"):
            argv += ["--ro-bind", f"/{link}", f"/{link}"]
    if config.network:
        for path in _NETWORK_ETC:
            argv += ["--ro-bind-try", path, path]
    # tmpfs is RAM that RLIMIT_AS does not count: /tmp and /dev/shm get one file's limit each,
    # and the root and /dev tmpfs bwrap builds are made read-only below.
    tmp_size = str(config.max_file_bytes)
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", tmp_size, "--tmpfs", "/tmp"]
    argv += ["--size", tmp_size, "--tmpfs", "/dev/shm"]
    argv += ["--bind", str(scratch), SANDBOX_HOME, "--chdir", SANDBOX_HOME]
    argv += ["--remount-ro", "/dev", "--remount-ro", "/"]
    argv += ["--clearenv"]
    for key, value in command_env(SANDBOX_HOME).items():
        argv += ["--setenv", key, value]
    # The command is the namespace's pid 1: when it exits, the kernel kills everything it
    # left behind (setsid, double forks), and --die-with-parent ends it if bwrap is killed.
    argv += ["--as-pid-1", "--die-with-parent", "--new-session"]
    if info_fd is not None:
        argv += ["--info-fd", str(info_fd)]
    return [*argv, "/bin/sh", "-c", command]


def outer_identity() -> dict[str, Any]:
    """``Popen`` arguments running bwrap as the unprivileged SANDBOX_UID if the gateway is root."""
    if os.geteuid() != 0:
        return {}
    return {"user": SANDBOX_UID, "group": SANDBOX_GID, "extra_groups": []}


def unavailable_reason(config: SandboxConfig) -> str | None:
    """Why commands cannot run under ``config`` (bubblewrap missing or failing), or None."""
    if config.mode == "none":
        return None
    return _probe(BWRAP_PATH, config.network)


@functools.lru_cache(maxsize=8)
def _probe(bwrap: str, network: bool) -> str | None:
    """Run ``/bin/true`` in the sandbox once per binary path; the answer is kept (blocking)."""
    if not os.access(bwrap, os.X_OK):
        return f"bubblewrap is not installed ({bwrap} not found); install the Debian package"
    with tempfile.TemporaryDirectory(prefix="hermes-probe-") as scratch:
        _own(Path(scratch))
        config = SandboxConfig(network=network)
        argv = bwrap_argv("true", Path(scratch), config, None)
        try:
            done = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_PROBE_TIMEOUT_S,
                check=False,
                env=command_env("/"),
                **outer_identity(),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            return f"bubblewrap ({bwrap}) could not run: {exc}"
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip() or f"exit code {done.returncode}"
        return f"bubblewrap ({bwrap}) cannot create its namespaces here: {why}"
    return None


def reset_probe() -> None:
    """Forget the probe's answer (tests; an operator who installed bubblewrap restarts)."""
    _probe.cache_clear()


### Scratch directories ###


def scratch_root() -> Path:
    """TERMINAL_SCRATCH_DIR, or a directory in the system temp dir."""
    configured = setting("TERMINAL_SCRATCH_DIR")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"hermes-terminal-{os.geteuid()}"


class ScratchDirs:
    """The scratch directories of one session host's sessions, under a directory of its own."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or scratch_root()
        # Per host, so a session given up here and resumed by a new host never shares a dir.
        self.base = self.root / f"host-{uuid.uuid4().hex[:12]}"

    def path(self, session_id: str) -> Path:
        return self.base / session_id

    def ensure(self, session_id: str) -> Path:
        """The session's directory, created 0700 for the sandbox's uid on first use (blocking)."""
        for parent in (self.root, self.base):
            _make_private_dir(parent, 0o711)  # traversable by the outer uid, not listable
        path = self.path(session_id)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        _own(path)
        return path

    def remove(self, session_id: str) -> None:
        """Delete the session's directory and whatever the commands left in it (blocking)."""
        _remove_tree(self.path(session_id))

    def remove_all(self) -> None:
        """Delete every scratch directory of this host (at its stop; blocking)."""
        _remove_tree(self.base)


def _make_private_dir(path: Path, mode: int) -> None:
    """Create ``path``, or accept it only if it is a real directory owned by this process."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=mode, parents=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        # In a shared /tmp another user could have planted it (or a symlink) first.
        raise PermissionError(f"scratch directory {path} is not a directory owned by this user")
    os.chmod(path, mode)


def _own(path: Path) -> None:
    """Give ``path`` to the uid bwrap runs as, so the sandbox can write its scratch dir."""
    identity = outer_identity()
    if identity:
        os.chown(path, identity["user"], identity["group"])
    os.chmod(path, 0o700)


def _remove_tree(path: Path) -> None:
    retried: set[str] = set()

    def retry_writable(function: Any, failed: str, exc_info: Any) -> None:
        # A command may have left a directory without write permission (chmod 000).
        if isinstance(exc_info[1], FileNotFoundError):
            return
        # chmod follows symlinks: one a command left must not change what it points to.
        for entry in (os.path.dirname(failed), failed):
            if not os.path.islink(entry):
                with contextlib.suppress(OSError):
                    os.chmod(entry, 0o700)
        if failed in retried:
            raise exc_info[1]  # still refused once made writable: give up on it
        retried.add(failed)
        if function in (os.open, os.scandir):
            # A directory rmtree could not open or list: its subtree, now readable, and it.
            shutil.rmtree(failed, onerror=retry_writable)
            return
        with contextlib.suppress(FileNotFoundError):
            function(failed)

    if path.is_symlink() or not path.exists():
        return
    shutil.rmtree(path, onerror=retry_writable)
    logger.debug("removed scratch directory %s", path)
