"""Liveness and readiness probes, outside the API's authentication."""

from django.db import connection
from django.http import JsonResponse


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return JsonResponse({"status": "unavailable", "database": "down"}, status=503)
    return JsonResponse({"status": "ok", "database": "up"})


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
