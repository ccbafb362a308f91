"""Schema fuzzing with schemathesis: the shared configuration and the long run.

`config()` reads `reliability/schemathesis.toml` (phases, checks, NUL characters
on) and sets the number of examples and the seed; the bounded test in the suite
(chatproject/tests/test_schema_fuzz.py) and `run_cli()` both start from it.

`run_cli()` is the long run: the schemathesis CLI against a running gunicorn's
/api/schema/, all four phases, authenticated through `reliability.fuzz_hooks`
(which registers and logs in a fuzz user, and again if a test deleted it).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG_PATH = HERE / "schemathesis.toml"
SCHEMA_PATH = "/api/schema/"
# The checks that judge request validation, off in the gate (see schemathesis.toml);
# `--strict` turns them on to list what they find.
STRICT_CHECKS = ["positive_data_acceptance", "negative_data_rejection"]


def register_serializers():
    """Bodies schemathesis has no serializer for: the account import's NDJSON is sent
    as the text it generates (any string; most are bad lines, a 400)."""
    import schemathesis

    schemathesis.serializer.alias("application/x-ndjson", "text/plain")


def config(max_examples, seed=None):
    import schemathesis

    register_serializers()
    loaded = schemathesis.Config.from_path(CONFIG_PATH)
    loaded.update(seed=seed, max_failures=None)
    # `override` outranks the file; `get_default()` would return a merged copy.
    loaded.projects.override.generation.update(
        max_examples=max_examples, deterministic=seed is not None
    )
    return loaded


def run_cli(base_url, *, max_examples, seed=None, max_time=None, strict=False, report_dir):
    """The schemathesis CLI against `base_url`; returns (exit code, summary dict).

    Only 127.0.0.1 is a target: this refuses any other host.
    """
    if not base_url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise ValueError(f"refusing to fuzz {base_url}: only 127.0.0.1 is a target")
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    ndjson = report_dir / "events.ndjson"
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(CONFIG_PATH),
        "run",
        f"{base_url}{SCHEMA_PATH}",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(max_examples),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--report",
        "ndjson,junit",
        "--report-dir",
        str(report_dir),
        "--report-ndjson-path",
        str(ndjson),
    ]
    if seed is not None:
        command += ["--seed", str(seed)]
    if max_time:
        command += ["--max-time", str(int(max_time))]
    if strict:
        command += ["--checks", "all"]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "reliability.fuzz_hooks",
        "FUZZ_BASE_URL": base_url,
        "PYTHONPATH": f"{HERE.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    log_path = report_dir / "schemathesis.log"
    with open(log_path, "w") as log:
        code = subprocess.call(
            command, env=env, cwd=report_dir, stdout=log, stderr=subprocess.STDOUT
        )
    return code, summarize(ndjson, log_path)


def summarize(ndjson_path, log_path=None):
    """Counts from the CLI's event stream: requests, 5xx, failures by check."""
    summary = {"requests": 0, "status_5xx": 0, "failures": {}, "statuses": {}}
    path = Path(ndjson_path)
    if path.exists():
        for line in path.read_text().splitlines():
            _count_event(json.loads(line), summary)
    if log_path and Path(log_path).exists():
        summary["log_tail"] = Path(log_path).read_text(errors="replace")[-3000:]
    return summary


def _count_event(event, summary):
    """Walk any event for interactions (responses) and failed checks."""
    stack = [event]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            response = item.get("response")
            if isinstance(response, dict) and isinstance(response.get("status_code"), int):
                status = response["status_code"]
                summary["requests"] += 1
                summary["statuses"][status] = summary["statuses"].get(status, 0) + 1
                if status >= 500:
                    summary["status_5xx"] += 1
            if item.get("status") == "failure" and isinstance(item.get("name"), str):
                name = item["name"]
                summary["failures"][name] = summary["failures"].get(name, 0) + 1
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
