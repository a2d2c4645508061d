"""SSH private key files of servers: the check that a worker can use one and no one else can.

`check_key_file` is called when a server's key path is registered (inventory import, the
CLI) and again by the worker right before a run, so a key that was moved, re-permissioned
or is unreadable by the worker's user is refused with the fix instead of an SSH error.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from core.errors import InvalidInput


class BadKeyFile(InvalidInput):
    """A server's SSH private key file cannot or should not be used (message says the fix)."""


def check_key_file(path: str) -> None:
    """Refuse a private key file ssh would refuse or that others could read.

    Raises BadKeyFile (an InvalidInput) naming the file and the fix when it does not exist,
    is not a regular file (symlinks are followed), cannot be read by this process, or is
    readable or writable by its group or others (ssh itself refuses such keys; fix:
    `chmod 600 FILE`). `~` is expanded, as Ansible does.
    """
    text = str(path or "").strip()
    if not text:
        raise BadKeyFile("No SSH key file given.")
    file = Path(os.path.expanduser(text))
    try:
        info = file.stat()
    except FileNotFoundError:
        raise BadKeyFile(f"SSH key file `{text}` does not exist on this machine: copy the "
                         "private key there (owned by the worker's user, mode 600) or fix "
                         "the server's key path.") from None
    except PermissionError:
        raise BadKeyFile(f"SSH key file `{text}` cannot be reached by this process (user "
                         f"{_user()}): a directory on its path is closed to it; give the "
                         "worker's user access to the directory, or move the key.") from None
    except OSError as exc:
        raise BadKeyFile(f"SSH key file `{text}` cannot be read: {exc.strerror}.") from None
    if not stat.S_ISREG(info.st_mode):
        raise BadKeyFile(f"SSH key file `{text}` is not a regular file: give the path of "
                         "the private key file itself.")
    if not os.access(file, os.R_OK):
        raise BadKeyFile(f"SSH key file `{text}` is not readable by this process (user "
                         f"{_user()}): `chown {_user()} {text}` and `chmod 600 {text}`.")
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise BadKeyFile(f"SSH key file `{text}` is open to its group or others "
                         f"(mode {mode:03o}); ssh refuses such keys: `chmod 600 {text}`.")


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())
