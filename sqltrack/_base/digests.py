"""The SHA-256 of a file, or of a folder's manifest: what an artifact's checksum is."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from ..errors import InvalidValue

_CHUNK = 1 << 20  # bytes read at a time: constant memory, large enough to be fast


def file_digest(path: str | os.PathLike[str]) -> tuple[str, int]:
    """``(sha256 hex, size)`` of a file, read in 1 MiB chunks (constant memory); of a
    directory, the SHA-256 of its manifest (one ``<sha256>  <relative path>`` line per
    file, sorted by path) and the total size of its files.

    Only regular files are read: a device, FIFO or socket (``/dev/zero`` would never
    end) is an error naming it. Inside a directory a symbolic link to a regular file is
    hashed as that file, under the link's own path; a link to a directory is not
    followed (its files are not part of the manifest); a link to anything else, or one
    that leads nowhere, is an error.

    :raises InvalidValue: no such file or directory, or not a regular file
    """
    path = Path(path)
    if path.is_dir():
        lines, total = [], 0
        for file in sorted(_files(path)):
            digest, size = file_digest(path / file)
            lines.append(f"{digest}  {file}\n")
            total += size
        return hashlib.sha256("".join(lines).encode()).hexdigest(), total
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; the check comes first
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InvalidValue(f"not a regular file (a device, FIFO or socket?): {path}")
        with open(fd, "rb", buffering=0) as f:
            h = hashlib.sha256()
            buffer = bytearray(_CHUNK)
            view = memoryview(buffer)
            size = 0
            while n := f.readinto(buffer):
                h.update(view[:n])
                size += n
    except FileNotFoundError:
        raise InvalidValue(f"no such file or directory: {path}") from None
    return h.hexdigest(), size


def _files(folder: Path) -> Iterator[str]:
    for root, _, names in os.walk(folder):
        for name in names:
            yield (Path(root) / name).relative_to(folder).as_posix()
