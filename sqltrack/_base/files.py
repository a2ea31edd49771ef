"""Files of run data that sqltrack creates, and files it finds: owner-only creation, and
whether a file someone may have put in a shared folder may be trusted
(:func:`untrusted_because`: another owner, a directory others can write)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

#: the mode of files sqltrack creates that hold run data (spools, set-aside values,
#: SQLite databases, reports): readable and writable by their owner only
PRIVATE_MODE = 0o600


def private_folder(folder: Path) -> Path:
    """Create ``folder`` (and its parents) if missing, the last one for its owner only."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


def append_private(path: Path, text: str) -> None:
    """Append ``text`` to ``path``, creating it readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_MODE)
    with os.fdopen(fd, "a", encoding="utf-8") as f:
        f.write(text)


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path``: a new file is readable by its owner only; a file that
    exists keeps the mode its owner gave it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def untrusted_because(path: Path) -> str | None:
    """Why a file found in a spool directory must not be acted on, or None if it may:
    it must be a regular file (not a link) of the user running sqltrack that no one else
    may write, in a directory of that user that no one else may write."""
    me = os.geteuid() if hasattr(os, "geteuid") else None
    try:
        info = os.lstat(path)
        folder = os.stat(path.parent)
    except OSError as e:
        return f"cannot read it ({e.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return "it is not a regular file"
    if me is None:  # Windows: no owners to compare
        return None
    if info.st_uid != me:
        return f"it belongs to {_user(info.st_uid)}, not to {_user(me)}"
    if info.st_mode & 0o022:
        return "other users may write it"
    if folder.st_uid != me:
        return f"its directory belongs to {_user(folder.st_uid)}, not to {_user(me)}"
    if folder.st_mode & 0o022:
        return "other users may write its directory"
    return None


def _user(uid: int) -> str:
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name!r}"
    except (ImportError, KeyError):
        return f"uid {uid}"
