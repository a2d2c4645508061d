"""A fleet of real SSH test hosts on loopback: `SshFleet(n).start()` for the suite and bench/.

Every host is a real `sshd` started by the suite (a child process, never a system service):
its own loopback address (127.0.0.2 and up), a free port on it, its own ed25519 host key and
its own login user (created with `useradd`, home in the fleet's temporary directory, removed
at the end), with passwordless `sudo` (a sudoers.d drop-in removed at the end) so that
`become: true` works. One client key pair per fleet logs in to every host; each sshd allows
only its own user, so a wrong user is refused like on a real server.

Needs root (useradd, sudoers.d, sshd) but no network privileges: everything is loopback.
Python on the targets is this machine's `/usr/bin/python3` (`PYTHON` below; the hosts'
`inventory_vars()` set it as `ansible_python_interpreter`, which skips Ansible's interpreter
discovery round trip).

Cleanup: `stop()` ends every sshd, deletes the users, the sudoers drop-in and the directory;
it also runs at interpreter exit, and every sshd gets SIGTERM if the process that started it
dies (PR_SET_PDEATHSIG). Users and drop-ins of fleets whose process was SIGKILLed are swept
by the next fleet's start (their directory is gone or their owner process is dead).
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import ctypes
import hashlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PYTHON = "/usr/bin/python3"
SUDOERS_DIR = Path("/etc/sudoers.d")
USER_PREFIX = "pbssh"  # login users are pbssh<token><index>, e.g. pbsshq3k9z07
_PR_SET_PDEATHSIG = 1
_sweep_lock = threading.Lock()


def find_binary(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


def fingerprint_of(public_key_line: str) -> str:
    """`SHA256:...` of an OpenSSH public key line (what `ssh-keygen -lf` prints)."""
    blob = base64.b64decode(public_key_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the process that started it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True)


class SshHost:
    """One test host: an sshd on `address`:`port` accepting `user` with the fleet's client key.

    name: the inventory hostname tests use (ssh-01, ssh-02...); home: the user's home, where
    a playbook's effects land; key_path: the client private key (0600, owned by root);
    host_public_key / fingerprint: the host key sshd offers now; log_path: sshd's log.
    """

    def __init__(self, fleet: SshFleet, index: int, address: str) -> None:
        self.fleet = fleet
        self.index = index
        self.name = f"ssh-{index:02d}"
        self.address = address
        self.port = _free_port(address)
        self.user = f"{USER_PREFIX}{fleet.token}{index:02d}"
        self.dir = fleet.dir / "hosts" / self.name
        self.home = self.dir / "home"
        self.host_key_path = self.dir / "ssh_host_ed25519_key"
        self.log_path = self.dir / "sshd.log"
        self.config_path = self.dir / "sshd_config"
        self.log_level = fleet.log_level
        self.process: subprocess.Popen[bytes] | None = None
        self._original_key: tuple[bytes, bytes] | None = None

    # -- what tests read ----------------------------------------------------------------------
    @property
    def key_path(self) -> Path:
        return self.fleet.client_key

    @property
    def host_public_key(self) -> str:
        """The host key line sshd offers: `ssh-ed25519 AAAA...` (no comment)."""
        return " ".join(Path(f"{self.host_key_path}.pub").read_text().split()[:2])

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.host_public_key)

    @property
    def marker(self) -> str:
        """How known_hosts names this host: `[address]:port`."""
        return f"[{self.address}]:{self.port}"

    def public_key_in(self, known_hosts_file: Path) -> bool:
        """Whether the key the host offers now is in `known_hosts_file` for its marker."""
        path = Path(known_hosts_file)
        if not path.exists():
            return False
        blob = self.host_public_key.split()[1]
        return any(line.split()[:1] == [self.marker] and blob in line.split()
                   for line in path.read_text().splitlines())

    def known_hosts_line(self) -> str:
        return f"{self.marker} {self.host_public_key}\n"

    def inventory_vars(self) -> dict[str, str | int]:
        """The host's connection variables for an Ansible inventory."""
        return {"ansible_host": self.address, "ansible_port": self.port,
                "ansible_user": self.user, "ansible_ssh_private_key_file": str(self.key_path),
                "ansible_python_interpreter": PYTHON}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- what tests do ------------------------------------------------------------------------
    def start(self) -> SshHost:
        """Start sshd (if it is not running) and wait until it accepts connections."""
        self.launch()
        self.wait_ready()
        return self

    def stop(self) -> None:
        """Stop sshd and end the user's sessions (multiplexed masters would outlive it):
        afterwards nothing listens on `address`:`port` and nothing of the user runs."""
        if self.process is None:
            return
        _kill_processes_of(self.user)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self) -> SshHost:
        self.stop()
        return self.start()

    def regenerate_host_key(self) -> str:
        """Give the host a new host key (a reinstalled server, or an impostor) and restart
        sshd with it; returns the new fingerprint. `reset()` puts the original key back."""
        if self._original_key is None:
            self._original_key = (self.host_key_path.read_bytes(),
                                  Path(f"{self.host_key_path}.pub").read_bytes())
        self.stop()
        for path in (self.host_key_path, Path(f"{self.host_key_path}.pub")):
            path.unlink()
        _keygen(self.host_key_path, self.name)
        self.start()
        return self.fingerprint

    def set_log_level(self, level: str) -> None:
        """Restart sshd logging at `level` (DEBUG1 shows forwarded connections: a jump host's
        `server_request_direct_tcpip ... target ADDRESS port PORT`)."""
        self.log_level = level
        self._write_config()
        self.restart()

    def reset(self) -> None:
        """Back to how the fleet made it: the original host key, the fleet's log level, sshd
        running, an empty home."""
        if self.log_level != self.fleet.log_level:
            self.stop()
            self.log_level = self.fleet.log_level
            self._write_config()
        if self._original_key is not None:
            self.stop()
            self.host_key_path.write_bytes(self._original_key[0])
            self.host_key_path.chmod(0o600)
            Path(f"{self.host_key_path}.pub").write_bytes(self._original_key[1])
            self._original_key = None
        for entry in self.home.iterdir():
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        if not self.running:
            self.start()

    # -- setup --------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Host key, home, user, sshd_config (no process yet)."""
        self.dir.mkdir(parents=True)
        self.dir.chmod(0o755)
        self.home.mkdir()
        _keygen(self.host_key_path, self.name)
        authorized = self.dir / "authorized_keys"
        authorized.write_text(Path(f"{self.fleet.client_key}.pub").read_text())
        authorized.chmod(0o644)
        self._write_config()

    def _write_config(self) -> None:
        authorized = self.dir / "authorized_keys"
        self.config_path.write_text("\n".join([
            f"ListenAddress {self.address}:{self.port}",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.dir / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized}",
            f"AllowUsers {self.user}",
            "StrictModes no",  # the keys live under /tmp, which is world-writable
            "UsePAM no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            "UseDNS no",
            "PrintMotd no",
            "AllowTcpForwarding yes",  # so a host can be another one's jump host
            "MaxStartups 200:30:400",
            "MaxSessions 100",
            f"LogLevel {self.log_level}",
            "Subsystem sftp internal-sftp",
            "",
        ]))

    def launch(self) -> None:
        if self.running:
            return
        self.process = subprocess.Popen(
            [self.fleet.sshd, "-D", "-f", str(self.config_path), "-E", str(self.log_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent,
        )

    def wait_ready(self, timeout: float = 10) -> None:
        """Until sshd sends its banner (a listening socket alone is not enough)."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"sshd of {self.name} exited: {err.strip()} {self.log()[-500:]}")
            try:
                with socket.create_connection((self.address, self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd of {self.name} not ready within {timeout}s: {self.log()[-500:]}")
            time.sleep(0.02)

    def __repr__(self) -> str:
        return f"<SshHost {self.name} {self.user}@{self.address}:{self.port}>"


class SshFleet:
    """N real SSH hosts: `fleet = SshFleet(3).start(); fleet.hosts[0].address; fleet.stop()`.

    `add(n)` starts n more. Starting is parallel: 20 hosts take about a second, most of it
    ssh-keygen and sshd start-up.
    """

    def __init__(self, n: int = 0, *, first_address: int = 2, log_level: str = "VERBOSE") -> None:
        if n + first_address > 255:
            raise ValueError("at most 253 hosts (127.0.0.2 .. 127.0.0.254)")
        self.size = n
        self.first_address = first_address
        self.log_level = log_level
        self.token = "".join(secrets.choice("abcdefghijkmnpqrstuvwxyz23456789") for _ in range(5))
        self.dir = Path(tempfile.gettempdir()) / f"playbot-ssh-{self.token}"
        self.sudoers_file = SUDOERS_DIR / f"playbot-test-{self.token}"
        self.hosts: list[SshHost] = []
        self.sshd = find_binary("sshd") or "/usr/sbin/sshd"
        self._started = False

    @staticmethod
    def available() -> bool:
        """sshd, ssh, ssh-keygen, ssh-keyscan, sudo and useradd exist and we are root."""
        return (os.geteuid() == 0 and all(find_binary(b) for b in
                ("sshd", "ssh", "ssh-keygen", "ssh-keyscan", "sudo", "useradd", "userdel")))

    @staticmethod
    def missing() -> str:
        """What `available()` lacks, for a skip message."""
        lacking = [b for b in ("sshd", "ssh", "ssh-keygen", "ssh-keyscan", "sudo", "useradd",
                               "userdel") if not find_binary(b)]
        if os.geteuid() != 0:
            lacking.append("root (useradd, sudoers.d)")
        return ", ".join(lacking)

    @property
    def client_key(self) -> Path:
        return self.dir / "client" / "id_ed25519"

    def start(self) -> SshFleet:
        sweep_stale_fleets()
        self.dir.mkdir(mode=0o755)
        self.dir.chmod(0o755)
        (self.dir / "hosts").mkdir(mode=0o755)
        (self.dir / "client").mkdir(mode=0o700)
        (self.dir / "owner").write_text(str(os.getpid()))
        _keygen(self.client_key, f"playbot-test-{self.token}")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        self._started = True
        atexit.register(self.stop)
        self.add(self.size)
        return self

    def add(self, n: int) -> list[SshHost]:
        """Start n more hosts (parallel); returns them."""
        first = len(self.hosts)
        if self.first_address + first + n > 255:
            raise ValueError("at most 253 hosts (127.0.0.2 .. 127.0.0.254)")
        new = [SshHost(self, first + i + 1, f"127.0.0.{self.first_address + first + i}")
               for i in range(n)]
        if not new:
            return []
        self.hosts.extend(new)
        with ThreadPoolExecutor(max_workers=min(8, n)) as pool:
            list(pool.map(SshHost.prepare, new))
        for host in new:  # useradd takes /etc/passwd's lock: one at a time
            subprocess.run(["useradd", "-M", "-N", "-d", str(host.home), "-s", "/bin/sh",
                            "-p", "*", host.user], check=True, capture_output=True)
            os.chown(host.home, pwd.getpwnam(host.user).pw_uid, -1)
            host.home.chmod(0o700)
        self._write_sudoers()
        for host in new:
            host.launch()
        for host in new:
            host.wait_ready()
        return new

    def _write_sudoers(self) -> None:
        text = "".join(f"{h.user} ALL=(ALL:ALL) NOPASSWD: ALL\n" for h in self.hosts)
        tmp = self.sudoers_file.with_name(f".{self.sudoers_file.name}.tmp")  # sudo skips dotfiles
        tmp.write_text(text)
        tmp.chmod(0o440)
        tmp.replace(self.sudoers_file)

    def stop(self) -> None:
        """Stop every sshd, delete the users, the sudoers drop-in and the directory."""
        if not self._started:
            return
        self._started = False
        for host in self.hosts:
            host.stop()
        _remove_users(h.user for h in self.hosts)
        self.sudoers_file.unlink(missing_ok=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        atexit.unregister(self.stop)

    def __enter__(self) -> SshFleet:
        return self.start() if not self._started else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _kill_processes_of(user: str) -> None:
    """SIGKILL, by pid, every process running as `user` (a fleet's own login user)."""
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid == uid:
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def _remove_users(names: Iterable[str]) -> None:
    for name in names:
        subprocess.run(["userdel", "-f", name], capture_output=True)


def sweep_stale_fleets() -> None:
    """Delete the users, sudoers drop-ins and directories of fleets whose process died
    without cleaning up (SIGKILL): their directory is gone or its owner pid is not alive."""
    with _sweep_lock:
        tmp = Path(tempfile.gettempdir())
        stale: set[str] = set()
        for sudoers in SUDOERS_DIR.glob("playbot-test-*"):
            token = sudoers.name.removeprefix("playbot-test-")
            if not _fleet_alive(tmp / f"playbot-ssh-{token}"):
                stale.add(token)
        for entry in pwd.getpwall():
            name = entry.pw_name
            if name.startswith(USER_PREFIX) and len(name) == len(USER_PREFIX) + 7:
                token = name[len(USER_PREFIX):-2]
                if not _fleet_alive(tmp / f"playbot-ssh-{token}"):
                    stale.add(token)
        for token in stale:
            _remove_users(e.pw_name for e in pwd.getpwall()
                          if e.pw_name.startswith(f"{USER_PREFIX}{token}"))
            (SUDOERS_DIR / f"playbot-test-{token}").unlink(missing_ok=True)
            shutil.rmtree(tmp / f"playbot-ssh-{token}", ignore_errors=True)


def _fleet_alive(directory: Path) -> bool:
    try:
        pid = int((directory / "owner").read_text())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
