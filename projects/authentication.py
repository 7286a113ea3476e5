"""HTTP's hook into the one auth service (projects.auth.authenticate), for DRF and plain views."""

from rest_framework.authentication import BaseAuthentication

from projects.auth import Caller, authenticate, credentials_from_headers
from projects.ratelimit import rate_limit_check


def authenticate_request(request) -> Caller:
    """Authenticate and rate-limit a Django (or DRF) request."""
    raw_key, project_id = credentials_from_headers(request.headers)
    caller = authenticate(raw_key, project_id, remote_addr=request.META.get("REMOTE_ADDR", ""))
    request.auth = caller  # as DRF does: the metrics count the request under its project (count_requests)
    rate_limit_check(caller)
    return caller


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        caller = authenticate_request(request)
        return caller, caller

    def authenticate_header(self, request) -> str:
        return "Bearer"
