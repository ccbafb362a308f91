"""Full-text search of messages on PostgreSQL (chat/search.py has the meaning).

- `unaccent` and `btree_gin` (both in postgresql-contrib; Neon and the other hosted
  PostgreSQLs offer them). Creating them needs a role allowed to: run `migrate` with
  the direct (owner) connection.
- `chat_unaccent(text)`: `unaccent` is only STABLE (its dictionary could change), so
  it cannot appear in a generated column or an index; this IMMUTABLE wrapper, with
  the dictionary and function schema-qualified, is the standard way round.
- `chat_search_query(text)`: the user's text as a prefix tsquery, every lexeme
  quoted and `&`-joined (see chat/search.py); NULL when it holds no word.
- `chat_message.search_vector`: a stored generated column, so a search never
  re-parses content (not even to recheck a lossy bitmap page) and an append keeps
  it current with nothing in Python.
- `message_owner_search`: GIN on (owner_id, search_vector): one user's search scans
  only that user's posting lists (bench/README.md has the measurements).

On SQLite this migration does nothing: matching is done by a Python function there.
Adding a stored column rewrites `chat_message`: on a large table, run it in a
maintenance window.
"""

from django.db import migrations

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS unaccent",
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    """
    CREATE OR REPLACE FUNCTION chat_unaccent(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, $1) $$
    """,
    r"""
    CREATE OR REPLACE FUNCTION chat_search_query(text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$
        SELECT string_agg(
            '''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || ''':*', ' & '
        )::tsquery
        FROM unnest(to_tsvector('simple'::regconfig, chat_unaccent($1)))
    $$
    """,
    """
    ALTER TABLE chat_message ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, chat_unaccent(content))) STORED
    """,
    "CREATE INDEX message_owner_search ON chat_message USING gin (owner_id, search_vector)",
]
BACKWARD = [
    "DROP INDEX IF EXISTS message_owner_search",
    "ALTER TABLE chat_message DROP COLUMN IF EXISTS search_vector",
    "DROP FUNCTION IF EXISTS chat_search_query(text)",
    "DROP FUNCTION IF EXISTS chat_unaccent(text)",
]


def on_postgresql(statements):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for statement in statements:
                schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0005_archive_pin"),
    ]

    operations = [
        migrations.RunPython(on_postgresql(FORWARD), on_postgresql(BACKWARD)),
    ]
