"""Liveness and readiness probes, outside the API's authentication."""

import redis
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    """Ready when the database answers and every migration is applied (503 otherwise). Redis, when configured, is
    checked too, but the broker keeps serving without it (from the database, push slower: routing.hub), so Redis
    down is `degraded` with a 200: a load balancer keeps sending traffic, an operator sees the word."""
    checks = {"database": _database(), "migrations": _migrations(), "redis": _redis()}
    if checks["database"] != "up" or checks["migrations"] != "applied":
        return JsonResponse({"status": "unavailable", **checks}, status=503)
    return JsonResponse({"status": "degraded" if checks["redis"] == "down" else "ok", **checks})


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return "down"
    return "up"


_all_applied = False  # once every migration is applied it stays so for this process's code


def _migrations() -> str:
    global _all_applied
    if _all_applied:
        return "applied"
    try:
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception:
        return "unknown"
    _all_applied = not pending
    return "applied" if not pending else "pending"


_redis_clients: dict[str, redis.Redis] = {}  # one per URL, its connection kept between probes


def _redis() -> str:
    url = settings.REDIS_URL
    if not url:
        return "not_configured"
    try:
        client = _redis_clients.get(url)
        if client is None:
            client = _redis_clients.setdefault(url, redis.Redis.from_url(url, socket_connect_timeout=1,
                                                                         socket_timeout=1))
        client.ping()
    except Exception:
        return "down"
    return "up"


def api_not_found(request, exception=None):
    """Django's 404 for paths no route matches, in the SPEC error shape for API clients."""
    if request.path.startswith("/api/"):
        return JsonResponse({"error": "not_found", "message": "No such endpoint.", "details": {"path": request.path[:200]}},
                            status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def server_error(request):
    return JsonResponse({"error": "internal_error", "message": "The broker could not complete the request.",
                         "details": {}}, status=500)
