"""HTTP to the benchmarked server, through httpx: tokens, the setup reads that
find cursors and ids, the keep-alive connection that times whole walks, and the
path arithmetic of `next` links. The load itself is wrk's (scenario.lua).
"""

import httpx
import orjson

from . import API, load


def client(port, token=None):
    """A keep-alive client for the server on `port`, with `token` as Bearer if given.

    Bodies are not compressed (as wrk asks for them), proxies in the environment
    are ignored, and a request may take a minute.
    """
    headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60, trust_env=False
    )


def get_json(http, path):
    """GET `path` (or an absolute `next` link); its JSON body, parsed by orjson as
    before the move to httpx, so the walks' timings include the same parsing."""
    answer = http.get(path)
    if answer.status_code != 200:
        raise RuntimeError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
    return orjson.loads(answer.content)


def local_path(url):
    """The path and query of `url`, as wrk and the scenarios take them."""
    return httpx.URL(url).raw_path.decode()


def with_query(path, **params):
    """`path` with each of `params` set, or removed where its value is None."""
    url = httpx.URL(path)
    for key, value in params.items():
        url = url.copy_remove_param(key) if value is None else url.copy_set_param(key, str(value))
    return url.raw_path.decode()


def token_for(port, username):
    with client(port) as http:
        answer = http.post(
            f"{API}/auth/token/", json={"username": username, "password": load.PASSWORD}
        )
    if answer.status_code != 200:
        raise RuntimeError(f"token for {username}: {answer.status_code} {answer.text[:300]}")
    return answer.json()["access"]
