"""Which broker session an MCP connection acts as, after connect_session.

Kept in this process's memory, keyed by the Mcp-Session-Id the SDK issues on the older,
session-based protocol versions. That id lives only in the process that issued it (the
SDK's session manager is in-process too), so a per-process map loses nothing a load
balancer with sticky sessions would keep. Stateless clients pass `session_token` instead.
An entry goes when its MCP session ends (session_limits.py frees it), so the map holds at most
one entry per open session, and those are capped per key and per project. The LRU bound is a
backstop at the process's session cap.
"""

import threading
import uuid
from collections import OrderedDict

from django.conf import settings

MAX_BINDINGS = settings.BROKER["MCP_MAX_SESSIONS"]


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

    def forget(self, mcp_session_id: str) -> None:
        """The MCP session ended: whatever it was bound to, the binding goes."""
        with self._lock:
            self._items.pop(mcp_session_id, None)

    def __len__(self) -> int:
        return len(self._items)


bindings = SessionBindings()
