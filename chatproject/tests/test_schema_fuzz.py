"""Schema fuzzing (schemathesis) of every operation in /api/schema/, in-process.

The schema is read from the app's own /api/schema/ endpoint, so a new endpoint is
fuzzed without a new test. All phases run: examples, coverage and fuzzing per
operation (`test_operation`), then stateful sequences that follow the links
between operations (`test_stateful`). Data is valid and invalid, NUL characters
included (reliability/schemathesis.toml). Every response must be a documented
status with a body that matches the schema, and never a 5xx.

Bounded for the suite: FUZZ_MAX_EXAMPLES (default 25) examples per operation,
FUZZ_STATEFUL_EXAMPLES (default 10) stateful scenarios, a fixed seed. The long run
against gunicorn + PostgreSQL is `python -m reliability.run --long` (docs/reliability.md).
"""

import os
from collections import Counter

import hypothesis
import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test.utils import override_settings
from rest_framework import throttling
from rest_framework_simplejwt.tokens import AccessToken

from chatproject.wsgi import application
from reliability.fuzz import SCHEMA_PATH, config
from testing.factories import UserFactory

MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
STATEFUL_EXAMPLES = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "10"))
SEED = int(os.environ.get("FUZZ_SEED", "20261125"))
HOST = "localhost"  # schemathesis' WSGI client sends this Host header

with override_settings(ALLOWED_HOSTS=[HOST]):
    schema = schemathesis.openapi.from_wsgi(
        SCHEMA_PATH, application, config=config(MAX_EXAMPLES, seed=SEED)
    )

SENT = Counter()


class FuzzUser:
    """The user whose token every generated request carries.

    A generated `DELETE auth/me/` deletes it; the next request gets a new one, so
    the rest of the run is not a string of 401s.
    """

    user = None

    @classmethod
    def token(cls):
        if cls.user is None or not get_user_model().objects.filter(pk=cls.user.pk).exists():
            # No email, as an account registered without one: "" must fit the schema.
            cls.user = UserFactory(email="")
        return str(AccessToken.for_user(cls.user))

    @classmethod
    def headers(cls):
        return {"Authorization": f"Bearer {cls.token()}"}


@pytest.fixture(autouse=True)
def fuzz_environment(db, settings, monkeypatch):
    settings.ALLOWED_HOSTS = [HOST, "testserver"]
    # As Django's test client does: the request signals must not close the test's
    # connection, which holds the test transaction (PostgreSQL would lose it).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    monkeypatch.setattr(FuzzUser, "user", None)
    # Throttling would turn most auth requests into 429s and hide the handlers
    # behind them; test_auth_attacks.py tests the throttle itself.
    for scope in ("auth", "user"):
        monkeypatch.setitem(throttling.SimpleRateThrottle.THROTTLE_RATES, scope, "1000000/minute")
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(scope="module", autouse=True)
def report_counts(request):
    yield
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is not None and SENT:
        phases = ("examples", "coverage", "fuzzing", "stateful")
        line = (
            f"schema fuzz: {sum(SENT[phase] for phase in phases)} requests ("
            + ", ".join(f"{phase} {SENT[phase]}" for phase in phases)
            + f"), {SENT['5xx']} answered 5xx"
        )
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)


@schema.parametrize()
def test_operation(case):
    SENT[case.meta.phase.name.value if case.meta else "other"] += 1
    response = case.call_and_validate(headers=FuzzUser.headers())
    SENT["5xx"] += response.status_code >= 500


class Workflow(schema.as_state_machine()):
    def get_call_kwargs(self, case):
        SENT["stateful"] += 1
        return {"headers": FuzzUser.headers()}

    def after_call(self, response, case):
        SENT["5xx"] += response.status_code >= 500
        super().after_call(response, case)

    def validate_response(self, response, case, additional_checks=None, **kwargs):
        # The token goes in as explicit headers, so the auth checks know it is real.
        case.validate_response(
            response,
            additional_checks=additional_checks,
            headers=kwargs.get("headers"),
            transport_kwargs=kwargs,
            recorder=self.recorder,
        )


def test_stateful():
    Workflow.run(
        settings=hypothesis.settings(
            max_examples=STATEFUL_EXAMPLES,
            stateful_step_count=schema.config.phases.stateful.max_steps,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
    )
