"""How many of one kind of open thing (MCP sessions, inbox listens) each key and each project holds in this process.

One tenant must not fill a process's share of anything long-lived, so each kind is capped
per API key, per project and (where the SDK does not already) per process. The counting is
this one class; each face words its own refusal (session_limits.py, inbox_push.py).
Everything here runs in the event loop without awaiting, so a check and the count that
follows it are one step.
"""

from collections import Counter
from collections.abc import Hashable


class TenantCounts:
    def __init__(self, per_key: int, per_project: int, per_process: int | None = None) -> None:
        self.per_key, self.per_project, self.per_process = per_key, per_project, per_process
        self._owners: dict[Hashable, tuple[str, str]] = {}  # item -> (key, project)
        self._by_key: Counter[str] = Counter()
        self._by_project: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._owners)

    def full(self, key: str, project: str) -> tuple[str, int] | None:
        """Which cap one more item for (key, project) would pass, as (per, limit); None if none."""
        if self._by_key[key] >= self.per_key:
            return "key", self.per_key
        if self._by_project[project] >= self.per_project:
            return "project", self.per_project
        if self.per_process is not None and len(self._owners) >= self.per_process:
            return "process", self.per_process
        return None

    def opened(self, item: Hashable, key: str, project: str) -> None:
        self._owners[item] = (key, project)
        self._by_key[key] += 1
        self._by_project[project] += 1

    def closed(self, item: Hashable) -> None:
        """Free what `item` held; idempotent (an item may be reported closed twice)."""
        owner = self._owners.pop(item, None)
        if owner is None:
            return
        key, project = owner
        for counter, name in ((self._by_key, key), (self._by_project, project)):
            counter[name] -= 1
            if counter[name] <= 0:
                del counter[name]
