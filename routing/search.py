"""search_messages: the database's own full-text search over the payloads a session may see.

Payloads are indexed as their text values, by the database on insert (routing's migration
0006): PostgreSQL's tsvector with a GIN index, SQLite's FTS5, both with English stemming. A
query is its words, every one of which must appear (in any form the stemmer joins: "decided"
finds "decision"); quotes and operators are read as plain words on both databases, so one
query means the same everywhere and none can be malformed. Hits are ranked (ts_rank,
bm25), then newest first, with a snippet, paged by offset. The scope is get_thread's
(routing.selectors): what the session sent or received, nothing of any other session or project.
"""

import re
import uuid
from typing import Any

from django.db import connection
from django.db.models import BooleanField, FloatField, Q, TextField
from django.db.models.expressions import RawSQL

from broker_site.errors import ValidationFailed
from routing.contracts import SearchIn
from routing.models import Message
from routing.selectors import message_summary, sent_or_received
from sessions_app.models import AgentSession

WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 16
TABLE = Message._meta.db_table
# Text values of the payload, for PostgreSQL's snippet (ts_headline reads text, the index reads the jsonb).
_PG_TEXT = (f"(SELECT string_agg(v #>> '{{}}', ' ') FROM jsonb_path_query(\"{TABLE}\".payload, 'strict $.**') v "
            "WHERE jsonb_typeof(v) = 'string')")


def messages_searched(session: AgentSession, asked: SearchIn) -> dict[str, Any]:
    words = WORD.findall(asked.query)[:MAX_WORDS]
    if not words:
        raise ValidationFailed("The query has no words to search for.", field="query")
    found = sent_or_received(session)
    if asked.thread_id is not None:
        found = found.filter(thread_id=asked.thread_id)
    if asked.sender:
        found = found.filter(_sender_q(asked.sender))
    if asked.protocol:
        found = found.filter(protocol_name=asked.protocol)
    if asked.since is not None:
        found = found.filter(created_at__gte=asked.since)
    hit, score, snippet = _postgres(words) if connection.vendor == "postgresql" else _sqlite(words)
    page = list(found.alias(hit=hit).filter(hit=True).annotate(score=score, snippet=snippet)
                .order_by("-score", "-created_at", "pk")[asked.offset:asked.offset + asked.limit + 1])
    more = len(page) > asked.limit
    page = page[:asked.limit]
    results = [{**message_summary(m), "score": round(m.score, 6), "snippet": m.snippet or ""} for m in page]
    return {"query": asked.query, "results": results, "count": len(results),
            "next_offset": asked.offset + asked.limit if more else None}


def _sender_q(sender: str) -> Q:
    try:
        return Q(sender_id=uuid.UUID(sender))
    except ValueError:
        return Q(sender_name=sender) | Q(sender_human=sender)


def _postgres(words: list[str]) -> tuple[RawSQL, RawSQL, RawSQL]:
    terms = " ".join(words)
    query = "plainto_tsquery('english', %s)"
    return (RawSQL(f'"{TABLE}".search @@ {query}', [terms], output_field=BooleanField()),
            RawSQL(f'ts_rank("{TABLE}".search, {query})', [terms], output_field=FloatField()),
            RawSQL(f"ts_headline('english', {_PG_TEXT}, {query}, 'MaxWords=24, MinWords=8, StartSel=[, StopSel=]')",
                   [terms], output_field=TextField()))


def _sqlite(words: list[str]) -> tuple[RawSQL, RawSQL, RawSQL]:
    # Each word quoted: FTS5 then reads it as a plain term (AND of all), never as its query syntax.
    terms = " ".join('"' + word.replace('"', '""') + '"' for word in words)
    match = f'FROM message_fts WHERE message_fts MATCH %s AND message_fts.rowid = "{TABLE}".rowid'
    # The hits once (a subquery SQLite runs once), then rank and snippet per message in scope.
    return (RawSQL(f'"{TABLE}".rowid IN (SELECT rowid FROM message_fts WHERE message_fts MATCH %s)', [terms],
                   output_field=BooleanField()),
            RawSQL(f"(SELECT -bm25(message_fts) {match})", [terms], output_field=FloatField()),
            RawSQL(f"(SELECT snippet(message_fts, 0, '[', ']', '…', 16) {match})", [terms], output_field=TextField()))
