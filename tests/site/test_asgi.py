"""The one ASGI router answers lifespan events (uvicorn sends them; daphne does not)."""

from broker_site.lifespan import lifespan_app


async def run_lifespan(app, events: list[dict]) -> list[dict]:
    incoming = iter(events)
    sent: list[dict] = []

    async def receive():
        return next(incoming)

    async def send(message):
        sent.append(message)

    await app({"type": "lifespan"}, receive, send)
    return sent


async def test_lifespan_startup_and_shutdown_run_the_start_and_stop():
    ran: list[str] = []

    async def stop() -> None:
        ran.append("stop")

    app = lifespan_app(lambda: ran.append("start"), stop)
    sent = await run_lifespan(app, [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert ran == ["start", "stop"]


async def test_a_failed_start_is_reported_and_ends_the_lifespan():
    def broken() -> None:
        raise RuntimeError("no database")

    async def stop() -> None:
        raise AssertionError("never started, so never stopped")

    sent = await run_lifespan(lifespan_app(broken, stop), [{"type": "lifespan.startup"}])
    assert sent == [{"type": "lifespan.startup.failed", "message": "no database"}]


async def test_the_router_starts_the_background_from_the_lifespan(monkeypatch):
    from broker_site import asgi, startup

    started: list[bool] = []
    monkeypatch.setattr(startup, "ensure_mcp_running", lambda: started.append(True))
    monkeypatch.setattr(startup, "ensure_sweeper_running", lambda: None)
    sent = await run_lifespan(asgi.application, [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert started == [True]
