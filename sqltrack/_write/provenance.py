"""What made a run: its code (git), its Python packages, its hardware.

Each is a JSON document in a column of ``runs`` (``code``, ``packages``, ``hardware``;
schema version 5), so psql reaches it: ``SELECT code->>'commit' FROM runs``. ``"auto"``
collects it here; a dict is stored as given. Collecting never raises: outside a git
checkout, without git or without ``nvidia-smi`` the parts it cannot know are null.
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._base.values import Auto, json_dumps
from .._db.client import Client, operation
from .._db.schema import PROVENANCE, require
from ..errors import InvalidValue
from . import rows as _rows

#: a diff larger than this (bytes) is not stored; its SHA-256 and size are
DIFF_LIMIT = 1 << 20


def _git(folder: Path, *args: str) -> str | None:
    """A git command's output in ``folder``, or None if it fails (or git is missing)."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.decode("utf-8", "surrogateescape") if done.returncode == 0 else None


def _without_credentials(url: str) -> str:
    """A remote URL without user name, password or token (``https://tok@host/x``)."""
    parts = urlsplit(url)
    if parts.scheme and "@" in parts.netloc:
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=host))
    return url


def code_state(
    folder: str | os.PathLike[str] | None = None, diff: bool = True
) -> dict[str, Any] | None:
    """The git state of ``folder`` (default: the folder of the running script, else the
    working directory): ``commit``, ``branch``, ``remote`` (origin's URL without
    credentials), ``dirty``, ``diff`` (of tracked files against the commit, ``git diff
    HEAD --binary``: ``git apply`` on the commit gives the working tree back), or instead
    ``diff_sha256`` and ``diff_bytes`` when it is over :data:`DIFF_LIMIT`, and
    ``untracked`` (file names). None outside a git checkout or without git.

    The diff is stored as it is, secrets in the working tree included (nothing in it is
    redacted): ``diff=False`` leaves it out (``diff`` is then null, and its SHA-256 and
    size are kept, so a later run can tell whether the tree was the same).
    """
    if folder is None:
        script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
        folder = script.resolve().parent if script and script.is_file() else Path.cwd()
    where = Path(folder)
    commit = _git(where, "rev-parse", "HEAD")
    if commit is None:
        return None
    branch = _git(where, "rev-parse", "--abbrev-ref", "HEAD")
    remote = _git(where, "remote", "get-url", "origin")
    status = _git(where, "status", "--porcelain", "--untracked-files=no")
    untracked = _git(where, "ls-files", "--others", "--exclude-standard")
    changes = _git(where, "diff", "HEAD", "--binary") or ""
    state: dict[str, Any] = {
        "commit": commit.strip(),
        "branch": None if branch is None else branch.strip(),
        "remote": None if not remote else _without_credentials(remote.strip()),
        "dirty": bool(status and status.strip()),
        "untracked": [] if not untracked else untracked.splitlines(),
    }
    raw = changes.encode("utf-8", "surrogateescape")
    if diff and len(raw) <= DIFF_LIMIT:
        state["diff"] = changes
    else:
        state.update(diff=None, diff_sha256=hashlib.sha256(raw).hexdigest(), diff_bytes=len(raw))
        why = f"it has {len(raw)} bytes, over {DIFF_LIMIT}" if diff else "diff=False"
        state["note"] = f"the diff is not stored ({why})"
    return state


def packages_state() -> dict[str, Any]:
    """The Python version and the installed distributions, ``{name: version}``."""
    packages = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name] = dist.version
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "packages": dict(sorted(packages.items(), key=lambda item: item[0].lower())),
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gpus() -> list[dict[str, Any]] | None:
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None  # no nvidia-smi
    if done.returncode != 0:
        return None
    gpus = []
    for line in done.stdout.splitlines():
        name, _, memory = line.rpartition(",")
        if name:
            memory_mb = int(memory) if memory.strip().isdigit() else None
            gpus.append({"name": name.strip(), "memory_mb": memory_mb})
    return gpus


def hardware_state() -> dict[str, Any]:
    """The machine: ``cpu`` (model), ``cpus`` (count), ``memory_bytes``, ``gpus`` (name
    and memory of each, from ``nvidia-smi``; null without it), ``machine``, ``system``."""
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "gpus": _gpus(),
        "machine": platform.machine(),
        "system": platform.platform(),
    }


def _set(
    client: Client, run_id: int, column: str, value: Auto | Mapping[str, Any] | None, auto: Any
) -> None:
    document = auto() if value == "auto" else value
    if document is not None and not isinstance(document, Mapping):
        raise InvalidValue(f"run {column}: expected 'auto', a dict or None, got {value!r}")
    text = None if document is None else json_dumps(dict(document), f"run {column}")
    require(client, PROVENANCE, f"runs.{column} needs")
    _rows.set_column(client, "runs", column, run_id, text)


@operation
def run_set_code(
    client: Client, run_id: int, code: Auto | Mapping[str, Any] | None = "auto", diff: bool = True
) -> None:
    """Set the run's code state: ``"auto"`` (:func:`code_state`), a dict, or None.

    :param diff: with ``"auto"``: store the working tree's diff (as it is: secrets in the
        working tree too); False keeps only its SHA-256 and size
    """
    _set(client, run_id, "code", code, lambda: code_state(diff=diff))


@operation
def run_set_packages(
    client: Client, run_id: int, packages: Auto | Mapping[str, Any] | None = "auto"
) -> None:
    """Set the run's packages: ``"auto"`` (:func:`packages_state`), a dict, or None."""
    _set(client, run_id, "packages", packages, packages_state)


@operation
def run_set_hardware(
    client: Client, run_id: int, hardware: Auto | Mapping[str, Any] | None = "auto"
) -> None:
    """Set the run's hardware: ``"auto"`` (:func:`hardware_state`), a dict, or None."""
    _set(client, run_id, "hardware", hardware, hardware_state)
