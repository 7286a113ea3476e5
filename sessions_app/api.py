"""REST face for sessions. Calls that act as a session prove it with the X-Session-Token header."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from broker_site.rest import (
    CONFIGURED_SESSION_HEADER,
    SESSION_TOKEN,
    SESSION_TOKEN_HEADER,
    Endpoint,
    acting_session,
    body,
    query,
    query_parameters,
    rest_routes,
)
from routing.lifecycle import session_connect
from sessions_app import selectors, services
from sessions_app.contracts import BlockIn, ConnectIn, ListSessionsIn, SetStatusIn
from sessions_app.linked import sessions_seen


class SessionListView(Endpoint, route="sessions/"):
    @extend_schema(operation_id="sessions_list", responses=OpenApiTypes.OBJECT,
                   parameters=query_parameters(ListSessionsIn),
                   summary="List the project's sessions, or a linked project's live ones")
    def get(self, request):
        asked = query(request, ListSessionsIn)
        return Response(sessions_seen(request.auth.project, asked.project_id, asked.status_filter,
                                      asked.include_capabilities))

    @extend_schema(operation_id="session_connect", responses=OpenApiTypes.OBJECT,
                   request=ConnectIn, parameters=[CONFIGURED_SESSION_HEADER],
                   summary="Connect a session, or resume one with session_id/name and its token")
    def post(self, request):
        # An X-Session-Token header is the client's configured identity: a connect naming no other session resumes it.
        connected = session_connect(request.auth.project, actor=request.auth.actor,
                                    configured_token=request.headers.get(SESSION_TOKEN),
                                    **body(request, ConnectIn).model_dump())
        return Response(connected.as_dict(),
                        status=status.HTTP_200_OK if connected.resumed else status.HTTP_201_CREATED)


class SessionDetailView(Endpoint, route="sessions/<str:ref>/"):
    @extend_schema(operation_id="session_get", responses=OpenApiTypes.OBJECT,
                   summary="One session of the project, by id or name")
    def get(self, request, ref: str):
        return Response(selectors.session_summary(selectors.session_get(request.auth.project, ref)))


class HeartbeatView(Endpoint, route="sessions/me/heartbeat/"):
    @extend_schema(operation_id="session_heartbeat", responses=OpenApiTypes.OBJECT,
                   request=None, parameters=[SESSION_TOKEN_HEADER], summary="Heartbeat (any session call also counts)")
    def post(self, request):
        session = acting_session(request, heartbeat=True)
        return Response({"session_id": str(session.id), "status": session.status,
                         "last_heartbeat_at": session.last_heartbeat_at.isoformat()})


class StatusView(Endpoint, route="sessions/me/status/"):
    @extend_schema(operation_id="session_status_set", responses=OpenApiTypes.OBJECT, request=SetStatusIn,
                   parameters=[SESSION_TOKEN_HEADER], summary="Say what this session is doing; peers are told")
    def post(self, request):
        session = services.session_status_set(acting_session(request), **body(request, SetStatusIn).model_dump())
        return Response(selectors.session_summary(session, include_capabilities=False))


class DisconnectView(Endpoint, route="sessions/me/disconnect/"):
    @extend_schema(operation_id="session_disconnect", responses=OpenApiTypes.OBJECT,
                   request=None, parameters=[SESSION_TOKEN_HEADER], summary="Leave; the queue is kept for a resume")
    def post(self, request):
        session = services.session_disconnect(acting_session(request, leaving=True))
        return Response({"session_id": str(session.id), "status": session.status})


class BlockListView(Endpoint, route="sessions/me/blocks/"):
    @extend_schema(operation_id="session_blocks_list", responses=OpenApiTypes.OBJECT,
                   parameters=[SESSION_TOKEN_HEADER], summary="Sessions this session blocks")
    def get(self, request):
        return Response({"blocked": selectors.blocked_session_ids(acting_session(request))})

    @extend_schema(operation_id="session_block", responses=OpenApiTypes.OBJECT,
                   request=BlockIn, parameters=[SESSION_TOKEN_HEADER], summary="Block a session's messages")
    def post(self, request):
        session = acting_session(request)
        target = services.session_block(session, body(request, BlockIn).session)
        return Response({"blocked": str(target.id)}, status=status.HTTP_201_CREATED)


class BlockDetailView(Endpoint, route="sessions/me/blocks/<str:ref>/"):
    @extend_schema(operation_id="session_unblock", responses=OpenApiTypes.OBJECT,
                   parameters=[SESSION_TOKEN_HEADER], summary="Unblock a session")
    def delete(self, request, ref: str):
        target = services.session_unblock(acting_session(request), ref)
        return Response({"unblocked": str(target.id)})


urlpatterns = rest_routes(SessionListView, HeartbeatView, StatusView, DisconnectView, BlockListView, BlockDetailView,
                          SessionDetailView)
