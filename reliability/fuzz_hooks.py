"""Schemathesis hooks for the long fuzz run (loaded through SCHEMATHESIS_HOOKS).

Authenticates every generated request as a real user of the server at
FUZZ_BASE_URL: registers a fresh one and logs it in. When a token stops working
(a generated `DELETE auth/me/` deleted its user), the 401 makes schemathesis ask
again, and a new user is made.
"""

import os
import uuid

import httpx
import schemathesis

from reliability.fuzz import register_serializers

register_serializers()

BASE_URL = os.environ.get("FUZZ_BASE_URL", "http://127.0.0.1:8000")
PASSWORD = "fuzz-Passw0rd-" + uuid.uuid4().hex[:12]


@schemathesis.auth(refresh_interval=3600)
class FuzzUser:
    def get(self, case, context):
        username = f"fuzz-{uuid.uuid4().hex[:12]}"
        credentials = {"username": username, "password": PASSWORD}
        httpx.post(
            f"{BASE_URL}/api/v1/auth/register/", json=credentials, timeout=30, trust_env=False
        )
        answer = httpx.post(
            f"{BASE_URL}/api/v1/auth/token/", json=credentials, timeout=30, trust_env=False
        )
        answer.raise_for_status()
        return answer.json()["access"]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
