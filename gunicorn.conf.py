"""gunicorn settings, from the environment with defaults for I/O-bound Django.

WEB_CONCURRENCY worker processes (default: 2 per CPU this process may use, at most
8), each with GUNICORN_THREADS threads (default 4, the gthread worker): requests
mostly wait on the database, so threads overlap that waiting cheaply. Every
thread holds one database connection, so a dyno opens up to
WEB_CONCURRENCY x GUNICORN_THREADS of them; keep that under the database's limit.
The Procfile gives the bind address ($PORT).
"""

import json
import os

from gunicorn import util


def _env_int(name, default):
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


workers = _env_int("WEB_CONCURRENCY", min(2 * _cpus(), 8))
threads = _env_int("GUNICORN_THREADS", 4)
worker_class = "gthread" if threads > 1 else "sync"
# A worker silent for this long is killed and replaced. With gthread, the worker's
# main loop keeps its heartbeat while a request runs; the platform's router bounds
# the request itself (Heroku: 30 s).
timeout = _env_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = _env_int("GUNICORN_GRACEFUL_TIMEOUT", 20)
keepalive = _env_int("GUNICORN_KEEPALIVE", 5)
# Recycling workers bounds slow memory growth; off unless asked for.
max_requests = _env_int("GUNICORN_MAX_REQUESTS", 0)
max_requests_jitter = _env_int("GUNICORN_MAX_REQUESTS_JITTER", 0)
# Heartbeat files in memory, not on a container's (possibly slow) disk.
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"

# The app logs one line per request itself (chatproject.middleware, with the
# request id, to stdout); gunicorn's access log, to stdout too, is off unless
# GUNICORN_ACCESS_LOG=- asks for it, so requests are not logged twice. gunicorn's
# own messages (boot, worker timeouts, tracebacks) go to stderr.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
# The path without its query string (it may hold a token), and the request id.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%({x-request-id}o)s"'
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
# X-Forwarded-* headers are trusted only from these addresses: the platform's
# router. "*" is right when only the router can reach the dyno (Heroku, Render).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# A client that stops sending its body would hold a thread forever: reads of the
# body time out after this many seconds, and the request is answered 400. (Slow
# *headers* are read before any hook runs: put a buffering proxy in front.)
BODY_TIMEOUT = _env_int("GUNICORN_BODY_TIMEOUT", 10)


def pre_request(worker, req):
    sock = getattr(getattr(req, "unreader", None), "sock", None)
    if sock is not None:
        sock.settimeout(BODY_TIMEOUT)


def _write_json_error(sock, status_int, reason, mesg):
    """gunicorn's own error answers (bad request line, headers too large) in JSON.

    API.md: no response under /api/ is ever HTML; gunicorn answers these before the
    app sees the request, so its HTML page is replaced here.
    """
    body = json.dumps({"detail": f"{reason}. {mesg}".strip(". ") + "."}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


util.write_error = _write_json_error
