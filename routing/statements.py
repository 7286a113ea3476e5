"""The hot path's statements, written as SQL where the ORM needs several: one per step a message takes.

A message costs four statements when rounds hold one request each (routing.batching):
`recipients_locked` and an INSERT to send it (`rows_inserted`), `messages_claimed` to hand it
over, an UPDATE to ack it. A message across a project link costs the same on PostgreSQL: the
link's state is read with the recipients, its audit event inserted with it (SQLite, with no
INSERT inside a WITH, takes a second INSERT, in the process). Each is written for both
databases here, and nowhere else: PostgreSQL locks with FOR NO KEY UPDATE and claims with
FOR UPDATE SKIP LOCKED; SQLite needs neither, as its IMMEDIATE transactions run one writer
at a time. Values go in through the fields' own adapters (UUIDs as hex, datetimes as UTC
text on SQLite; on PostgreSQL a round's new rows as one JSON document per table,
`_recordset_inserts`). Rows come back as model instances through `_fetched`, which applies
the fields' converters as `raw` does, without `raw`'s set-up on every query (a fifth of a
claim's cost).
"""

import functools
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db import DEFAULT_DB_ALIAS, connection, connections

from broker_site.jsoncodec import json_text
from projects.models import AuditEvent, Project, ProjectLink
from routing.models import Message
from sessions_app.models import AgentSession, SessionBlock

MESSAGE = Message._meta.db_table
SESSION = AgentSession._meta.db_table
BLOCK = SessionBlock._meta.db_table
LINK = ProjectLink._meta.db_table
PROJECT = Project._meta.db_table


def _columns(model, alias: str = "") -> str:
    """The model's concrete columns, in field order (what `_fetched` reads back), optionally table-qualified."""
    return ", ".join(f'{alias + "." if alias else ""}"{f.column}"' for f in model._meta.concrete_fields)




@functools.cache
def _loading(model) -> tuple[list[str], list[tuple]]:
    """How a row of the model's columns becomes an instance: the attribute names, and for each column its
    expression and converters (the backend's, then the field's own: text to UUID and datetime on SQLite, JSON
    text to a value). They depend only on the database vendor and the settings, one per process, so they are
    worked out once per model."""
    fields, table = model._meta.concrete_fields, model._meta.db_table
    converters = []
    for field in fields:
        column = field.get_col(table)
        converters.append((column, (*connection.ops.get_db_converters(column), *field.get_db_converters(connection))))
    return [f.attname for f in fields], converters


def _this_thread() -> Any:
    """This thread's connection itself: `connection` is a proxy that looks it up on every attribute, a cost the
    per-value loops below would pay a few hundred times a round."""
    return connections[DEFAULT_DB_ALIAS]


def _fetched(model, sql: str, params: list, extras: tuple[str, ...] = ()) -> list:
    """Instances of `model` from `sql`, which selects the model's columns (`_columns`) and then `extras`,
    each set on its instance as an attribute of that name."""
    names, converters = _loading(model)
    width = len(names)
    connection = _this_thread()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    instances = []
    for row in rows:
        values = list(row[:width])
        for i, (column, column_converters) in enumerate(converters):
            for convert in column_converters:
                values[i] = convert(values[i], column, connection)
        instance = model.from_db(connection.alias, names, values)
        for name, value in zip(extras, row[width:], strict=True):
            setattr(instance, name, value)
        instances.append(instance)
    return instances


def _uuid(value: uuid.UUID) -> Any:
    return Message._meta.pk.get_db_prep_value(value, connection)


def _time(value: datetime | None) -> Any:
    return None if value is None else connection.ops.adapt_datetimefield_value(value)


def _postgres() -> bool:
    return connection.vendor == "postgresql"


class Recipients(NamedTuple):
    sessions: list[AgentSession]  # locked, each with `pending` and `blocked`
    links_active: set[uuid.UUID]  # of the links asked about, those serving


def recipients_locked(refs: dict[str, set[str]], ids: Iterable[uuid.UUID], sender_ids: Iterable[uuid.UUID],
                      link_ids: Iterable[uuid.UUID] = ()) -> Recipients:
    """Sessions named by `refs` ({project id: ids or names}) or by id, their rows locked; and of the cross-project
    links `link_ids`, the ones still active between two active projects.

    Each session comes with `pending` (its queue size) and `blocked` (the ids among `sender_ids`
    it blocks), read under the lock, so a send sees the queue and the blocks as they are when it
    inserts. Race: two sends to one recipient could both see room for one more, or a block made
    meanwhile could be missed; the row lock serializes them (in id order, so two rounds cannot
    deadlock). On SQLite the IMMEDIATE transaction is the lock. On PostgreSQL a statement sees
    only what was committed before it began, so what a send waited for is read by a function
    with a snapshot of its own once the row is locked (migration 0007; the race test in
    tests/routing/test_concurrent_sends.py fails without it). One statement either way. NO KEY UPDATE because
    inserting a message takes KEY SHARE on its sender's row: with FOR UPDATE, A->B and B->A at
    once would deadlock.

    The links' state is the authority on whether a message may cross (routing.crossing's step 1
    may have read a link a moment old), read in the same statement as the sessions' facts. Race:
    a link suspended or revoked after a send checked it and before its round commits. On
    PostgreSQL the link rows are read FOR SHARE, so a suspension waits for the round to commit or
    the round sees it; rounds do not wait for each other, and nothing writes a link's row inside a
    round (its traffic counts are written at most once a second per process,
    projects.links.traffic_counted: an UPDATE in the round deadlocked against the share locks of
    the others). On SQLite the round's IMMEDIATE transaction already runs alone.
    """
    where, params = _named(refs, ids)
    links = [_uuid(i) for i in link_ids]
    if not where:
        return Recipients([], _links_read(links))
    pending_states = [Message.State.QUEUED, Message.State.DELIVERED]
    # The links ride on the sessions' statement as one more column (the same on every row: an uncorrelated
    # subquery, run once), read under the sessions' lock.
    serving, serving_params = _links_serving(links)
    extras = ("pending", "blocked", "links_serving")
    if _postgres():
        # The facts of each row once it is locked, by a function whose query takes a snapshot of its own (routing
        # migration 0007): the statement's, taken before any wait for a lock, would miss what the wait let in.
        sessions = _fetched(AgentSession, f"WITH serving AS ({serving}), locked AS MATERIALIZED ("
                            f'SELECT {_columns(AgentSession, "s")} FROM "{SESSION}" s WHERE {where} '
                            "ORDER BY s.id FOR NO KEY UPDATE OF s) "
                            "SELECT locked.*, f.pending, f.blocked, (SELECT string_agg(id::text, ',') FROM serving) "
                            "FROM locked CROSS JOIN LATERAL broker_recipient_facts(locked.id, %s::uuid[], %s::text[]) f "
                            "ORDER BY locked.id",
                            [*serving_params, *params, list(sender_ids), pending_states], extras=extras)
    else:
        senders = [_uuid(i) for i in sender_ids] or [None]
        sessions = _fetched(AgentSession, f'SELECT {_columns(AgentSession, "s")}, '
                            f'(SELECT COUNT(*) FROM "{MESSAGE}" m WHERE m.recipient_id = s.id AND m.state IN (%s, %s)), '
                            f'(SELECT group_concat(b.blocked_id, \',\') FROM "{BLOCK}" b WHERE b.blocker_id = s.id '
                            f"AND b.blocked_id IN ({_marks(senders)})), "
                            f"(SELECT group_concat(id, ',') FROM ({serving})) FROM \"{SESSION}\" s "
                            f"WHERE {where} ORDER BY s.id", [*pending_states, *senders, *serving_params, *params],
                            extras=extras)
    if not sessions:
        return Recipients([], _links_read(links))
    for session in sessions:
        session.blocked = {uuid.UUID(i) for i in session.blocked.split(",")} if session.blocked else set()
    return Recipients(sessions, _ids(sessions[0].links_serving))


def _links_serving(links: list) -> tuple[str, list]:
    """A SELECT of the ids among `links` (prepared ids) of links active between two active projects, FOR SHARE on
    PostgreSQL (recipients_locked says why); it selects nothing when there are none."""
    if not links:
        return "SELECT NULL AS id WHERE 1 = 0", []
    lock = " FOR SHARE OF l" if _postgres() else ""
    return (f'SELECT l.id FROM "{LINK}" l WHERE l.state = %s AND l.id IN ({_marks(links)}) AND '
            f'(SELECT COUNT(*) FROM "{PROJECT}" p WHERE p.status = %s AND '
            f"(p.id = l.source_id OR p.id = l.target_project_id)) = 2{lock}",
            [ProjectLink.State.ACTIVE, *links, Project.Status.ACTIVE])


def _links_read(links: list) -> set[uuid.UUID]:
    """The links serving, read alone: for a round none of whose recipients were found (no message is stored)."""
    if not links:
        return set()
    sql, params = _links_serving(links)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {uuid.UUID(str(pk)) for (pk,) in cursor.fetchall()}


def _ids(joined: str | None) -> set[uuid.UUID]:
    return {uuid.UUID(i) for i in joined.split(",")} if joined else set()


def _named(refs: dict[str, set[str]], ids: Iterable[uuid.UUID]) -> tuple[str, list]:
    """The WHERE clause for sessions by project and id or name, or by id alone."""
    where, params = [], []
    for project_id, project_refs in refs.items():
        by_id, names = [], []
        for ref in project_refs:
            try:
                by_id.append(_uuid(uuid.UUID(ref)))
            except ValueError:
                names.append(ref)
        if by_id:
            where.append(f"(s.project_id = %s AND s.id IN ({_marks(by_id)}))")
            params += [project_id, *by_id]
        if names:
            where.append(f"(s.project_id = %s AND s.name IN ({_marks(names)}))")
            params += [project_id, *names]
    ids = [_uuid(i) for i in ids]
    if ids:
        where.append(f"s.id IN ({_marks(ids)})")
        params += ids
    return " OR ".join(where), params


class AuditRow(NamedTuple):
    """An audit event as a round inserts it with its messages: projects.models.AuditEvent's columns but the ones
    every such row takes from the model's defaults (`_audit_rows`), with no model instance to build
    (routing.crossing makes them)."""

    action: str
    outcome: str
    actor_key_id: str
    source_project: str
    target_project: str
    details: dict


def rows_inserted(messages: list[Message], audits: list[AuditRow]) -> None:
    """INSERT a round's messages and the audit events of its crossings: on PostgreSQL in one statement whatever
    their number (`_recordset_inserts`, the events in a data-modifying WITH); on SQLite each table in as few
    statements as its rows fit in.

    What bulk_create does for these models, without its set-up on every call: one audit event by
    bulk_create took 99 µs on SQLite and 253 on PostgreSQL inside a transaction, as a plain INSERT 20
    and 122 (the issue note's microbenchmark). The ids are the instances' own (UUIDs), or the
    database's for the events, which nothing reads back."""
    if _postgres():
        statements = _recordset_inserts(messages, audits)
    else:
        statements = [*_audit_inserts(audits), *_inserts(Message, messages)]
    with connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)
    for instance in messages:
        instance._state.adding, instance._state.db = False, connection.alias


def _inserts(model, instances: list) -> list[tuple[str, list]]:
    connection = _this_thread()
    fields = _written(model)
    batch = max(1, connection.ops.bulk_batch_size(fields, instances))
    return _batched(model._meta.db_table, [f.column for f in fields], f"({_marks(fields)})",
                    [[f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields] for obj in instances],
                    batch)


def _written(model) -> list:
    return [f for f in model._meta.concrete_fields if not f.db_returning]  # an AutoField is the database's


def _audit_rows(audits: list[AuditRow]) -> list[dict[str, Any]]:
    """The round's audit rows by column: AuditRow's, and the model's defaults for the others, taken once for the
    round (its time, no address, counted once)."""
    shared = {f.column: f.get_default() for f in _audit_shared()}
    return [{**audit._asdict(), **shared} for audit in audits]


@functools.cache
def _audit_shared() -> list:
    """The AuditEvent fields an AuditRow leaves to their defaults: every one must have a default (else an INSERT
    would miss a column, and this says so at once)."""
    shared = [f for f in _written(AuditEvent) if f.column not in AuditRow._fields]
    assert all(f.has_default() for f in shared), "AuditRow must name every AuditEvent column that has no default"
    return shared


def _audit_inserts(audits: list[AuditRow]) -> list[tuple[str, list]]:
    """SQLite's INSERTs of the round's audit rows (the details as JSON text)."""
    rows = _audit_rows(audits)
    if not rows:
        return []
    columns = list(rows[0])
    adapted = {"created_at": _time, "details": json_text}
    values = [[adapted[c](row[c]) if c in adapted else row[c] for c in columns] for row in rows]
    batch = max(1, _this_thread().ops.bulk_batch_size(columns, rows))
    return _batched(AuditEvent._meta.db_table, columns, f"({_marks(columns)})", values, batch)


def _batched(table: str, columns: list[str], row: str, values: list[list], batch: int) -> list[tuple[str, list]]:
    """INSERTs of `values` (one list per row, in `columns`' order), at most `batch` rows each."""
    names = ", ".join(f'"{c}"' for c in columns)
    return [(f'INSERT INTO "{table}" ({names}) VALUES {", ".join([row] * len(values[start:start + batch]))}',
             [value for one in values[start:start + batch] for value in one])
            for start in range(0, len(values), batch)]


def _recordset_inserts(messages: list[Message], audits: list[AuditRow]) -> list[tuple[str, list]]:
    """PostgreSQL: the round's rows as one JSON document per table, which the INSERT unpacks
    (jsonb_to_recordset), so its text is the same whatever the number of rows.

    Why: psycopg splits a statement's text at its placeholders in Python, and remembers the split only
    for a statement of at most 50 parameters. A round of 20 messages written as VALUES rows has 400,
    and splitting them cost 0.8 ms of the server's CPU per round, 40 µs a message (and their 20 audit
    rows 0.3 ms more): more than everything else the round does in Python. A JSON document is written
    by orjson and read by PostgreSQL, both in C."""
    tables = []
    if audits:
        tables.append((AuditEvent, _audit_rows(audits)))
    if messages:
        connection = _this_thread()
        fields = _recordset_columns(Message)[1]
        tables.append((Message, [{f.column: prepare(f.pre_save(m, True), connection) for f, prepare in fields}
                                 for m in messages]))
    statements = [(_recordset_columns(model)[0], [json_text(rows, default=_as_json)]) for model, rows in tables]
    if len(statements) == 2:
        (audit_sql, audit_params), (message_sql, message_params) = statements
        statements = [(f"WITH audited AS ({audit_sql}) {message_sql}", [*audit_params, *message_params])]
    return statements


@functools.cache
def _recordset_columns(model) -> tuple[str, list[tuple[Any, Any]]]:
    """The model's INSERT from one JSON parameter (an array of objects keyed by column) on PostgreSQL, and each
    written field with how its value goes into the document: a JSON field's as the value itself, the others as
    the database's value (UUIDs and datetimes go in as text, read back by their column's type)."""
    fields = _written(model)
    names = ", ".join(f'"{f.column}"' for f in fields)
    typed = ", ".join(f'"{f.column}" {f.db_type(connection)}' for f in fields)
    sql = (f'INSERT INTO "{model._meta.db_table}" ({names}) SELECT {names} '
           f"FROM jsonb_to_recordset(%s::jsonb) AS r({typed})")
    return sql, [(f, _json_value if f.get_internal_type() == "JSONField" else f.get_db_prep_save) for f in fields]


def _json_value(value: Any, connection: Any) -> Any:
    return value


def _as_json(value: Any) -> Any:
    """What JSON has no type for, as text: a UUID, a datetime (ISO 8601 with its offset, to the microsecond)."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def messages_claimed(wants: dict[uuid.UUID, tuple[int, datetime | None]], now: datetime, state: str
                     ) -> list[Message]:
    """Mark each session's next queued messages (priority, then age; at most its number) `state`, in one UPDATE.

    `wants` maps a session id to (how many, when an unacked one is due again; None: no ack awaited).
    Race: two claimers at once (two connections of one session, two processes). On PostgreSQL
    each locks its rows with SKIP LOCKED, so they take different messages; on SQLite claims
    run one after the other. Only a row still queued is taken either way.
    """
    if not wants:
        return []
    delivered_at, acked_at = _time(now), None if state == Message.State.DELIVERED else _time(now)
    live = ("m.state = %s AND (m.expires_at IS NULL OR m.expires_at > %s)")
    if _postgres():
        sql = (f"WITH wants(recipient_id, want, redeliver_at) AS ("
               f"SELECT * FROM unnest(%s::uuid[], %s::int[], %s::timestamptz[])), "
               f"picked AS (SELECT p.id, w.redeliver_at FROM wants w CROSS JOIN LATERAL ("
               f'SELECT m.id FROM "{MESSAGE}" m WHERE m.recipient_id = w.recipient_id AND {live} '
               f"ORDER BY m.priority DESC, m.created_at, m.id LIMIT w.want FOR UPDATE SKIP LOCKED) p) "
               f'UPDATE "{MESSAGE}" m SET state = %s, attempts = m.attempts + 1, delivered_at = %s, '
               f"redeliver_at = picked.redeliver_at, acked_at = %s FROM picked WHERE m.id = picked.id "
               f'RETURNING {_columns(Message, "m")}')
        params = [list(wants), [n for n, _ in wants.values()], [r for _, r in wants.values()],
                  Message.State.QUEUED, _time(now), state, delivered_at, acked_at]
    else:
        rows = ", ".join(["(%s, %s, %s)"] * len(wants))
        sql = (f"WITH wants(recipient_id, want, redeliver_at) AS (VALUES {rows}), "
               f"ranked AS (SELECT m.id, w.want, ROW_NUMBER() OVER ("
               f"PARTITION BY m.recipient_id ORDER BY m.priority DESC, m.created_at, m.id) AS rank "
               f'FROM "{MESSAGE}" m JOIN wants w ON w.recipient_id = m.recipient_id WHERE {live}) '
               f'UPDATE "{MESSAGE}" SET state = %s, attempts = attempts + 1, delivered_at = %s, '
               f'redeliver_at = (SELECT w.redeliver_at FROM wants w WHERE w.recipient_id = "{MESSAGE}".recipient_id), '
               f"acked_at = %s "
               f"WHERE id IN (SELECT id FROM ranked WHERE rank <= want) RETURNING {_columns(Message)}")
        params = [value for session_id, (n, due) in wants.items() for value in (_uuid(session_id), n, _time(due))]
        params += [Message.State.QUEUED, _time(now), state, delivered_at, acked_at]
    claimed = _fetched(Message, sql, params)
    claimed.sort(key=lambda m: (-m.priority, m.created_at, m.id))  # RETURNING keeps no order
    return claimed


def _marks(values: list) -> str:
    return ", ".join(["%s"] * len(values))


def messages_acked(requests: list[tuple[uuid.UUID, list[uuid.UUID]]], now: datetime) -> int:
    """Mark acked the delivered messages named, each session's own only, in one UPDATE; how many it marked."""
    where, params = [], []
    for session_id, ids in requests:
        if ids:
            where.append(f"(recipient_id = %s AND id IN ({_marks(ids)}))")
            params += [_uuid(session_id), *(_uuid(i) for i in ids)]
    if not where:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(f'UPDATE "{MESSAGE}" SET state = %s, acked_at = %s, redeliver_at = NULL '
                       f"WHERE state = %s AND ({' OR '.join(where)})",
                       [Message.State.ACKED, _time(now), Message.State.DELIVERED, *params])
        return cursor.rowcount


def sessions_renewed(session_ids: list[uuid.UUID], projects: dict[str, Any], now: datetime, push_until: datetime,
                     mail_since: datetime) -> dict[uuid.UUID, bool]:
    """Heartbeat and renew the push lease of the sessions still live, in one UPDATE for all of them.

    Live: not disconnected, and heard from within their project's disconnect_after (`projects`
    holds the current rows): AgentSession.status_q's rule, written here as SQL (a test holds the two
    together). Answers {session id: whether it has mail queued since before
    `mail_since`}; a session not in the answer is no longer live, and was left alone.
    """
    cutoffs = {project_id: _time(now - timedelta(seconds=p.disconnect_after)) for project_id, p in projects.items()}
    if not session_ids or not cutoffs:
        return {}
    waiting = (f'EXISTS (SELECT 1 FROM "{MESSAGE}" m WHERE m.recipient_id = "{SESSION}".id AND m.state = %s '
               f"AND m.created_at <= %s)")
    if _postgres():
        sql = (f"WITH cutoff(project_id, since) AS (SELECT * FROM unnest(%s::text[], %s::timestamptz[])) "
               f'UPDATE "{SESSION}" SET last_heartbeat_at = %s, push_until = %s FROM cutoff '
               # The rows locked in id order first, as a round locks its recipients: else this UPDATE, taking
               # them in the table's order, and a round could each hold a row the other waits for.
               f'WHERE "{SESSION}".id IN (SELECT id FROM "{SESSION}" WHERE id = ANY(%s) ORDER BY id '
               f"FOR NO KEY UPDATE) "
               f'AND "{SESSION}".disconnected_at IS NULL '
               f'AND cutoff.project_id = "{SESSION}".project_id AND "{SESSION}".last_heartbeat_at > cutoff.since '
               f'RETURNING "{SESSION}".id, {waiting}')
        params = [list(cutoffs), list(cutoffs.values()), now, push_until, list(session_ids),
                  Message.State.QUEUED, mail_since]
    else:
        ids = [_uuid(i) for i in session_ids]
        rows = ", ".join(["(%s, %s)"] * len(cutoffs))
        sql = (f"WITH cutoff(project_id, since) AS (VALUES {rows}) "
               f'UPDATE "{SESSION}" SET last_heartbeat_at = %s, push_until = %s FROM cutoff '
               f'WHERE "{SESSION}".id IN ({_marks(ids)}) AND "{SESSION}".disconnected_at IS NULL '
               f'AND cutoff.project_id = "{SESSION}".project_id AND "{SESSION}".last_heartbeat_at > cutoff.since '
               f'RETURNING "{SESSION}".id, {waiting}')
        params = [v for pair in cutoffs.items() for v in pair] + [_time(now), _time(push_until), *ids,
                                                                  Message.State.QUEUED, _time(mail_since)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {uuid.UUID(str(pk)) if not isinstance(pk, uuid.UUID) else pk: bool(mail) for pk, mail in cursor.fetchall()}
