"""`manage.py purge`: delete conversations with no activity for RETENTION_DAYS days.

Safe while the server serves: conversations go in small batches (at most
`--batch-size` conversations and about `--max-messages` messages), each deleted in
its own short transaction by `chat.services.conversations_purge`, which takes the
same row locks as an append, so a conversation that gets a message meanwhile is
kept whole or deleted whole. Schedule it daily (docs/deploy.md, "Retention").

Each progress line names the longest of those transactions so far, as this process
saw it (round trips included): at most how long any row stayed locked, which is what
a request waiting on one could wait. Between transactions it pauses (`--pause`), so
that on a busy host the requests get the CPU back.
"""

import time
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from chat import services


class Command(BaseCommand):
    help = "Delete conversations (and their messages) with no activity for RETENTION_DAYS days."

    def add_arguments(self, parser):
        parser.add_argument(
            "--days", type=int, default=None, help="Override RETENTION_DAYS for this run."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument("--batch-size", type=int, default=100, help="Conversations a batch.")
        parser.add_argument(
            "--max-messages",
            type=int,
            default=500,
            help="About this many messages a transaction (a longer conversation goes alone).",
        )
        parser.add_argument(
            "--pause",
            type=float,
            default=0.025,
            help="Seconds to wait after each transaction (0: none).",
        )

    def handle(self, *args, days, dry_run, batch_size, max_messages, pause, **options):
        days = days if days is not None else settings.RETENTION_DAYS
        if not days or days < 1:
            raise CommandError("Set RETENTION_DAYS (or pass --days N, N >= 1).")
        if batch_size < 1 or max_messages < 1:
            raise CommandError("--batch-size and --max-messages must be at least 1.")
        if pause < 0:
            raise CommandError("--pause must not be negative.")
        idle_before = timezone.now() - timedelta(days=days)
        verb = "would delete" if dry_run else "deleted"
        conversations = messages = 0
        longest = 0.0
        after = None
        while batch := services.purge_candidates(
            idle_before=idle_before, after=after, limit=batch_size
        ):
            after = (batch[-1].updated_at, batch[-1].pk)
            for group in _groups(batch, max_messages):
                if dry_run:
                    done = (len(group), sum(row.message_count for row in group))
                else:
                    started = time.perf_counter()
                    done = services.conversations_purge(
                        conversation_ids=[row.pk for row in group], idle_before=idle_before
                    )
                    longest = max(longest, time.perf_counter() - started)
                    time.sleep(pause)
                conversations += done[0]
                messages += done[1]
            self.stdout.write(
                f"purge: {verb} {conversations} conversations, {messages} messages so far "
                f"(no activity since {idle_before:%Y-%m-%d %H:%M}Z)"
                + ("" if dry_run else f"; longest transaction {longest * 1000:.0f} ms")
            )
        self.stdout.write(
            f"purge: done, {verb} {conversations} conversations and {messages} messages "
            f"with no activity for {days} days"
            + ("." if dry_run else f"; longest transaction {longest * 1000:.0f} ms.")
        )


def _groups(rows, max_messages):
    """`rows` in runs of about `max_messages` messages (at least one row each)."""
    group, count = [], 0
    for row in rows:
        if group and count + row.message_count > max_messages:
            yield group
            group, count = [], 0
        group.append(row)
        count += row.message_count
    if group:
        yield group
