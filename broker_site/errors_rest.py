"""The REST face's one mapper from errors to the SPEC shape {error, message, details}.

Input is checked by the operations' contracts (broker_site.rest), which raise the broker's own
validation_error; what DRF itself can raise (a body that is not JSON, a wrong method, a
missing key) is mapped here too.
"""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_default_handler

from broker_site.errors import BrokerError, http_headers

log = logging.getLogger("broker.rest")


def error_response(code: str, message: str, status: int, details: dict | None = None, headers=None) -> Response:
    response = Response({"error": code, "message": message, "details": details or {}}, status=status, headers=headers)
    response.broker_error = code  # counted by code (broker_site.middleware.count_requests)
    return response


def broker_error_json(exc: BrokerError) -> JsonResponse:
    """The same shape for the plain (async) Django views of the REST face."""
    response = JsonResponse(exc.as_dict(), status=exc.status, headers=http_headers(exc))
    response.broker_error = exc.code
    return response


def rest_exception_handler(exc, context):
    if isinstance(exc, BrokerError):
        return error_response(exc.code, exc.message, exc.status, exc.details, http_headers(exc))
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return error_response("payload_too_large", f"The request body is larger than {limit} bytes.", 413,
                              {"limit_bytes": limit})
    if isinstance(exc, drf.ParseError):
        return error_response("validation_error", "The request body is not valid JSON.", 400, {"reason": str(exc.detail)})
    if isinstance(exc, drf.UnsupportedMediaType):
        return error_response("validation_error", "Send the request body as application/json.", 415)
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        return error_response("unauthorized", "Missing or invalid API key.", 401, headers={"WWW-Authenticate": "Bearer"})
    if isinstance(exc, (drf.PermissionDenied, PermissionDenied)):
        return error_response("forbidden", "This key may not do that.", 403)
    if isinstance(exc, (drf.NotFound, Http404)):
        return error_response("not_found", "No such thing in this project.", 404)
    if isinstance(exc, drf.MethodNotAllowed):
        return error_response("method_not_allowed", f"Method {context['request'].method} is not allowed here.", 405)
    if isinstance(exc, drf.APIException):
        response = drf_default_handler(exc, context)
        return error_response(exc.default_code, str(exc.detail), response.status_code if response else 400)
    # Anything else is a bug: log it with its traceback, answer without one.
    log.exception("unhandled error in %s", context.get("view").__class__.__name__)
    return error_response("internal_error", "The broker could not complete the request.", 500)
