"""Test support: OpenSSH servers on 127.0.0.1 acting as remote "machines" for NNI.

Each `LoopbackSshd` is one machine: its own sshd process on a loopback port, its own throw-away
host key, and its own home folder (sshd's `SetEnv HOME=…`), so NNI's remote service keeps each
machine's files (`~/nni-experiments/…`) apart. One client key, made by `client_key`, logs in to
all of them as the current user.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")  # sshd started as root refuses to run without it


def sshd_unavailable() -> str | None:
    """Why no sshd can be started here, or None when one can."""
    if not Path(SSHD).is_file():
        return "OpenSSH server not installed (Debian package openssh-server; .ci/run installs it)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen not installed (Debian package openssh-client)"
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        try:
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True)
        except OSError as err:
            return f"cannot create sshd's privilege separation folder {PRIVSEP_DIR}: {err}"
    return None


def make_key(path: Path) -> Path:
    """A fresh passphrase-less ed25519 key pair at `path` and `path`.pub."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "edgevit-test",
                    "-f", str(path)], check=True, capture_output=True, timeout=60)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LoopbackSshd:
    """One sshd on 127.0.0.1:`port` accepting `client_public_key`; a context manager that stops
    the server (by its process id) on exit."""

    def __init__(self, root: Path, client_public_key: Path, port: int | None = None) -> None:
        self.root = root
        self.home = root / "home"
        self.port = port or free_port()
        self.user = getpass.getuser()
        self.process: subprocess.Popen | None = None
        self.home.mkdir(parents=True, exist_ok=True)
        self.host_key = make_key(root / "host_key")
        self.config = root / "sshd_config"
        self.config.write_text("\n".join([
            "ListenAddress 127.0.0.1",
            f"Port {self.port}",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {client_public_key}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            f"PidFile {root / 'sshd.pid'}",
            f"SetEnv HOME={self.home}",
            "Subsystem sftp internal-sftp",
            "",
        ]))

    def __enter__(self) -> LoopbackSshd:
        self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)],
                                        stdout=subprocess.DEVNULL,
                                        stderr=open(self.root / "sshd.log", "wb"))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sshd did not listen on 127.0.0.1:{self.port} within 20 s")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
