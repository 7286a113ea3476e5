"""Django middleware of the broker's own: what every HTTP request must be before any view reads it."""

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.utils.decorators import sync_and_async_middleware

from broker_site import counters
from broker_site.errors import ValidationFailed
from broker_site.errors_rest import broker_error_json


def _nul_refusal(request):
    # PostgreSQL stores NUL neither in text nor in jsonb: a path or query naming one (a%00b) made
    # every lookup it reached a 500 there. Bodies and frames have the same rule (broker_site.jsonbounds).
    if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
        return broker_error_json(ValidationFailed("A path or query may not contain the NUL character (%00).",
                                                  field="url", constraint="no_nul"))
    return None


@sync_and_async_middleware
def refuse_nul(get_response):
    """Answer a request whose path or query holds NUL with validation_error, before any view.

    Both kinds, so that under ASGI the request does not hop to a thread for it.
    """
    if iscoroutinefunction(get_response):
        async def middleware(request):
            return _nul_refusal(request) or await get_response(request)

        return markcoroutinefunction(middleware)

    def middleware(request):
        return _nul_refusal(request) or get_response(request)

    return middleware


def _face(path: str) -> str | None:
    if path.startswith("/api/v1/"):
        return "rest"
    if path.startswith("/admin/broker/"):
        return "dashboard"
    return None


def _counted(request, response):
    """One request of the REST face or the dashboard in broker_site.counters: its project and its outcome
    (`ok`, or the error code the face's one error mapper answered with, else the HTTP status)."""
    face = _face(request.path)
    if face is not None:
        auth = getattr(request, "auth", None)  # DRF puts its authentication on the Django request too
        project = getattr(getattr(auth, "project", None), "pk", None)
        code = "ok" if response.status_code < 400 else getattr(response, "broker_error", str(response.status_code))
        counters.request_counted(face, project, code)
    return response


@sync_and_async_middleware
def count_requests(get_response):
    if iscoroutinefunction(get_response):
        async def middleware(request):
            return _counted(request, await get_response(request))

        return markcoroutinefunction(middleware)

    def middleware(request):
        return _counted(request, get_response(request))

    return middleware
