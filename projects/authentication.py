"""DRF's hook into the one auth service (projects.auth.authenticate)."""

from rest_framework.authentication import BaseAuthentication

from projects.auth import authenticate, credentials_from_headers
from projects.ratelimit import rate_limit_check


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        raw_key, project_id = credentials_from_headers(request.headers)
        caller = authenticate(raw_key, project_id, remote_addr=request.META.get("REMOTE_ADDR", ""))
        rate_limit_check(caller)
        return caller, caller

    def authenticate_header(self, request) -> str:
        return "Bearer"
