"""REST face for projects, keys and the audit trail. Thin: validate, call a service, shape output."""

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from broker_site.rest import StrictSerializer, query_flag
from projects import selectors, services
from projects.models import PROJECT_ID_PATTERN, ApiKey, Project


class ProjectConfigIn(StrictSerializer):
    max_sessions = serializers.IntegerField(required=False)
    max_protocols = serializers.IntegerField(required=False)
    max_queue_size = serializers.IntegerField(required=False)
    stale_after = serializers.IntegerField(required=False)
    disconnect_after = serializers.IntegerField(required=False)
    ack_timeout = serializers.IntegerField(required=False)
    max_attempts = serializers.IntegerField(required=False)
    rate_limit_per_minute = serializers.IntegerField(required=False)
    max_payload_bytes = serializers.IntegerField(required=False)
    protocol_registration = serializers.ChoiceField(choices=Project.Registration.values, required=False)


class ProjectCreateIn(StrictSerializer):
    project_id = serializers.RegexField(PROJECT_ID_PATTERN, max_length=64)
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    discoverable = serializers.BooleanField(required=False, default=False)
    config = ProjectConfigIn(required=False)


class ProjectUpdateIn(ProjectConfigIn):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=500, required=False, allow_blank=True)
    discoverable = serializers.BooleanField(required=False)


class KeyCreateIn(StrictSerializer):
    role = serializers.ChoiceField(choices=ApiKey.Role.values, default=ApiKey.Role.AGENT)
    label = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class KeyRotateIn(StrictSerializer):
    grace_period_seconds = serializers.IntegerField(min_value=0, max_value=604_800, required=False, default=300)


def created_key_body(key: ApiKey, raw: str) -> dict:
    return {**selectors.api_key_summary(key), "api_key": raw,
            "notice": "This is the only time the key is shown. Store it now."}


class ProjectListView(APIView):
    @extend_schema(operation_id="projects_list", responses=OpenApiTypes.OBJECT,
                   parameters=[OpenApiParameter("name_filter", str), OpenApiParameter("include_inactive", bool),
                               OpenApiParameter("include_stats", bool)], summary="List projects")
    def get(self, request):
        projects = selectors.projects_visible(request.auth, name_filter=request.query_params.get("name_filter", "")[:100],
                                              include_inactive=query_flag(request, "include_inactive"))
        include_stats = query_flag(request, "include_stats")
        items = [selectors.project_summary(p, caller=request.auth, include_stats=include_stats) for p in projects]
        return Response({"projects": items, "count": len(items)})

    @extend_schema(operation_id="project_create", responses=OpenApiTypes.OBJECT,
                   request=ProjectCreateIn, summary="Create a project (operators); returns its first admin key once")
    def post(self, request):
        data = ProjectCreateIn.validated(request.data)
        project, key, raw = services.project_create(
            project_id=data["project_id"], name=data["name"], description=data["description"],
            discoverable=data["discoverable"], config=data.get("config"), caller=request.auth)
        body = selectors.project_summary(project, caller=request.auth, include_config=True)
        body["admin_key"] = created_key_body(key, raw)
        return Response(body, status=status.HTTP_201_CREATED)


class ProjectDetailView(APIView):
    @extend_schema(operation_id="project_info", responses=OpenApiTypes.OBJECT,
                   parameters=[OpenApiParameter("include_config", bool), OpenApiParameter("include_stats", bool),
                               OpenApiParameter("include_permissions", bool)], summary="Project info")
    def get(self, request, project_id: str):
        project = selectors.project_for(request.auth, project_id, allow_discoverable=True)
        return Response(selectors.project_summary(
            project, caller=request.auth, include_config=query_flag(request, "include_config"),
            include_stats=query_flag(request, "include_stats", True),
            include_permissions=query_flag(request, "include_permissions")))

    @extend_schema(operation_id="project_update", responses=OpenApiTypes.OBJECT,
                   request=ProjectUpdateIn, summary="Change a project's description or settings (admins)")
    def patch(self, request, project_id: str):
        project = selectors.project_for(request.auth, project_id)
        changes = ProjectUpdateIn.validated(request.data)
        project = services.project_update(project, changes, caller=request.auth)
        return Response(selectors.project_summary(project, caller=request.auth, include_config=True))


class ProjectDeactivateView(APIView):
    @extend_schema(operation_id="project_deactivate", responses=OpenApiTypes.OBJECT,
                   request=None, summary="Deactivate a project (operators): sessions end, history stays")
    def post(self, request, project_id: str):
        project = services.project_deactivate(selectors.project_for(request.auth, project_id), caller=request.auth)
        return Response(selectors.project_summary(project, caller=request.auth))


class ProjectActivateView(APIView):
    @extend_schema(operation_id="project_activate", responses=OpenApiTypes.OBJECT,
                   request=None, summary="Activate a project again (operators)")
    def post(self, request, project_id: str):
        project = services.project_activate(selectors.project_for(request.auth, project_id), caller=request.auth)
        return Response(selectors.project_summary(project, caller=request.auth))


class KeyListView(APIView):
    @extend_schema(operation_id="api_keys_list", responses=OpenApiTypes.OBJECT,
                   summary="List a project's keys (admins); never the secrets")
    def get(self, request, project_id: str):
        project = selectors.project_for(request.auth, project_id)
        keys = [selectors.api_key_summary(k) for k in selectors.api_keys_of(project, request.auth)]
        return Response({"keys": keys, "count": len(keys)})

    @extend_schema(operation_id="api_key_create", responses=OpenApiTypes.OBJECT,
                   request=KeyCreateIn, summary="Create a key (admins); the key is shown once")
    def post(self, request, project_id: str):
        project = selectors.project_for(request.auth, project_id)
        data = KeyCreateIn.validated(request.data)
        key, raw = services.api_key_create(project, role=data["role"], label=data["label"],
                                           expires_at=data["expires_at"], caller=request.auth)
        return Response(created_key_body(key, raw), status=status.HTTP_201_CREATED)


class KeyRotateView(APIView):
    @extend_schema(operation_id="api_key_rotate", responses=OpenApiTypes.OBJECT,
                   request=KeyRotateIn, summary="Rotate a key: a new key now, the old one valid for the grace period")
    def post(self, request, project_id: str, key_id: str):
        project = selectors.project_for(request.auth, project_id)
        data = KeyRotateIn.validated(request.data)
        new_key, raw = services.api_key_rotate(selectors.api_key_get(project, key_id),
                                               grace_period_seconds=data["grace_period_seconds"], caller=request.auth)
        return Response(created_key_body(new_key, raw), status=status.HTTP_201_CREATED)


class KeyRevokeView(APIView):
    @extend_schema(operation_id="api_key_revoke", responses=OpenApiTypes.OBJECT,
                   request=None, summary="Revoke a key at once (admins)")
    def post(self, request, project_id: str, key_id: str):
        project = selectors.project_for(request.auth, project_id)
        key = services.api_key_revoke(selectors.api_key_get(project, key_id), caller=request.auth)
        return Response(selectors.api_key_summary(key))


class AuditListView(APIView):
    @extend_schema(operation_id="audit_list", responses=OpenApiTypes.OBJECT,
                   summary="The project's audit trail, newest first (admins)")
    def get(self, request, project_id: str):
        project = selectors.project_for(request.auth, project_id)
        events = [selectors.audit_event_summary(e) for e in selectors.audit_events_of(project, request.auth)]
        return Response({"events": events, "count": len(events)})


urlpatterns = [
    path("projects/", ProjectListView.as_view()),
    path("projects/<str:project_id>/", ProjectDetailView.as_view()),
    path("projects/<str:project_id>/deactivate/", ProjectDeactivateView.as_view()),
    path("projects/<str:project_id>/activate/", ProjectActivateView.as_view()),
    path("projects/<str:project_id>/keys/", KeyListView.as_view()),
    path("projects/<str:project_id>/keys/<str:key_id>/rotate/", KeyRotateView.as_view()),
    path("projects/<str:project_id>/keys/<str:key_id>/revoke/", KeyRevokeView.as_view()),
    path("projects/<str:project_id>/audit/", AuditListView.as_view()),
]
