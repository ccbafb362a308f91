"""A throwaway PostgreSQL 15 server (and a PgBouncer in front of it) for the tests.

`python -m testing.pgserver run -- CMD ...` starts a fresh cluster in a temporary
directory on a free loopback port, runs CMD with DATABASE_URL pointing at it (and
PGBOUNCER_DATABASE_URL at a transaction-mode PgBouncer, when pgbouncer is
installed), then stops everything and removes the directory. Tests that need to
stop and start the server (outage tests) rebuild a `TempPostgres` from the
environment with `TempPostgres.from_env()`, or start one of their own with
`TempPostgres.temporary()`, so the suite's server is never stopped under other tests.
`scratch_database(url)` gives a test a database of its own on a running server
(an end-to-end test whose gunicorn cannot share pytest-django's test database).

As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
A server that cannot start is an error, never a skip.
"""

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
DB_USER = "postgres"
DB_PASSWORD = "postgres"
DB_NAME = "chatbackend"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(url, name):
    """`url` with its database name replaced by `name`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def create_database(url, name):
    """CREATE DATABASE `name` on the server that `url` points at."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(url, name)


def drop_database(url, name):
    """DROP DATABASE `name`, ending any session still connected to it."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@contextlib.contextmanager
def scratch_database(url, prefix="e2e"):
    """A new, empty database on the server of `url`, dropped afterwards; yields its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    new_url = create_database(url, name)
    try:
        yield new_url
    finally:
        drop_database(url, name)


def _as_postgres(cmd):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *cmd]
    return cmd


class TempPostgres:
    def __init__(self, root, port, bouncer_port=None):
        self.root = Path(root)
        self.data = self.root / "data"
        self.port = int(port)
        self.bouncer_port = int(bouncer_port) if bouncer_port else None

    @classmethod
    def from_env(cls):
        return cls(
            os.environ["TEST_PG_ROOT"],
            os.environ["TEST_PG_PORT"],
            os.environ.get("TEST_PGBOUNCER_PORT"),
        )

    @property
    def url(self):
        return f"postgres://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.port}/{DB_NAME}"

    @property
    def bouncer_url(self):
        return f"postgres://{DB_USER}:{DB_PASSWORD}@127.0.0.1:{self.bouncer_port}/{DB_NAME}"

    def env(self):
        env = {
            "DATABASE_URL": self.url,
            "TEST_PG_ROOT": str(self.root),
            "TEST_PG_PORT": str(self.port),
        }
        if self.bouncer_port:
            env["TEST_PGBOUNCER_PORT"] = str(self.bouncer_port)
            env["PGBOUNCER_DATABASE_URL"] = self.bouncer_url
        return env

    @classmethod
    @contextlib.contextmanager
    def temporary(cls, bouncer=False):
        """A fresh server of its own (initdb, start, create the database), removed after."""
        root = tempfile.mkdtemp(prefix="chatbackend-pg-")
        os.chmod(root, 0o755)
        server = cls(root, free_port())
        try:
            server.init()
            server.start()
            server.create_database()
            if bouncer and not server.start_bouncer():
                raise RuntimeError(f"no pgbouncer at {PGBOUNCER}; run bin/setup-system")
            yield server
        finally:
            server.stop_bouncer()
            server.stop("immediate")
            shutil.rmtree(root, ignore_errors=True)

    @classmethod
    @contextlib.contextmanager
    def standby_of(cls, primary):
        """A hot standby of `primary`, streaming its WAL, removed after (read replica tests).

        `pg_basebackup -R` copies the primary's data directory and writes the
        primary_conninfo and standby.signal that make the copy a standby; the copy's
        postgresql.conf then gets its own port and socket directory.
        """
        root = tempfile.mkdtemp(prefix="chatbackend-standby-")
        os.chmod(root, 0o755)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        standby = cls(root, free_port())
        try:
            conninfo = f"host=127.0.0.1 port={primary.port} user={DB_USER} password={DB_PASSWORD}"
            subprocess.run(
                _as_postgres(
                    [
                        str(PG_BIN / "pg_basebackup"),
                        "--dbname",
                        conninfo,
                        "-D",
                        str(standby.data),
                        "-R",
                        "-X",
                        "stream",
                        "--no-sync",
                        "--checkpoint=fast",
                    ]
                ),
                check=True,
                stdout=subprocess.DEVNULL,
            )
            with open(standby.data / "postgresql.conf", "a") as conf:
                conf.write(
                    f"\nport = {standby.port}\nunix_socket_directories = '{standby.root}'\n"
                    "hot_standby = on\n"
                )
            standby.start()
            yield standby
        finally:
            standby.stop("immediate")
            shutil.rmtree(root, ignore_errors=True)

    def init(self):
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        pwfile = self.root / "pwfile"
        pwfile.write_text(DB_PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    DB_USER,
                    "--pwfile",
                    str(pwfile),
                    "--auth",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    "C.UTF-8",
                    "--no-sync",  # a throwaway cluster: nothing to make durable
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\nshared_buffers = 128MB\n"
            )

    def start(self):
        subprocess.run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.root / "postgres.log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def stop(self, mode="fast"):
        """Stop the server (`fast`, `immediate` or `smart`); True when it is down."""
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return not self.is_running()

    def is_running(self):
        status = subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "status"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return status.returncode == 0

    def url_for(self, name):
        return database_url(self.url, name)

    def create_database(self, name=DB_NAME):
        env = {**os.environ, "PGPASSWORD": DB_PASSWORD}
        subprocess.run(
            [
                str(PG_BIN / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                DB_USER,
                name,
            ],
            check=True,
            env=env,
        )
        return self.url_for(name)

    def start_bouncer(self):
        """A PgBouncer in transaction mode, as Neon's pooled endpoint is."""
        if not os.path.exists(PGBOUNCER):
            return False
        self.bouncer_port = free_port()
        userlist = self.root / "userlist.txt"
        userlist.write_text(f'"{DB_USER}" "{DB_PASSWORD}"\n')
        ini = self.root / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.bouncer_port}\n"
            f"unix_socket_dir = {self.root}\n"
            "auth_type = plain\n"
            f"auth_file = {userlist}\n"
            "pool_mode = transaction\n"
            "max_client_conn = 500\ndefault_pool_size = 20\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"pidfile = {self.root}/pgbouncer.pid\n"
            f"logfile = {self.root}/pgbouncer.log\n"
        )
        if os.geteuid() == 0:
            for path in (userlist, ini):
                shutil.chown(path, "postgres", "postgres")
        subprocess.run(_as_postgres([PGBOUNCER, "-d", str(ini)]), check=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.bouncer_port), 1).close()
                return True
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("pgbouncer did not start; see " + str(self.root / "pgbouncer.log"))

    def bouncer_log(self):
        """PgBouncer's log: one "login attempt: db=NAME" line per client connection."""
        path = self.root / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_bouncer(self):
        pidfile = self.root / "pgbouncer.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), 15)
            except (ValueError, ProcessLookupError):
                pass


def run(command):
    """Run `command` with a fresh server (and its PgBouncer) in its environment."""
    with TempPostgres.temporary(bouncer=True) as server:
        print(f"PostgreSQL on port {server.port}, PgBouncer on {server.bouncer_port}", flush=True)
        return subprocess.call(command, env={**os.environ, **server.env()})


def main(argv):
    if len(argv) < 3 or argv[0] != "run" or argv[1] != "--":
        print("usage: python -m testing.pgserver run -- COMMAND ...", file=sys.stderr)
        return 2
    return run(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
