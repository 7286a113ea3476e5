"""Full-text search over payloads (routing.search): each database's own, kept by the database on insert and delete.

PostgreSQL: a stored generated tsvector of the payload's string values, with a GIN index.
SQLite: an FTS5 table (porter stemming) filled by triggers with the payload's text values,
keyed by the message row's rowid, and holding the message id so a hit is always checked
against the message table (where scope is decided).
"""

from django.db import migrations

POSTGRES_UP = [
    "ALTER TABLE routing_message ADD COLUMN search tsvector GENERATED ALWAYS AS "
    "(jsonb_to_tsvector('english', payload, '[\"string\"]')) STORED",
    "CREATE INDEX message_search ON routing_message USING GIN (search)",
]
POSTGRES_DOWN = ["DROP INDEX IF EXISTS message_search", "ALTER TABLE routing_message DROP COLUMN IF EXISTS search"]
SQLITE_UP = [
    "CREATE VIRTUAL TABLE message_fts USING fts5(body, message_id UNINDEXED, tokenize='porter unicode61')",
    "CREATE TRIGGER message_fts_insert AFTER INSERT ON routing_message BEGIN "
    "INSERT INTO message_fts(rowid, body, message_id) VALUES (new.rowid, "
    "(SELECT group_concat(value, ' ') FROM json_tree(new.payload) WHERE type = 'text'), new.id); END",
    "CREATE TRIGGER message_fts_delete AFTER DELETE ON routing_message BEGIN "
    "DELETE FROM message_fts WHERE rowid = old.rowid; END",
    "INSERT INTO message_fts(rowid, body, message_id) SELECT m.rowid, "
    "(SELECT group_concat(value, ' ') FROM json_tree(m.payload) WHERE type = 'text'), m.id FROM routing_message m",
]
SQLITE_DOWN = ["DROP TRIGGER IF EXISTS message_fts_insert", "DROP TRIGGER IF EXISTS message_fts_delete",
               "DROP TABLE IF EXISTS message_fts"]


def _run(statements: dict[str, list[str]]):
    def run(apps, schema_editor) -> None:
        for statement in statements.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("routing", "0005_thread_and_sender_name")]

    operations = [migrations.RunPython(_run({"postgresql": POSTGRES_UP, "sqlite": SQLITE_UP}),
                                       _run({"postgresql": POSTGRES_DOWN, "sqlite": SQLITE_DOWN}))]
