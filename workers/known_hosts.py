"""Playbot's own known_hosts: SSH host keys pinned on purpose, never accepted blindly.

The file (setting PLAYBOT_KNOWN_HOSTS, default var/known_hosts) is the only one the workers'
ssh trusts (workers.ssh points UserKnownHostsFile at it and GlobalKnownHostsFile at
/dev/null). Keys get into it by `trust()` — `playbot servers trust HOST...` and
`playbot servers import --trust-host-keys` — or, in labs only, by ssh itself on first
contact when PLAYBOT_SSH_ACCEPT_NEW_HOST_KEYS is on.

Guarantees:
- `trust()` never replaces a pinned key that differs from what the host offers now unless
  asked (`replace=True`); such a host's keys come back with status "changed" and the file
  keeps its old entry for that host.
- Entries are written unhashed, one line per key, `address` (port 22) or `[address]:port`
  first — exactly the name ssh looks up for `ssh -p PORT ADDRESS` — and the inventory
  hostname as the line's comment, so the file says which server a key belongs to.
- The file is kept 0600, in a directory created 0700; concurrent `trust()` calls are
  serialised by an flock on `<file>.lock`; a replace removes the host's old entries with
  `ssh-keygen -R` (hashed ones too), which rewrites the file atomically.
- Fingerprints are `SHA256:<base64>`, the same text `ssh-keygen -lf` prints.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from core.errors import InvalidInput

PINNED = "pinned"  # newly written to the file
UNCHANGED = "unchanged"  # already pinned, the host still offers it
CHANGED = "changed"  # the host offers a different key than the pinned one: refused
REPLACED = "replaced"  # it did, and replace=True pinned the new key instead


@dataclass(frozen=True)
class HostKey:
    """One host key of one server and what `trust()` did with it (status above)."""

    host: str
    address: str
    port: int
    key_type: str
    fingerprint: str
    status: str


@dataclass(frozen=True)
class ScannedKey:
    """A public key a host offered: its type (`ssh-ed25519`...) and base64 blob."""

    key_type: str
    blob: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)


class ScanFailed(InvalidInput):
    """ssh-keyscan got no key from the host (nothing listening, timeout, not SSH...)."""


def fingerprint(blob: str) -> str:
    """`SHA256:...` of a base64 public key blob (the text `ssh-keygen -lf` prints)."""
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def marker(address: str, port: int) -> str:
    """The name ssh looks up in known_hosts: `address` on port 22, else `[address]:port`."""
    bare = address.strip().removeprefix("[").removesuffix("]")
    return bare if int(port) == 22 else f"[{bare}]:{int(port)}"


def scan(address: str, port: int, *, timeout: int = 5) -> list[ScannedKey]:
    """The host keys `address`:`port` offers now (ssh-keyscan, every key type it has).

    Raises ScanFailed (an InvalidInput) naming the address and why when none came back.
    """
    keyscan = shutil.which("ssh-keyscan")
    if keyscan is None:
        raise ScanFailed("ssh-keyscan is not installed on this machine (package openssh-client).")
    bare = address.strip().removeprefix("[").removesuffix("]")
    try:
        done = subprocess.run([keyscan, "-T", str(max(1, int(timeout))), "-p", str(int(port)),
                               "--", bare], capture_output=True, text=True,
                              timeout=max(1, int(timeout)) * 3 + 5, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ScanFailed(f"no SSH answer from {marker(bare, port)} within {timeout}s.") from None
    keys = []
    for line in done.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 3 and not line.startswith("#"):
            keys.append(ScannedKey(fields[1], fields[2]))
    if keys:
        return keys
    reasons = [ln.strip() for ln in done.stderr.splitlines()
               if ln.strip() and not ln.startswith("#")]
    reason = reasons[-1] if reasons else _why_silent(bare, int(port), int(timeout))
    raise ScanFailed(f"no SSH host key from {marker(bare, port)}: {reason}.")


def _why_silent(address: str, port: int, timeout: int) -> str:
    """Why ssh-keyscan got nothing (it says nothing for a refused connection)."""
    try:
        with socket.create_connection((address, port), timeout=max(1, timeout)):
            return f"it accepted the connection but offered no SSH host key within {timeout}s"
    except ConnectionRefusedError:
        return "connection refused (nothing listens there: is sshd running, is the port right?)"
    except TimeoutError:
        return f"no answer within {timeout}s"
    except OSError as exc:
        return exc.strerror or str(exc)


def pinned_keys(known_hosts_file: Path, address: str, port: int) -> list[ScannedKey]:
    """The keys pinned for `address`:`port` (hashed and wildcard entries included: the
    lookup is ssh-keygen -F's). Revoked (@revoked) entries are not pins."""
    path = Path(known_hosts_file)
    if not path.exists():
        return []
    done = subprocess.run(["ssh-keygen", "-F", marker(address, port), "-f", str(path)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    keys = []
    for line in done.stdout.splitlines():
        fields = line.split()
        if not fields or line.startswith("#"):
            continue
        if fields[0] == "@revoked":
            continue
        if fields[0] == "@cert-authority":
            fields = fields[1:]
        if len(fields) >= 3:
            keys.append(ScannedKey(fields[1], fields[2]))
    return keys


def fingerprints(known_hosts_file: Path, address: str, port: int) -> list[str]:
    """Fingerprints of the keys pinned for `address`:`port` in `known_hosts_file`."""
    return [key.fingerprint for key in pinned_keys(known_hosts_file, address, port)]


def trust(targets: Sequence[tuple[str, str, int]], known_hosts_file: Path, *,
          replace: bool = False, timeout: int = 5) -> list[HostKey]:
    """Scan and pin the host keys of `targets` ((hostname, address, port) each).

    Per host: keys never pinned are appended ("pinned"); keys already pinned are left
    ("unchanged"); when the host offers a key of a pinned type that differs, or none of its
    pinned keys, its keys are "changed" and nothing is written for it — unless `replace`,
    then its old entries are removed and the offered keys pinned ("replaced").
    Hosts are scanned in parallel, each within `timeout` seconds. Raises InvalidInput
    naming every host that could not be scanned and why; then nothing is written at all.
    """
    path = Path(known_hosts_file)
    targets = [(host, address, int(port)) for host, address, port in targets]
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(targets)))) as pool:
        scans = list(pool.map(lambda t: _scan_or_error(t[1], t[2], timeout), targets))
    errors = [f"{host}: {result}" for (host, _, _), result in zip(targets, scans, strict=True)
              if isinstance(result, ScanFailed)]
    if errors:
        raise InvalidInput("Cannot read the SSH host key of "
                           + "; ".join(errors) + " Nothing was pinned.")
    results: list[HostKey] = []
    with _locked(path):
        append: list[str] = []
        drop: set[str] = set()
        for (host, address, port), offered in zip(targets, scans, strict=True):
            assert not isinstance(offered, ScanFailed)
            name = marker(address, port)
            pinned = pinned_keys(path, address, port) if path.exists() else []
            statuses = _compare(offered, pinned)
            if CHANGED in statuses.values() and replace:
                drop.add(name)
                statuses = dict.fromkeys(statuses, REPLACED)
            for key in offered:
                status = statuses[key]
                if status in (PINNED, REPLACED):
                    append.append(f"{name} {key.key_type} {key.blob} {_comment(host)}\n")
                results.append(HostKey(host=host, address=address, port=port,
                                       key_type=key.key_type, fingerprint=key.fingerprint,
                                       status=status))
        _write(path, append, drop)
    return results


def _scan_or_error(address: str, port: int, timeout: int) -> list[ScannedKey] | ScanFailed:
    try:
        return scan(address, port, timeout=timeout)
    except ScanFailed as exc:
        return exc


def _compare(offered: list[ScannedKey], pinned: list[ScannedKey]) -> dict[ScannedKey, str]:
    if not pinned:
        return dict.fromkeys(offered, PINNED)
    pinned_set = set(pinned)
    pinned_types = {key.key_type for key in pinned}
    if not pinned_set & set(offered) or any(
            key.key_type in pinned_types and key not in pinned_set for key in offered):
        return dict.fromkeys(offered, CHANGED)
    return {key: UNCHANGED if key in pinned_set else PINNED for key in offered}


def _comment(host: str) -> str:
    return "".join(c if c.isprintable() and not c.isspace() else "_" for c in host) or "-"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    _ensure_dir(path.parent)
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _ensure_dir(directory: Path) -> None:
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)


def _write(path: Path, append: list[str], drop: set[str]) -> None:
    """Remove every entry of the names in `drop` (ssh-keygen -R: hashed ones too, the file
    rewritten atomically, its backup deleted), then append `append`."""
    for name in sorted(drop):
        if path.exists():
            subprocess.run(["ssh-keygen", "-R", name, "-f", str(path)], capture_output=True,
                           check=True, stdin=subprocess.DEVNULL)
            Path(f"{path}.old").unlink(missing_ok=True)
    if not append:
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as out:
        if out.tell() > 0 and not path.read_text().endswith("\n"):
            out.write("\n")
        out.writelines(append)
    path.chmod(0o600)


