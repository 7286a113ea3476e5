"""Which broker session an MCP connection acts as, after connect_session.

Kept in this process's memory, keyed by the Mcp-Session-Id the SDK issues on the older,
session-based protocol versions. That id lives only in the process that issued it (the
SDK's session manager is in-process too), so a per-process map loses nothing a load
balancer with sticky sessions would keep. Stateless clients pass `session_token` instead.
The map is bounded: the least recently used binding goes first, and its agent can still
act by passing its session_token or calling connect_session again.
"""

import threading
import uuid
from collections import OrderedDict

MAX_BINDINGS = 10_000


class SessionBindings:
    def __init__(self, limit: int = MAX_BINDINGS) -> None:
        self._limit = limit
        self._items: OrderedDict[str, tuple[str, uuid.UUID]] = OrderedDict()
        # Tool handlers run on worker threads; one lock keeps the LRU order consistent.
        self._lock = threading.Lock()

    def bind(self, mcp_session_id: str, project_id: str, session_pk: uuid.UUID) -> None:
        with self._lock:
            self._items[mcp_session_id] = (project_id, session_pk)
            self._items.move_to_end(mcp_session_id)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)

    def lookup(self, mcp_session_id: str, project_id: str) -> uuid.UUID | None:
        with self._lock:
            bound = self._items.get(mcp_session_id)
            if bound is None or bound[0] != project_id:
                return None
            self._items.move_to_end(mcp_session_id)
            return bound[1]

    def unbind(self, mcp_session_id: str, session_pk: uuid.UUID) -> None:
        with self._lock:
            if self._items.get(mcp_session_id, (None, None))[1] == session_pk:
                del self._items[mcp_session_id]


bindings = SessionBindings()
