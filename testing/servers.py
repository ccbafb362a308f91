"""Run the app as production does, for end-to-end tests, reliability runs and benchmarks.

`procfile_command(name)` reads a line of the committed Procfile, and
`GunicornServer` starts the `web:` line exactly as a platform would (with $PORT
set), against a given DATABASE_URL, with DEBUG off.
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .pgserver import free_port

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


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


def run_release(env, timeout=300):
    """Run the Procfile's release command (migrations) and fail loudly if it fails."""
    return subprocess.run(
        ["bash", "-c", procfile_command("release")],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class GunicornServer:
    def __init__(self, env, port=None, log_path=None):
        self.port = port or free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.log_path = Path(log_path) if log_path else None
        self.process = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=60):
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            ["bash", "-c", "exec " + procfile_command("web")],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not answer /healthz in time")

    def worker_pids(self):
        """The pids of the master's worker processes."""
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(pid) for pid in out.split()]

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
