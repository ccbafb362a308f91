"""Run the app as production does, for end-to-end tests, reliability runs and benchmarks.

`procfile_command(name)` reads a line of the committed Procfile, `run_release`
runs its `release:` line, and `GunicornServer` starts the `web:` line exactly as a
platform would (with $PORT set), against a given DATABASE_URL, with DEBUG off.
`collectstatic` is the build step that production runs before either.
`HttpClient` speaks JSON to the running server with nothing but the standard library.
"""

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .pgserver import database_url, free_port, scratch_database

ROOT = Path(__file__).resolve().parent.parent
STATIC_ROOT = ROOT / "staticfiles"  # settings.STATIC_ROOT
VENV_BIN = Path(sys.executable).parent
_collected = False


def procfile_command(name):
    for line in (ROOT / "Procfile").read_text().splitlines():
        process, _, command = line.partition(":")
        if process.strip() == name:
            return command.strip()
    raise KeyError(f"Procfile has no {name!r} line")


def production_env(database_url, **extra):
    """The environment of a production process, pointed at `database_url`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTEST", "DATABASE_URL", "DIRECT_DATABASE_URL"))
    }
    env.update(
        {
            "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
            "DATABASE_URL": database_url,
            "DEBUG": "0",
            "SECRET_KEY": "e2e-secret-key-" + "x" * 40,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


def _run(command, env, timeout):
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{command!r} exited with {result.returncode}\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


def run_release(env, timeout=300):
    """Run the Procfile's release command (migrations) and fail loudly if it fails."""
    return _run(["bash", "-c", procfile_command("release")], env, timeout)


def _static_sources_fingerprint():
    """A digest of every file the staticfiles finders see, or None outside Django."""
    try:
        from django.apps import apps
        from django.contrib.staticfiles.finders import get_finders

        if not apps.ready:
            return None
        digest = hashlib.sha256()
        for finder in get_finders():
            for path, storage in finder.list([]):
                stat = os.stat(storage.path(path))
                digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()
    except Exception:  # no Django here: collect every time
        return None


def collectstatic(env=None, force=False, timeout=300):
    """The build step: gather static files into STATIC_ROOT (staticfiles/) for whitenoise.

    Production runs it at build time (docs/deploy.md). Here it runs at most once
    per test process, and not at all while staticfiles/ already holds a complete
    collection of the same sources (`force` overrides both).
    """
    global _collected
    if _collected and not force:
        return None
    stamp = STATIC_ROOT / ".sources-fingerprint"
    fingerprint = _static_sources_fingerprint()
    if (
        not force
        and fingerprint
        and (STATIC_ROOT / "staticfiles.json").exists()
        and stamp.exists()
        and stamp.read_text() == fingerprint
    ):
        _collected = True
        return None
    stamp.unlink(missing_ok=True)
    env = env or production_env("")
    result = _run(
        [str(VENV_BIN / "python"), "manage.py", "collectstatic", "--noinput"], env, timeout
    )
    if fingerprint:
        stamp.write_text(fingerprint)
    _collected = True
    return result


def manage(env, *args, timeout=120):
    """`python manage.py ARGS` in a production environment; its CompletedProcess."""
    return _run([str(VENV_BIN / "python"), "manage.py", *args], env, timeout)


class GunicornServer:
    """A Procfile line (`web:` unless `process` names another) on a free port; its
    output goes to `log_path`."""

    def __init__(self, env, port=None, log_path=None, process="web"):
        self.process_type = process
        self.port = port or free_port()
        self.env = {**env, "PORT": str(self.port)}
        if log_path is None:
            handle, log_path = tempfile.mkstemp(prefix="gunicorn-", suffix=".log")
            os.close(handle)
        self.log_path = Path(log_path)
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=60):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                ["bash", "-c", "exec " + procfile_command(self.process_type)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.process.returncode}:\n{self.log_text()[-4000:]}"
                )
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"gunicorn did not answer /healthz in time:\n{self.log_text()[-4000:]}")

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    @property
    def master_pid(self):
        return self.process.pid

    def worker_pids(self):
        """The pids of the master's worker processes."""
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return sorted(int(pid) for pid in out.split())

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@contextlib.contextmanager
def production_site(server_url, bouncer_url=None, **extra):
    """A fresh database on the server of `server_url`, migrated by the release command,
    served by the web command; yields the running `GunicornServer`.

    With `bouncer_url` (a PgBouncer in front of that server) the web process talks to
    the database through it, while the release goes over the direct URL, as on Neon.
    """
    collectstatic()
    with scratch_database(server_url) as direct_url:
        name = direct_url.rsplit("/", 1)[1]
        env = production_env(
            database_url(bouncer_url, name) if bouncer_url else direct_url,
            WEB_CONCURRENCY=2,
            GUNICORN_THREADS=4,
            **extra,
        )
        if bouncer_url:
            env["DIRECT_DATABASE_URL"] = direct_url
        run_release(env)
        with GunicornServer(env) as server:
            server.database_url = direct_url
            server.database_name = name
            server.through_bouncer = bool(bouncer_url)
            yield server


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def content_type(self):
        return self.headers.get("Content-Type", "")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


class HttpClient:
    """A tiny JSON client for a running server; `token` is sent as a Bearer token."""

    def __init__(self, base_url, token=None, timeout=30):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method, path, data=None, headers=None):
        body = None if data is None else json.dumps(data).encode()
        all_headers = {"Accept": "application/json"}
        if body is not None:
            all_headers["Content-Type"] = "application/json"
        if self.token:
            all_headers["Authorization"] = f"Bearer {self.token}"
        all_headers.update(headers or {})
        url = path if path.startswith("http") else self.base_url + path
        request = urllib.request.Request(url, data=body, headers=all_headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return Response(answer.status, answer.headers, answer.read())
        except urllib.error.HTTPError as error:
            with error:
                return Response(error.code, error.headers, error.read())

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, data=None, **kwargs):
        return self.request("POST", path, data, **kwargs)

    def login(self, username, password):
        """Register `username` (if new) and keep an access token; returns the token pair."""
        self.post("/api/v1/auth/register/", {"username": username, "password": password})
        answer = self.post("/api/v1/auth/token/", {"username": username, "password": password})
        if answer.status != 200:
            raise AssertionError(f"token for {username}: {answer!r}")
        tokens = answer.json()
        self.token = tokens["access"]
        return tokens


CONNECTION_MODES = {
    "per-request": {"DB_POOL": "0", "CONN_MAX_AGE": "0"},
    "persistent": {"DB_POOL": "0", "CONN_MAX_AGE": "600"},
    "pool": {"DB_POOL": "1"},
}


def compare_connections(seconds=8, connections=16, rounds=3):
    """Requests per second and latency of each connection mode, direct and via PgBouncer.

    Needs `wrk` and the environment of `python -m testing.pgserver run -- ...`.
    Each mode serves GET /api/v1/tasks/ (an authenticated page of 20 tasks) from
    gunicorn with WEB_CONCURRENCY=2 and GUNICORN_THREADS=4; the modes run side by
    side and take turns under load, so a noisy machine disturbs them alike.
    """
    import re
    import shutil
    import statistics
    from contextlib import ExitStack

    wrk = shutil.which("wrk")
    if not wrk:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    base = os.environ["DATABASE_URL"]
    bouncer = os.environ.get("PGBOUNCER_DATABASE_URL")
    results = {}
    with scratch_database(base, prefix="bench") as direct_url:
        routes = {"direct": direct_url}
        if bouncer:
            routes["pgbouncer"] = database_url(bouncer, direct_url.rsplit("/", 1)[1])
        run_release(production_env(direct_url))
        for route, url in routes.items():
            with ExitStack() as stack:
                targets = {}
                for mode, settings in CONNECTION_MODES.items():
                    env = production_env(
                        url,
                        WEB_CONCURRENCY=2,
                        GUNICORN_THREADS=4,
                        THROTTLE_RATE_USER="100000000/minute",
                        THROTTLE_RATE_AUTH="100000/minute",
                        DISABLE_SERVER_SIDE_CURSORS="1" if route == "pgbouncer" else "0",
                        **settings,
                    )
                    server = stack.enter_context(GunicornServer(env))
                    client = HttpClient(server.url)
                    client.login(f"bench-{route}-{mode}", "bench-password-123")
                    for i in range(20):
                        client.post("/api/v1/tasks/", {"title": f"task {i}"})
                    targets[mode] = (server.url + "/api/v1/tasks/", client.token)
                for round_ in range(rounds + 1):
                    for mode, (target, token) in targets.items():
                        duration = "2s" if round_ == 0 else f"{seconds}s"  # round 0: warm-up
                        out = subprocess.run(
                            [
                                wrk,
                                "-t2",
                                f"-c{connections}",
                                f"-d{duration}",
                                "--latency",
                                "-H",
                                f"Authorization: Bearer {token}",
                                target,
                            ],
                            capture_output=True,
                            text=True,
                            check=True,
                        ).stdout
                        if round_ == 0:
                            continue
                        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
                        p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)
                        p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)
                        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
                        bad = int(bad.group(1)) if bad else 0
                        results.setdefault((route, mode), []).append((rps, p50, p99, bad))
                        print(
                            f"{route:9} {mode:11} {rps:7.0f} req/s  p50 {p50:>8}  "
                            f"p99 {p99:>8}  non-2xx {bad}",
                            flush=True,
                        )
    print("\nmedian of", rounds, "runs:")
    for (route, mode), runs in results.items():
        median = statistics.median(run[0] for run in runs)
        print(f"{route:9} {mode:11} {median:7.0f} req/s")
    return results


def compare_outage(down_seconds=10):
    """How each reusing connection mode lives through a database outage.

    For each mode: gunicorn on a PostgreSQL of its own, which is stopped for
    `down_seconds` and started again; prints the slowest answer while it is down
    (all must be 503) and how long until 8 answers in a row are 200 once it is back.
    """
    from .pgserver import TempPostgres

    for mode in ("persistent", "pool"):
        with TempPostgres.temporary() as postgres:
            env = production_env(
                postgres.url, WEB_CONCURRENCY=2, GUNICORN_THREADS=4, **CONNECTION_MODES[mode]
            )
            run_release(env)
            with GunicornServer(env) as server:
                client = HttpClient(server.url)
                client.login("outage", "Outage-Passw0rd-7741")
                for _ in range(8):
                    client.get("/api/v1/tasks/")
                postgres.stop("fast")
                statuses, slowest = set(), 0.0
                until = time.monotonic() + down_seconds
                while time.monotonic() < until:
                    started = time.monotonic()
                    statuses.add(client.get("/api/v1/tasks/").status)
                    slowest = max(slowest, time.monotonic() - started)
                postgres.start()
                started, streak, failed = time.monotonic(), 0, 0
                while streak < 8 and time.monotonic() - started < 120:
                    ok = client.get("/api/v1/tasks/").status == 200
                    streak, failed = (streak + 1, failed) if ok else (0, failed + 1)
                print(
                    f"{mode:11} down: {sorted(statuses)} slowest {slowest:.2f}s; back: "
                    f"{failed} failed, 8 x 200 after {time.monotonic() - started:.2f}s",
                    flush=True,
                )


if __name__ == "__main__":
    commands = {"compare-connections": compare_connections, "compare-outage": compare_outage}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        raise SystemExit("usage: python -m testing.servers compare-connections|compare-outage")
    commands[sys.argv[1]]()
