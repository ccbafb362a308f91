"""A throwaway PostgreSQL 15 server (and a PgBouncer in front of it) for the tests.

`python -m testing.pgserver run -- CMD ...` starts a fresh cluster in a temporary
directory on a free loopback port, runs CMD with DATABASE_URL pointing at it (and
PGBOUNCER_DATABASE_URL at a transaction-mode PgBouncer, when pgbouncer is
installed), then stops everything and removes the directory. Tests that need to
stop and start the server (outage tests) rebuild a `TempPostgres` from the
environment with `TempPostgres.from_env()`.

As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
A server that cannot start is an error, never a skip.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
DB_USER = "postgres"
DB_PASSWORD = "postgres"
DB_NAME = "chatbackend"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        subprocess.run(
            _as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def create_database(self):
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
                DB_NAME,
            ],
            check=True,
            env=env,
        )

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

    def stop_bouncer(self):
        pidfile = self.root / "pgbouncer.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), 15)
            except (ValueError, ProcessLookupError):
                pass


def run(command):
    root = tempfile.mkdtemp(prefix="chatbackend-pg-")
    os.chmod(root, 0o755)
    server = TempPostgres(root, free_port())
    try:
        server.init()
        server.start()
        server.create_database()
        server.start_bouncer()
        env = {**os.environ, **server.env()}
        print(
            f"PostgreSQL on port {server.port}"
            + (f", PgBouncer on {server.bouncer_port}" if server.bouncer_port else ""),
            flush=True,
        )
        return subprocess.call(command, env=env)
    finally:
        server.stop_bouncer()
        server.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def main(argv):
    if len(argv) < 3 or argv[0] != "run" or argv[1] != "--":
        print("usage: python -m testing.pgserver run -- COMMAND ...", file=sys.stderr)
        return 2
    return run(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
