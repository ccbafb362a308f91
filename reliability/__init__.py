"""Reliability and security runs: concurrent writers through database faults, and
schema fuzzing against the real server. `python -m reliability.run --help`;
docs/reliability.md has the figures and the commands that reproduce them."""
