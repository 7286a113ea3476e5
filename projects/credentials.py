"""Keys that authenticated lately, kept by each process for a second, so a call does not read its key every time.

A tool call used to spend a seventh of its time reading its key (and its project) from the
database. Here `authenticate` finds the key row it read less than CACHE_SECONDS ago; the
secret is still compared, in constant time, on every call. How stale an entry may be:

- a change made in this process (revoke, rotate, a key's or project's edit, deactivation,
  deletion: any save or delete of a key or a project) drops every entry, then and on commit;
- a change made in another process drops this process's entries when that process's event
  reaches it through the hub (routing.credentials_watch), at once while the channel layer works;
- whatever the layer does, no entry is used more than CACHE_SECONDS (BROKER_CREDENTIAL_CACHE_SECONDS,
  1 s) after it was read.

Only keys that exist are kept: a made-up key is looked up (and refused) every time, as before.
Callers get copies of the rows (`Caller.key`, `Caller.project`), never the cached objects,
so a service that edits its caller's project cannot change what other calls see.
"""

import copy
import threading
import time

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from projects.models import ApiKey, Project

CACHE_SECONDS = settings.BROKER["CREDENTIAL_CACHE_SECONDS"]  # 1 by default; 0 reads every key every time
MAX_ENTRIES = 10_000  # a backstop: each entry is a key that authenticated within the last second


class CredentialCache:
    def __init__(self, seconds: float = CACHE_SECONDS, limit: int = MAX_ENTRIES) -> None:
        self.seconds, self.limit = seconds, limit
        self._entries: dict[tuple[str, str], tuple[float, ApiKey]] = {}
        self._lock = threading.Lock()  # calls authenticate on many threads

    def get(self, project_id: str, key_id: str) -> ApiKey | None:
        """The key row (with its project) read less than `seconds` ago, or None."""
        entry = self._entries.get((project_id, key_id))
        if entry is None or time.monotonic() - entry[0] >= self.seconds:
            return None
        return entry[1]

    def put(self, key: ApiKey) -> None:
        with self._lock:
            if len(self._entries) >= self.limit:
                self._entries.clear()
            self._entries[(key.project_id, key.key_id)] = (time.monotonic(), key)

    def forget_all(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


credentials = CredentialCache()


def private_copy(key: ApiKey) -> ApiKey:
    """A copy of a cached key row and of its project, for one caller to hold."""
    mine = copy.copy(key)
    mine.project = copy.copy(key.project)
    return mine


def _changed(**kwargs) -> None:
    # Now, and again once it commits: a call in between may have read and kept the row as it was.
    credentials.forget_all()
    transaction.on_commit(credentials.forget_all)


for _model in (ApiKey, Project):
    post_save.connect(_changed, sender=_model, dispatch_uid=f"broker_credentials_{_model.__name__}_saved")
    post_delete.connect(_changed, sender=_model, dispatch_uid=f"broker_credentials_{_model.__name__}_deleted")
