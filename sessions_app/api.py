"""REST face for sessions. Calls that act as a session prove it with the X-Session-Token header."""

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from broker_site.rest import StrictSerializer, query_flag
from sessions_app import selectors, services

SESSION_TOKEN_HEADER = OpenApiParameter("X-Session-Token", str, OpenApiParameter.HEADER, required=True,
                                        description="The session_token returned when the session connected.")


def acting_session(request):
    return selectors.session_by_token(request.auth.project, request.headers.get("X-Session-Token"))


class ConnectIn(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False, allow_null=True, default=None)
    capabilities = serializers.JSONField(required=False, allow_null=True, default=None)
    session_id = serializers.CharField(max_length=100, required=False, allow_null=True, default=None)
    session_token = serializers.CharField(max_length=200, required=False, allow_null=True, default=None)


class BlockIn(StrictSerializer):
    session = serializers.CharField(max_length=100, help_text="id or name of the session to block")


class SessionListView(APIView):
    @extend_schema(operation_id="sessions_list", responses=OpenApiTypes.OBJECT,
                   parameters=[OpenApiParameter("status_filter", str, enum=list(selectors.STATUS_FILTERS)),
                               OpenApiParameter("include_capabilities", bool)],
                   summary="List the project's sessions")
    def get(self, request):
        status_filter = request.query_params.get("status_filter", "live")
        include_capabilities = query_flag(request, "include_capabilities", True)
        sessions = [selectors.session_summary(s, include_capabilities=include_capabilities)
                    for s in selectors.sessions_of(request.auth.project, status_filter)[:1000]]
        return Response({"sessions": sessions, "count": len(sessions), "status_filter": status_filter})

    @extend_schema(operation_id="session_connect", responses=OpenApiTypes.OBJECT,
                   request=ConnectIn, summary="Connect a session, or resume one with session_id/name and its token")
    def post(self, request):
        data = ConnectIn.validated(request.data)
        connected = services.session_connect(request.auth.project, actor=request.auth.actor, **data)
        return Response(connected.as_dict(),
                        status=status.HTTP_200_OK if connected.resumed else status.HTTP_201_CREATED)


class SessionDetailView(APIView):
    @extend_schema(operation_id="session_get", responses=OpenApiTypes.OBJECT,
                   summary="One session of the project, by id or name")
    def get(self, request, ref: str):
        return Response(selectors.session_summary(selectors.session_get(request.auth.project, ref)))


class HeartbeatView(APIView):
    @extend_schema(operation_id="session_heartbeat", responses=OpenApiTypes.OBJECT,
                   request=None, parameters=[SESSION_TOKEN_HEADER], summary="Heartbeat (any session call also counts)")
    def post(self, request):
        session = services.session_heartbeat(acting_session(request))
        return Response({"session_id": str(session.id), "status": session.status,
                         "last_heartbeat_at": session.last_heartbeat_at.isoformat()})


class DisconnectView(APIView):
    @extend_schema(operation_id="session_disconnect", responses=OpenApiTypes.OBJECT,
                   request=None, parameters=[SESSION_TOKEN_HEADER], summary="Leave; the queue is kept for a resume")
    def post(self, request):
        session = services.session_disconnect(acting_session(request))
        return Response({"session_id": str(session.id), "status": session.status})


class BlockListView(APIView):
    @extend_schema(operation_id="session_blocks_list", responses=OpenApiTypes.OBJECT,
                   parameters=[SESSION_TOKEN_HEADER], summary="Sessions this session blocks")
    def get(self, request):
        return Response({"blocked": selectors.blocked_session_ids(acting_session(request))})

    @extend_schema(operation_id="session_block", responses=OpenApiTypes.OBJECT,
                   request=BlockIn, parameters=[SESSION_TOKEN_HEADER], summary="Block a session's messages")
    def post(self, request):
        session = acting_session(request)
        target = services.session_block(session, BlockIn.validated(request.data)["session"])
        return Response({"blocked": str(target.id)}, status=status.HTTP_201_CREATED)


class BlockDetailView(APIView):
    @extend_schema(operation_id="session_unblock", responses=OpenApiTypes.OBJECT,
                   parameters=[SESSION_TOKEN_HEADER], summary="Unblock a session")
    def delete(self, request, ref: str):
        target = services.session_unblock(acting_session(request), ref)
        return Response({"unblocked": str(target.id)})


urlpatterns = [
    path("sessions/", SessionListView.as_view()),
    path("sessions/me/heartbeat/", HeartbeatView.as_view()),
    path("sessions/me/disconnect/", DisconnectView.as_view()),
    path("sessions/me/blocks/", BlockListView.as_view()),
    path("sessions/me/blocks/<str:ref>/", BlockDetailView.as_view()),
    path("sessions/<str:ref>/", SessionDetailView.as_view()),
]
