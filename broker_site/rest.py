"""What every app's REST views share: bodies and queries read through the operation's contract,
the acting session, and their OpenAPI descriptions.

DRF stays for the views, authentication and the OpenAPI schema (drf-spectacular reads the
contracts' own JSON Schema for request bodies).
"""

from collections.abc import Collection
from typing import Any, TypeVar

from django.urls import path
from drf_spectacular.utils import OpenApiParameter
from pydantic import BaseModel
from rest_framework.response import Response
from rest_framework.views import APIView

from broker_site.contracts import parsed
from projects.auth import Caller
from routing.lifecycle import session_acting
from sessions_app.models import AgentSession

C = TypeVar("C", bound=BaseModel)
SESSION_TOKEN = "X-Session-Token"
SESSION_TOKEN_HEADER = OpenApiParameter(SESSION_TOKEN, str, OpenApiParameter.HEADER, required=True,
                                        description="The session_token returned when the session connected (or "
                                                    "by broker_session create). A disconnected session it names "
                                                    "is resumed by the call.")
CONFIGURED_SESSION_HEADER = OpenApiParameter(SESSION_TOKEN, str, OpenApiParameter.HEADER, required=False,
                                             description="The client's configured session: a connect that names "
                                                         "no other session resumes it.")


def body(request, contract: type[C]) -> C:
    """The request's JSON body as `contract`, or one validation_error naming every bad field."""
    return parsed(contract, request.data, what="request body")


def query(request, contract: type[C], **values: Any) -> C:
    """The query string as `contract` (text read as numbers and booleans); parameters it does not name are ignored."""
    given = {name: request.query_params[name] for name in contract.model_fields if name in request.query_params}
    return parsed(contract, {**given, **values}, what="query", strict=False)


def query_parameters(contract: type[BaseModel], exclude: Collection[str] = ()) -> list[OpenApiParameter]:
    """`contract`'s fields as OpenAPI query parameters, for extend_schema; `exclude`: those in the path."""
    kinds = {"integer": int, "number": float, "boolean": bool}
    properties = contract.model_json_schema()["properties"]
    parameters = []
    for name, schema in properties.items():
        if name in exclude:
            continue
        arm = next((a for a in schema.get("anyOf", [schema]) if a.get("type") != "null"), schema)
        parameters.append(OpenApiParameter(name, kinds.get(arm.get("type"), str), enum=arm.get("enum"),
                                           description=schema.get("description", "")))
    return parameters


def listing(name: str, items: list) -> Response:
    """A list answer: the items under their name, and how many there are."""
    return Response({name: items, "count": len(items)})


def acting_session(request, caller: Caller | None = None, **acting: bool) -> AgentSession:
    """The session a REST call acts as, proven by its X-Session-Token (routing.lifecycle.session_acting).

    The header is the client's configured identity, as on MCP: a disconnected session it names
    is resumed by the call (one rule for the header on both faces). `caller`: for a plain Django
    view, which has no DRF `request.auth`.
    """
    return session_acting((caller or request.auth).project, configured_token=request.headers.get(SESSION_TOKEN),
                          **acting)


class Endpoint(APIView):
    """A REST view that names its own URL: `class SendView(Endpoint, route="messages/")`."""

    route: str = ""

    def __init_subclass__(cls, route: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.route = route


def rest_routes(*views: type[Endpoint]) -> list:
    """URL patterns for these views, in the order given (the first match wins)."""
    return [path(view.route, view.as_view()) for view in views]
