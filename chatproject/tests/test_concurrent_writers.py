"""Concurrent writers over real HTTP through database and worker faults (end to end).

The bounded version of `python -m reliability.run`: a PostgreSQL and a gunicorn of
the test's own (the suite's server is never stopped), six writers for 15 s appending
messages to shared and separate conversations and creating and completing tasks,
while PostgreSQL is restarted (fast, then immediate shutdown) and a gunicorn
worker is killed with SIGKILL. Afterwards every acknowledged write is stored
exactly once, message_count is the real count, seq runs 1..n in commit order, and
the only 5xx answers were JSON 503s during the outages. reliability/load.py has
the workload and the audit; docs/reliability.md the figures of the long run.
"""

import pytest

from reliability import load
from reliability.run import BOUNDED

pytestmark = pytest.mark.e2e


def test_acknowledged_writes_survive_restarts_and_worker_kills(tmp_path, request):
    result = load.run_scenario(
        seconds=BOUNDED["seconds"],
        clients=BOUNDED["clients"],
        faults=load.parse_faults(BOUNDED["faults"]),
        workdir=tmp_path,
        log=lambda line: None,
    )
    figures = result.figures
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(
                f"concurrent writers: {figures['requests']} requests, "
                f"{figures['acknowledged_writes']} acknowledged writes, "
                f"{figures['acknowledged_writes_found']} found afterwards, "
                f"{figures['faults_injected']} faults, {figures['answers_503']} JSON 503s, "
                f"{figures['answers_5xx_not_503']} other 5xx"
            )

    assert result.violations == [], "\n".join(result.violations[:30]) + f"\n{result.samples}"
    assert figures["faults_injected"] == 3
    assert all(fault.recovered_after is not None for fault in result.faults)
    assert figures["acknowledged_writes"] > 100
    assert figures["acknowledged_writes_found"] == figures["acknowledged_writes"]
    assert figures["lost"] == figures["stored_twice"] == figures["changed"] == 0
    assert figures["answers_5xx_not_503"] == 0
    assert figures["api_listing_mismatches"] == 0
