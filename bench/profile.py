"""Profile one request path in-process, through the real WSGI handler.

    DATABASE_URL=... python -m bench.profile /api/v1/tasks/ [--n 2000] [--user bench0000]
        [--html out.html] [--no-profile]

Runs the request `--n` times through `chatproject.wsgi.application` (every
middleware, DRF, the view, the renderer; the request_started/finished signals
included), first untimed to warm up, then timed (wall and CPU time of this process
per request; the database's time shows as the difference), then under
pyinstrument. Results go to stderr: the app logs every request to stdout. Uses
the production settings of the environment (set bench/server.py's BENCH_ENV there
too, or the throttle answers 429).
"""

import argparse
import io
import os
import sys
import time


def environ_for(path, token, method="GET", body=b""):
    from urllib.parse import urlsplit

    parts = urlsplit(path)
    return {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": parts.path,
        "QUERY_STRING": parts.query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1:8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_ACCEPT": "application/json",
        "HTTP_AUTHORIZATION": f"Bearer {token}",
        "CONTENT_TYPE": "application/json" if body else "",
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--user", default="bench0000")
    parser.add_argument("--html")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--threshold", type=float, default=0.01, help="hide frames under this share of time"
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from rest_framework_simplejwt.tokens import AccessToken

    from chatproject.wsgi import application

    user = get_user_model().objects.get(username=args.user)
    token = str(AccessToken.for_user(user))
    statuses = {}

    def start_response(status, headers, exc_info=None):
        statuses[status] = statuses.get(status, 0) + 1

    def once():
        response = application(environ_for(args.path, token), start_response)
        for _ in response:
            pass
        response.close()

    for _ in range(min(200, args.n)):
        once()
    best_wall, best_cpu = float("inf"), float("inf")
    for _ in range(5):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.n // 5):
            once()
        best_wall = min(best_wall, (time.perf_counter() - wall) / (args.n // 5))
        best_cpu = min(best_cpu, (time.process_time() - cpu) / (args.n // 5))
    print(
        f"{args.path}: {best_wall * 1000:.3f} ms wall, {best_cpu * 1000:.3f} ms CPU per request "
        f"(best of 5 batches of {args.n // 5}); statuses {statuses}",
        file=sys.stderr,
        flush=True,
    )
    if args.no_profile:
        return
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0002)
    profiler.start()
    for _ in range(args.n):
        once()
    profiler.stop()
    tree = profiler.output_text(
        unicode=True,
        show_all=True,
        time="percent_of_total",
        processor_options={"filter_threshold": args.threshold},
    )
    flat = profiler.output_text(flat=True, time="percent_of_total")
    print(tree, "\nBy own time:\n", "\n".join(flat.splitlines()[:45]), file=sys.stderr)
    if args.html:
        with open(args.html, "w") as out:
            out.write(profiler.output_html())


if __name__ == "__main__":
    main()
