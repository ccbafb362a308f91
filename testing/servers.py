"""Run the app as production does, for end-to-end tests, reliability runs and benchmarks.

`procfile_command(name)` reads a line of the committed Procfile, `run_release`
runs its `release:` line, and `GunicornServer` starts the `web:` line exactly as a
platform would (with $PORT set), against a given DATABASE_URL, with DEBUG off.
`collectstatic` is the build step that production runs before either.
`HttpClient` speaks JSON to the running server (httpx). Comparisons of server
settings under load live in bench/ (`python -m bench.connections`).
"""

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from .pgserver import database_url, free_port, scratch_database

ROOT = Path(__file__).resolve().parent.parent
STATIC_ROOT = ROOT / "staticfiles"  # settings.STATIC_ROOT
VENV_BIN = Path(sys.executable).parent
_collected = False


def procfile_command(name, root=ROOT):
    for line in (Path(root) / "Procfile").read_text().splitlines():
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
    output goes to `log_path`. `root` is the checkout it runs (this one unless
    given: bench.ab runs another beside it)."""

    def __init__(self, env, port=None, log_path=None, process="web", root=ROOT):
        self.process_type = process
        self.root = Path(root)
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
                ["bash", "-c", "exec " + procfile_command(self.process_type, self.root)],
                cwd=self.root,
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
                if httpx.get(self.url + "/healthz", timeout=2, trust_env=False).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
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
    """An answer as the end-to-end tests read it: `status`, `headers` (any case),
    `body` (bytes), `content_type` and `json()`, over the `httpx.Response`."""

    def __init__(self, answer):
        self.answer = answer

    @property
    def status(self):
        return self.answer.status_code

    @property
    def headers(self):
        return self.answer.headers

    @property
    def body(self):
        return self.answer.content

    @property
    def content_type(self):
        return self.headers.get("Content-Type", "")

    def json(self):
        return self.answer.json()

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


class HttpClient:
    """JSON to a running server through httpx; `token`, while set, goes as a Bearer token.

    Every request opens a connection of its own (no keep-alive), as the standard
    library's client did before: no test depends on gunicorn's keep-alive timeout
    racing a request. One client may be shared by threads (httpx's pool is
    thread-safe). Proxy variables of the environment are ignored: the target is
    always local.
    """

    def __init__(self, base_url, token=None, timeout=30):
        self.token = token
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Accept": "application/json", "Accept-Encoding": "identity"},
            timeout=timeout,
            limits=httpx.Limits(max_keepalive_connections=0),
            trust_env=False,
        )

    def request(self, method, path, data=None, headers=None):
        """`data` goes as a JSON body; `headers` override the client's."""
        auth = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        answer = self.http.request(method, path, json=data, headers={**auth, **(headers or {})})
        return Response(answer)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, data=None, **kwargs):
        return self.request("POST", path, data, **kwargs)

    def login(self, username, password):
        """Register `username` (if new) and keep an access token; returns the token pair.

        A refused registration other than "username taken" (a password the validators
        reject, a throttle) fails here, naming the answer, rather than as a puzzling 401.
        """
        credentials = {"username": username, "password": password}
        registered = self.post("/api/v1/auth/register/", credentials)
        if registered.status != 201 and "username" not in (registered.json() or {}):
            raise AssertionError(f"register {username}: {registered!r}")
        answer = self.post("/api/v1/auth/token/", credentials)
        if answer.status != 200:
            raise AssertionError(f"token for {username}: {answer!r}")
        tokens = answer.json()
        self.token = tokens["access"]
        return tokens

    def close(self):
        self.http.close()
