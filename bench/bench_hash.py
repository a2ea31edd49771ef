"""Hashing an artifact: speed against ``sha256sum`` and memory, on one large file.

    python bench/bench_hash.py --gigabytes 2

Writes a file of that size (pseudo-random bytes), then alternates ``sha256sum FILE`` and
``sqltrack._base.digests.file_digest(FILE)`` (in a fresh interpreter each, so that its peak
resident memory can be read from ``getrusage``) three times each, the file in the page
cache for both. Prints the median times, the speed ratio (target >= 0.8 of sha256sum)
and the peak RSS growth of the hashing process over a bare ``import sqltrack``
(target < 50 MB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import record

_CHILD = """
import resource, sys, time
from sqltrack import file_digest
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
digest, size = file_digest(sys.argv[1])
seconds = time.perf_counter() - t0
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(digest, size, seconds, grown)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="sqltrack-hash-")) / "big.bin"
    size = int(args.gigabytes * (1 << 30))
    block = os.urandom(1 << 24)  # 16 MiB, repeated
    with open(path, "wb") as f:
        written = 0
        while written < size:
            f.write(block[: size - written])
            written += min(len(block), size - written)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    ours, theirs, grown = [], [], []
    digest = ""
    try:
        subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)  # warm up
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = subprocess.run(["sha256sum", str(path)], check=True, capture_output=True)
            theirs.append(time.perf_counter() - t0)
            digest = out.stdout.split()[0].decode()
            done = subprocess.run(
                [sys.executable, "-c", _CHILD, str(path)],
                check=True,
                capture_output=True,
                text=True,
                env=env,
            )
            ours_digest, ours_size, seconds, kb = done.stdout.split()
            assert (ours_digest, int(ours_size)) == (digest, size), done.stdout
            ours.append(float(seconds))
            grown.append(int(kb) / 1024)
    finally:
        path.unlink()
        path.parent.rmdir()
    speed = statistics.median(theirs) / statistics.median(ours)
    record("artifact hashing: speed, share of sha256sum", speed, ">= 0.8")
    record("artifact hashing: peak RSS growth (MB)", max(grown), "<= 50")
    print(
        f"{size / (1 << 30):.1f} GiB: sha256sum {statistics.median(theirs):.2f} s, file_digest "
        f"{statistics.median(ours):.2f} s (medians of {args.repeat}): {speed:.2f} of "
        f"sha256sum's speed (target >= 0.8); peak RSS growth {max(grown):.1f} MB (< 50)"
    )


if __name__ == "__main__":
    main()
