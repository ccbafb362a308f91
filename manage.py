#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys

# Schema changes go over the direct connection when one is given: Neon's pooled
# endpoint is PgBouncer in transaction mode, which is no place for long DDL.
SCHEMA_COMMANDS = {"migrate", "createcachetable"}


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatproject.settings")
    if (
        len(sys.argv) > 1
        and sys.argv[1] in SCHEMA_COMMANDS
        and os.environ.get("DIRECT_DATABASE_URL")
    ):
        os.environ["DATABASE_URL"] = os.environ["DIRECT_DATABASE_URL"]
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
