"""How the workers' Ansible talks SSH: the environment of ansible-playbook, bastion
ProxyCommands, and what an unreachable host's job says.

`ansible_ssh_env(options)` gives ansible-playbook (through ansible-runner's `envvars`):
- host keys checked strictly against Playbot's own known_hosts only
  (UserKnownHostsFile=<file>, GlobalKnownHostsFile=/dev/null, StrictHostKeyChecking=yes,
  or accept-new where a lab allows it: unknown keys pinned on first contact, a *changed* key
  still refused), ANSIBLE_HOST_KEY_CHECKING=True so nothing turns that off;
- no prompt ever (BatchMode=yes: a passphrase-protected key or a password login fails at
  once instead of hanging), no retries (ANSIBLE_SSH_RETRIES=0);
- a bounded connect: ConnectTimeout and ANSIBLE_TIMEOUT are `connect_timeout` seconds
  (OpenSSH applies it to the TCP connect and to the banner exchange);
- multiplexing: ControlMaster=auto, ControlPersist (60 s), control sockets in a short
  directory (a unix socket path has at most 108 bytes);
- pipelining (ANSIBLE_PIPELINING) on by default: a play or host that cannot use it sets
  `ansible_pipelining: false` (Ansible's own variable, which wins over the environment;
  e.g. a sudoers with `requiretty`). `SshOptions(pipelining=False)` turns it off for all.

Jump hosts: `proxy_command(...)` builds an `ansible_ssh_common_args` value whose inner ssh
checks the jump host's key against the same known_hosts, with the same timeout and no
prompt — an operator's own ProxyCommand would use ~/.ssh/known_hosts instead.

`explain_unreachable(...)` turns Ansible's unreachable message into the one line a job
ends with: unknown host key (its fingerprint and `playbot servers trust HOST`), changed
host key (a warning that this may be an attack, and how to re-pin after checking), else
Ansible's own reason (connection refused, timed out, permission denied...).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from workers.config import WorkerConfig
from workers.known_hosts import ScanFailed, fingerprints, marker, scan

MAX_CONTROL_DIR = 70  # + "/" + 10-char hash + ssh's ".XXXXXXXXXXXXXXXX" while binding < 108
MESSAGE_LIMIT = 500


@dataclass(frozen=True)
class SshOptions:
    """The SSH behaviour of one worker (from WorkerConfig: `SshOptions.from_config`).

    control_dir None: Ansible's default, ~/.ansible/cp of the worker's user.
    """

    known_hosts_file: Path
    accept_new_host_keys: bool = False
    connect_timeout: int = 10
    control_dir: Path | None = None
    pipelining: bool = True
    control_persist: int = 60

    @classmethod
    def from_config(cls, config: WorkerConfig, *, control_dir: Path | None = None) -> SshOptions:
        return cls(known_hosts_file=Path(config.known_hosts_file),
                   accept_new_host_keys=config.ssh_accept_new_host_keys,
                   connect_timeout=config.ssh_connect_timeout, control_dir=control_dir)


def ssh_options_args(options: SshOptions, *, multiplex: bool = True) -> list[str]:
    """The `-o` options every ssh of a run gets (the jump host's too, without multiplexing)."""
    known_hosts = _ssh_path(Path(options.known_hosts_file).expanduser().absolute())
    checking = "accept-new" if options.accept_new_host_keys else "yes"
    timeout = max(1, int(options.connect_timeout))
    args = [
        f"UserKnownHostsFile={known_hosts}",
        "GlobalKnownHostsFile=/dev/null",
        f"StrictHostKeyChecking={checking}",
        "HashKnownHosts=no",  # accept-new pins stay readable and `servers trust` can see them
        "UpdateHostKeys=no",  # a host never rotates its own pin
        "CheckHostIP=no",
        "BatchMode=yes",
        f"ConnectTimeout={timeout}",
        "ServerAliveInterval=15",
        "ServerAliveCountMax=4",
    ]
    if multiplex:
        args[:0] = ["ControlMaster=auto", f"ControlPersist={int(options.control_persist)}s"]
    else:
        args.insert(0, "ControlMaster=no")
    return [part for arg in args for part in ("-o", arg)]


def ansible_ssh_env(options: SshOptions) -> dict[str, str]:
    """Environment variables for ansible-playbook (merge into ansible-runner's envvars).

    Raises ValueError when `control_dir` is too long for unix socket paths.
    """
    control_dir = Path(options.control_dir) if options.control_dir else Path("~/.ansible/cp")
    expanded = control_dir.expanduser()
    if len(str(expanded)) > MAX_CONTROL_DIR:
        raise ValueError(f"SSH control directory {expanded} is longer than {MAX_CONTROL_DIR} "
                         "characters: ssh's control sockets would exceed the 108-byte limit "
                         "of unix socket paths; use a shorter directory.")
    return {
        "ANSIBLE_SSH_ARGS": shlex.join(ssh_options_args(options)),
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_PIPELINING": "True" if options.pipelining else "False",
        "ANSIBLE_TIMEOUT": str(max(1, int(options.connect_timeout))),
        "ANSIBLE_SSH_RETRIES": "0",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(expanded),
    }


def proxy_command(jump_address: str, options: SshOptions, *, port: int = 22,
                  user: str | None = None, key_path: str | None = None) -> str:
    """An `ansible_ssh_common_args` value reaching the target through a jump host:
    `-o 'ProxyCommand=ssh ... -W %h:%p [user@]jump'`, the jump's host key checked against
    Playbot's known_hosts (pin it with `playbot servers trust --bastion ADDRESS[:PORT]`)."""
    inner = ["ssh", *ssh_options_args(options, multiplex=False), "-p", str(int(port))]
    if key_path:
        inner += ["-o", "IdentitiesOnly=yes", "-i", _ssh_path(Path(key_path).expanduser())]
    if user:
        inner += ["-l", user]
    inner += ["-W", "%h:%p", jump_address.strip().removeprefix("[").removesuffix("]")]
    return shlex.join(["-o", "ProxyCommand=" + shlex.join(inner)])


_PREFIX = re.compile(r"^\s*(Failed to connect to the host via ssh:|"
                     r"Data could not be sent to remote host[^:]*:)\s*", re.IGNORECASE)
_UNKNOWN = re.compile(r"No (\S+) host key is known for (\S+) and you have requested strict")
_CHANGED = re.compile(r"Host key for (\S+) has changed and you have requested strict")
_OFFERED = re.compile(r"fingerprint for the (\S+) key sent by the remote host is\s+(SHA256:\S+?)\.?\s")
_REASONS = [
    (re.compile(r"connect to host (\S+) port (\d+): Connection refused"),
     lambda m: f"connection refused by {m[1]} port {m[2]} (nothing listens there: is sshd "
               f"running, is the port right?)"),
    (re.compile(r"connect to host (\S+) port (\d+): (Connection timed out|Operation timed out)"),
     lambda m: f"no answer from {m[1]} port {m[2]}: connection timed out"),
    (re.compile(r"Connection timed out during banner exchange|Connection to (\S+) port (\d+) timed out"),
     lambda m: "no SSH answer: timed out during the SSH handshake"),
    (re.compile(r"(\S+@\S+): Permission denied \(([^)]*)\)"),
     lambda m: f"{m[1]}: permission denied ({m[2]}): check the server's SSH user and key "
               "file, and that the key is in that user's authorized_keys"),
    (re.compile(r"Could not resolve hostname (\S+?):? (.+)"),
     lambda m: f"could not resolve the hostname {m[1]}: {m[2].strip()}"),
    (re.compile(r"connect to host (\S+) port (\d+): (.+)"),
     lambda m: f"cannot connect to {m[1]} port {m[2]}: {m[3].strip()}"),
    (re.compile(r"Load key \"?([^\":]+)\"?: (.+)"),
     lambda m: f"the SSH key {m[1]} cannot be used: {m[2].strip()}"),
]


def explain_unreachable(host: str, address: str | None, port: int | None, message: str,
                        options: SshOptions, *, ssh_common_args: str | None = None) -> str:
    """The one-line "unreachable: ..." a job ends with, from Ansible's unreachable `msg`
    (pass the whole message: the host key warnings span several lines).

    An unknown host key names the fingerprint the host offers (learned with ssh-keyscan
    within min(3, connect_timeout) seconds) and `playbot servers trust HOST`; a changed key
    warns that this may be an attack and says how to re-pin once the key is checked; both
    say when the key is the jump host's. Anything else: Ansible's own reason, one line.

    ssh_common_args: the host's `ansible_ssh_common_args`. Through a multiplexed
    connection ssh drops a ProxyCommand's own errors ("Connection closed by UNKNOWN port
    65535" is all Ansible reports), so for such a failure the jump host named there
    (a `ssh ... -W %h:%p JUMP` ProxyCommand, or ProxyJump) has its key checked here.
    """
    text = _PREFIX.sub("", (message or "").replace("\r", ""))
    target = marker(address or host, port or 22)
    if found := _CHANGED.search(text):
        return _limit(_changed(host, target, found[1], text, options))
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in text:
        return _limit(_changed(host, target, target, text, options))
    if found := _UNKNOWN.search(text):
        return _limit(_unknown(host, target, found[1], found[2], options))
    if ("UNKNOWN port 65535" in text and (jump := _jump_host(ssh_common_args))
            and (diagnosis := _jump_key_problem(host, jump, options))):
        return _limit(diagnosis)
    for pattern, explain in _REASONS:
        if found := pattern.search(text):
            reason = explain(found)
            if "timed out" in reason:
                reason += f" (connect timeout {max(1, int(options.connect_timeout))}s)"
            return _limit(f"unreachable: {host}: {reason}.")
    if "Host key verification failed" in text:
        return _limit(f"unreachable: {host}: host key verification failed for {target}: "
                      f"check its pinned key (`playbot servers trust {host}`).")
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.strip().lower().startswith(("warning:", "@"))]
    return _limit(f"unreachable: {host}: {lines[-1] if lines else 'no reason given by Ansible'}")


def _unknown(host: str, target: str, key_type: str, seen: str, options: SshOptions) -> str:
    addr, port = _split_marker(seen)
    jump = seen != target
    whose = f"of the jump host {seen} (on the way to {host})" if jump else f"of {host} ({seen})"
    command = (f"`playbot servers trust --bastion {seen}`" if jump
               else f"`playbot servers trust {host}`")
    try:
        offered = scan(addr, port, timeout=min(3, max(1, int(options.connect_timeout))))
        wanted = [k for k in offered if _type_name(k.key_type) == key_type.upper()] or offered
        prints = ", ".join(f"{_type_name(k.key_type)} {k.fingerprint}" for k in wanted)
        offers = f"it offers {prints}"
    except ScanFailed as exc:
        offers = f"its key could not be read now ({exc})"
    return (f"unreachable: the SSH host key {whose} is not pinned and Playbot never accepts "
            f"an unknown key: {offers}. If that is the server's key, pin it: {command}.")


def _changed(host: str, target: str, seen: str, text: str, options: SshOptions) -> str:
    addr, port = _split_marker(seen)
    jump = seen != target
    whose = f"of the jump host {seen} (on the way to {host})" if jump else f"of {host} ({seen})"
    offered = _OFFERED.search(text + " ")
    now = f"it now offers {offered[1]} {offered[2]}" if offered else "it offers another key"
    pinned = ", ".join(fingerprints(options.known_hosts_file, addr, port)) or "?"
    command = (f"playbot servers trust --bastion {seen} --replace" if jump
               else f"playbot servers trust {host} --replace")
    return (f"unreachable: WARNING: the SSH host key {whose} has CHANGED: {now}, Playbot "
            f"pinned {pinned}. This may be an attack (someone between Playbot and the "
            f"server) or a reinstalled server: check the new key with the server's owner "
            f"(on the server: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), and only "
            f"then re-pin it: `{command}`.")


def _jump_host(common_args: str | None) -> tuple[str, int] | None:
    """The (address, port) of the jump host in `ansible_ssh_common_args`, if it names one."""
    try:
        args = shlex.split(common_args or "")
    except ValueError:
        return None
    for i, arg in enumerate(args):
        value = args[i + 1] if arg in ("-o", "-J") and i + 1 < len(args) else arg
        key, _, rest = value.partition("=")
        if arg == "-J" or key.lower() == "proxyjump":
            hop = (rest if arg != "-J" else value).split(",")[0].rpartition("@")[2]
            addr, _, hop_port = hop.rpartition(":") if hop.count(":") == 1 else (hop, "", "")
            return (addr or hop).strip("[]"), int(hop_port) if hop_port.isdigit() else 22
        if key.lower() == "proxycommand":
            try:
                inner = shlex.split(rest)
            except ValueError:
                return None
            if not inner or Path(inner[0]).name != "ssh" or "-W" not in inner:
                return None
            jump_port = 22
            for j, part in enumerate(inner[:-1]):
                if part == "-p" and inner[j + 1].isdigit():
                    jump_port = int(inner[j + 1])
            return inner[-1].rpartition("@")[2].strip("[]"), jump_port
    return None


def _jump_key_problem(host: str, jump: tuple[str, int], options: SshOptions) -> str | None:
    """The unknown / changed key message for the jump host, or None when its key is fine."""
    addr, port = jump
    seen = marker(addr, port)
    pinned = set(fingerprints(options.known_hosts_file, addr, port))
    if not pinned:
        return _unknown(host, "", "", seen, options)
    try:
        offered = scan(addr, port, timeout=min(3, max(1, int(options.connect_timeout))))
    except ScanFailed:
        return None
    if pinned & {key.fingerprint for key in offered}:
        return None
    text = f"The fingerprint for the {_type_name(offered[0].key_type)} key sent by the " \
           f"remote host is\n{offered[0].fingerprint}."
    return _changed(host, "", seen, text, options)


def _split_marker(name: str) -> tuple[str, int]:
    if found := re.fullmatch(r"\[([^\]]+)\]:(\d+)", name):
        return found[1], int(found[2])
    return name, 22


def _type_name(key_type: str) -> str:
    """ssh-ed25519 → ED25519, ecdsa-sha2-nistp256 → ECDSA, ssh-rsa → RSA (ssh's wording)."""
    name = key_type.lower()
    if "ed25519" in name:
        return "ED25519"
    if "ecdsa" in name:
        return "ECDSA"
    if "rsa" in name:
        return "RSA"
    return key_type.upper()


def _ssh_path(path: Path) -> str:
    """A path as an ssh option value: `%` doubled (ssh expands %-tokens), quoted if spaced."""
    text = str(path).replace("%", "%%")
    return f'"{text}"' if any(c.isspace() for c in text) else text


def _limit(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= MESSAGE_LIMIT else line[: MESSAGE_LIMIT - 1] + "…"
