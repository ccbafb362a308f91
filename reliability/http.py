"""The load driver's JSON-over-HTTP client, on httpx: one keep-alive connection per
client, a timeout on every request, and transport failures reported as
`TransportError`, not raised as whatever the transport says.

Only loopback addresses are allowed as targets.
"""

import json
import time
from dataclasses import dataclass, field

import httpx

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class TransportError(Exception):
    """No HTTP answer: refused, reset, timed out. The request may or may not have run."""


@dataclass
class Reply:
    """One answer: `headers` is httpx's (any case), `data` the parsed JSON body, if any."""

    status: int
    headers: httpx.Headers
    body: bytes
    elapsed: float
    data: object = field(default=None)

    @property
    def is_json(self):
        return self.headers.get("content-type", "").startswith("application/json")


class Client:
    """Requests to one local server; `token`, while set, goes as a Bearer token.

    httpx sends nothing again by itself: a request whose connection dropped is the
    caller's to retry (or not), since whether it ran is unknown. A connection that
    failed or that the server closed is replaced on the next request.
    """

    def __init__(self, base_url, token=None, timeout=15.0):
        host = httpx.URL(base_url).host
        if host not in LOOPBACK:
            raise ValueError(f"refusing to send load to {host}: only 127.0.0.1")
        self.token = token
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Accept": "application/json", "Accept-Encoding": "identity"},
            timeout=timeout,
            limits=httpx.Limits(max_connections=1),
            trust_env=False,
        )

    def close(self):
        self._http.close()

    def request(self, method, path, data=None):
        """One request; a `Reply`, or `TransportError` when no answer came."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        started = time.monotonic()
        try:
            answer = self._http.request(method, path, json=data, headers=headers)
        except httpx.TransportError as exc:
            # Refused, reset (a worker killed mid-request), closed keep-alive, timeout.
            raise TransportError(f"{type(exc).__name__}: {exc}") from None
        elapsed = time.monotonic() - started
        reply = Reply(answer.status_code, answer.headers, answer.content, elapsed)
        if reply.is_json and reply.body:
            try:
                reply.data = json.loads(reply.body)
            except ValueError:
                reply.data = None
        return reply

    def get(self, path):
        return self.request("GET", path)

    def post(self, path, data=None):
        return self.request("POST", path, data)

    def patch(self, path, data=None):
        return self.request("PATCH", path, data)
