"""PostgreSQL: a recipient's queue size and blocks read with a snapshot of their own (routing.statements).

A send round locks its recipients' rows and reads their queue sizes and blocks in one statement.
A statement sees what was committed before it began, and the lock may first wait for another
round to commit: read in the statement itself, the size would miss that round's messages. A
VOLATILE function's queries each take a fresh snapshot (PostgreSQL's "Function Volatility
Categories"), so this one, called for each row once it is locked, reads what the wait let in.
PL/pgSQL, so it is never inlined into the calling statement (and keeps its plan per connection).
SQLite needs none of it: its IMMEDIATE transactions run one writer at a time.
"""

from django.db import migrations

POSTGRES_UP = """
CREATE OR REPLACE FUNCTION broker_recipient_facts(p_recipient uuid, p_senders uuid[], p_pending_states text[])
RETURNS TABLE (pending bigint, blocked text) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY SELECT
        (SELECT COUNT(*) FROM routing_message m WHERE m.recipient_id = p_recipient
            AND m.state = ANY(p_pending_states)),
        (SELECT string_agg(b.blocked_id::text, ',') FROM sessions_app_sessionblock b
            WHERE b.blocker_id = p_recipient AND b.blocked_id = ANY(p_senders));
END $$
"""
POSTGRES_DOWN = "DROP FUNCTION IF EXISTS broker_recipient_facts(uuid, uuid[], text[])"


def _run(statement: str):
    def run(apps, schema_editor) -> None:
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("routing", "0006_message_search"), ("sessions_app", "0006_activity")]

    operations = [migrations.RunPython(_run(POSTGRES_UP), _run(POSTGRES_DOWN))]
