"""The one ASGI router answers lifespan events (uvicorn sends them; daphne does not)."""

from broker_site import lifespan as lifespan_module
from broker_site.asgi import application


async def test_lifespan_startup_and_shutdown_run_the_hooks(monkeypatch):
    ran: list[str] = []

    def on_start() -> None:
        ran.append("start")

    async def on_stop() -> None:
        ran.append("stop")

    monkeypatch.setattr(lifespan_module, "background_starters", [on_start])
    monkeypatch.setattr(lifespan_module, "shutdown_hooks", [on_stop])
    events = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[dict] = []

    async def receive():
        return next(events)

    async def send(message):
        sent.append(message)

    await application({"type": "lifespan"}, receive, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert ran == ["start", "stop"]


async def test_failed_startup_hook_reports_failure(monkeypatch):
    def broken() -> None:
        raise RuntimeError("no database")

    monkeypatch.setattr(lifespan_module, "background_starters", [broken])
    sent: list[dict] = []

    async def receive():
        return {"type": "lifespan.startup"}

    async def send(message):
        sent.append(message)

    await application({"type": "lifespan"}, receive, send)
    assert sent == [{"type": "lifespan.startup.failed", "message": "no database"}]
