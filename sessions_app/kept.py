"""Sessions that acted lately, kept by each process for a second, so a call does not read its session every time.

An MCP tool call spent a quarter of its time reading the row of the session it acts as (by the
connection's binding or by its token), once per call. Here `session_acting` finds the row it read
less than CACHE_SECONDS ago (the credential cache's setting, projects.credentials). How stale an
entry may be:

- any save or delete of a session in this process (a resume, a new connection, an end, a purge)
  drops that session's entries, then and on commit; so do this process's disconnects and a
  project's end, which write with UPDATE;
- a change made in another process (an operator's end there, a resume there) is seen once the
  entry is CACHE_SECONDS old: a session ended elsewhere may act here for up to that long, as a
  revoked key may;
- a heartbeat written here is written into the entries too, so a kept session is not seen as due
  for another one at every call.

Entries are keyed by project and by how the call names the session (its id, or its token's
digest), so a token never finds another project's session. Callers get copies of the rows.
"""

import copy
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from sessions_app.models import AgentSession

CACHE_SECONDS = settings.BROKER["CREDENTIAL_CACHE_SECONDS"]
MAX_ENTRIES = 10_000  # a backstop: each entry is a session that acted within the last second


class KeptSessions:
    def __init__(self, seconds: float = CACHE_SECONDS, limit: int = MAX_ENTRIES) -> None:
        self.seconds, self.limit = seconds, limit
        self._entries: dict[tuple[str, str], tuple[float, AgentSession]] = {}
        self._names: dict[uuid.UUID, set[tuple[str, str]]] = {}  # a session's entries, to update or drop them
        self._lock = threading.Lock()  # calls act on many threads

    def read(self, project_id: str, named_by: str,
             read: Callable[[], AgentSession | None]) -> AgentSession | None:
        """A copy of the session `named_by` names in the project, from an entry under `seconds` old or by `read()`."""
        if self.seconds <= 0:
            return read()
        named = (project_id, named_by)
        entry = self._entries.get(named)
        if entry is not None and time.monotonic() - entry[0] < self.seconds:
            return _own_copy(entry[1])
        session = read()
        if session is None:  # nothing to keep: a session that is not there is looked up every time
            return session
        with self._lock:
            if len(self._entries) >= self.limit:
                self._entries.clear()
                self._names.clear()
            self._entries[named] = (time.monotonic(), _own_copy(session))
            self._names.setdefault(session.pk, set()).add(named)
        return session

    def seen(self, session_pk: uuid.UUID, at: datetime) -> None:
        """A heartbeat written for the session: its entries say so."""
        with self._lock:
            for named in self._names.get(session_pk, ()):
                kept = self._entries[named][1]
                if kept.last_heartbeat_at < at:
                    kept.last_heartbeat_at = at

    def forget(self, session_pk: uuid.UUID) -> None:
        with self._lock:
            for named in self._names.pop(session_pk, ()):
                self._entries.pop(named, None)

    def forget_all(self) -> None:
        with self._lock:
            self._entries.clear()
            self._names.clear()

    def __len__(self) -> int:
        return len(self._entries)


def _own_copy(session: AgentSession) -> AgentSession:
    """A copy for one call: its capabilities too (JSON it could change in place), so no call changes another's."""
    mine = copy.copy(session)
    mine.supported_protocols = copy.deepcopy(session.supported_protocols)
    mine.supported_features = list(session.supported_features)
    return mine


kept_sessions = KeptSessions()


def session_changed(session_pk: uuid.UUID) -> None:
    """The session's row changed in this process: no entry shows it as it was, now or after the change commits."""
    kept_sessions.forget(session_pk)
    transaction.on_commit(lambda: kept_sessions.forget(session_pk))


def _saved_or_deleted(instance: AgentSession, **kwargs) -> None:
    session_changed(instance.pk)


post_save.connect(_saved_or_deleted, sender=AgentSession, dispatch_uid="broker_kept_sessions_saved")
post_delete.connect(_saved_or_deleted, sender=AgentSession, dispatch_uid="broker_kept_sessions_deleted")
