"""How long ``import sqltrack`` takes, against ``import psycopg``, in fresh interpreters.

    python bench/bench_import.py --repeat 30

sqltrack imports psycopg only when a PostgreSQL connection is opened, and python-dotenv
only when a config file is read.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from common import record


def measure(statement: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    bare = measure("pass", args.repeat)
    psycopg = measure("import psycopg", args.repeat)
    sqltrack = measure("import sqltrack", args.repeat)
    print(f"python -c pass       {bare:6.1f} ms")
    print(f"import psycopg       {psycopg:6.1f} ms ({psycopg - bare:.1f} ms for the import)")
    print(f"import sqltrack      {sqltrack:6.1f} ms ({sqltrack - bare:.1f} ms for the import)")
    ratio = (sqltrack - bare) / (psycopg - bare)
    print(f"ratio of the imports {ratio:.2f} (target <= 1.2)")
    record("import sqltrack, ratio to import psycopg", ratio, "<= 1.2")


if __name__ == "__main__":
    main()
