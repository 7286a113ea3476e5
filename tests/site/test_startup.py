"""What a server process starts beside its requests (broker_site.startup)."""

import gc

from broker_site import startup


def test_the_heap_is_frozen_once_however_many_requests_start_the_background(monkeypatch):
    collections = []
    monkeypatch.setattr(startup, "_heap_frozen", False)
    monkeypatch.setattr(gc, "collect", lambda *args: collections.append(args) or 0)
    monkeypatch.setattr(gc, "freeze", lambda: None)
    for _ in range(3):  # daphne calls start_background before every request
        startup.freeze_heap_once()
    assert len(collections) == 1
